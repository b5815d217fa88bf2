"""The Shapley job: maps of ``frames`` images under model files, spread over a ``ShapleyPool``; resumable.

Each (image, model) map is estimated from coalitions drawn from a seed of its own, derived from the job's seed,
the image key and the model's content (``coalitions: per_model``), so that any two maps carry independent
estimator noise (Q_τ, H2's difference and δ compare maps; correlated noise would bias them) and a map depends
neither on the order, the batch, the number of actors nor the other models of the job. ``shared`` draws one
image's coalitions once for every model (one masked image feeds them all: fewer masked images, correlated
noise). With ``halves`` (the default) each map is the mean of two independent estimates at half the budget
each (seeds derived from the map's seed), both stored (``phi_a``, ``phi_b``): their agreement measures the
map's noise (:func:`fst_ray.metrics.noise_ceiling`). Two images per actor are explained at once (driver
threads), so the actors do not idle while the driver samples coalitions or solves a regression. Finished
(image, model) pairs are read back from the output and skipped; rows are written in atomic Parquet files of
``flush_images`` images, so an interrupted run loses at most the file in progress and a re-run duplicates
nothing. A model is known by its file's content (``model_sha256``), not its path, and the output records the
settings its maps were made with (``_shapley.json``: grid, budget, estimator, seed, coalitions, baseline,
value, halves, curves, the frames' ingest parameters); a run with other settings is refused, never mixed in.

Besides its map, each (image, model) records, outside the budget: the model's value and probability of the
explained class on the all-baseline and the whole image (``value_empty``, ``value_full``, ``p_empty``,
``p_full``: two evaluations, four when the value is not log-odds) and, with ``curve_steps``, the map's deletion
and insertion curves against a random order shared by the models (:mod:`fst_ray.faithfulness`; 2 (``curve_steps``
+ 1) evaluations per model and as many for the random order). With the ``source`` baseline a fake's removed
cells show its source's real frame (same frame index and compression); reals, and fakes whose source frame is
missing, are not explained. With the ``background`` baseline an image's removed cells show ``backgrounds`` real
frames of other people (:func:`fst_ray.shapley.baselines.background_keys`), the value averaged over them.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch import nn
from tqdm import tqdm

from fst_ray import faithfulness, frames, lease, roles, storage, tables
from fst_ray.config import UserError, record_or_refuse
from fst_ray.data.records import ingest_params
from fst_ray.data import views
from fst_ray.models import load_model
from fst_ray.runtime import init_ray
from fst_ray.shapley import baselines
from fst_ray.attribution import attribution_map
from fst_ray.shapley.config import SHAPLEY, ShapleyConfig
from fst_ray.shapley.game import baseline_image
from fst_ray.shapley.estimate import AUTO_POLICY, estimate_maps, image_seed
from fst_ray.shapley.pool import ShapleyPool

__all__ = ["run_shapley", "explain_image", "map_seeds", "ShapleySummary", "image_seed", "finished", "load_models"]


CURVE_COLUMNS = ("deletion", "insertion", "deletion_random", "insertion_random")


class _AtSize(nn.Module):
    """A model that resizes its input to the size it was trained at (masks are drawn on the stored frame)."""

    def __init__(self, model: nn.Module, size: int):
        super().__init__()
        self.model, self.size = model, size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(frames.resize(x, self.size))


PARAMS_FILE = "_shapley.json"


@dataclass
class _Model:
    name: str
    uri: str
    sha256: str
    role: str
    classes: list[str] | None
    module: nn.Module


@dataclass
class ShapleySummary:
    images: int = 0
    maps: int = 0
    skipped: int = 0
    unexplainable: int = 0  # maps: the model has no class for the image
    no_baseline: int = 0  # images: no source frame (``source``) or no other person's real frame (``background``)
    capped: int = 0  # maps: stopped at max_budget below the target ceiling
    evaluations: int = 0
    forward_passes: int = 0
    seconds: float = 0.0
    files: list[str] = field(default_factory=list)

    @property
    def evals_per_s(self) -> float:
        return self.evaluations / self.seconds if self.seconds else 0.0


def finished(output: str) -> set[tuple[str, str]]:
    """``(key, model_sha256)`` of every map already in the output's ``shapley`` table."""
    done = tables.read(output, "shapley", ["key", "model_sha256"])
    return set(zip(done["key"].to_pylist(), done["model_sha256"].to_pylist()))


#: how the actors run the models (:mod:`fst_ray.shapley.precision`) and its defaults: a map made otherwise is keyed
#: apart, and maps cached before these settings existed keep their key
RUN_DEFAULTS = {k: ShapleyConfig.model_fields[k].default for k in ("precision", "channels_last", "compile")}


def cache_params(cfg: ShapleyConfig) -> dict:
    """What a map depends on besides its image and model: the estimator's settings and how the frames were
    made (the ingest's parameters, not its path)."""
    return {**cfg.model_dump(mode="json", include={"grid", "budget", "estimator", "seed", "coalitions", "baseline",
                                                        "value", "halves", "curve_steps"}),
            **({"backgrounds": cfg.backgrounds} if baselines.get(cfg.baseline).takes_k else {}),
            **({"attribution": cfg.attribution} if cfg.attribution != SHAPLEY else {}),
            **(cfg.model_dump(include={"target_ceiling", "max_budget"}) if cfg.target_ceiling is not None else {}),
            **{k: v for k, v in cfg.model_dump(include=set(RUN_DEFAULTS)).items() if v != RUN_DEFAULTS[k]},
            **({"auto": AUTO_POLICY} if cfg.estimator == "auto" else {}), "frames": ingest_params(cfg.input)}


def load_models(uris: list[str]) -> list[_Model]:
    """The model files ``uris`` (each once, whatever its spelling), named by role, resized to their training size."""
    models, roles = [], []
    seen = set()
    for uri in uris:
        if storage.digest(uri) in seen:  # the same file under two spellings is one model
            continue
        seen.add(storage.digest(uri))
        module, info = load_model(uri)
        size = info["metadata"].get("image_size")
        roles.append(info["role"])
        models.append(_Model("", uri, storage.digest(uri), info["role"], info.get("classes"),
                             _AtSize(module, size) if size else module))
    for i, m in enumerate(models):
        m.name = m.role if roles.count(m.role) == 1 else f"{m.role}{i}"
    return models


def _curves(pool: ShapleyPool, image: torch.Tensor, targets: dict[str, int], grid: int, baseline, value: str,
            phi: dict[str, torch.Tensor], seed: int, steps: int) -> dict[str, dict[str, list[float]]]:
    """Per model: its deletion and insertion curves along its map's order and along one random order shared by
    the models (:func:`fst_ray.faithfulness.curve_coalitions`); their end points (whole image, all-baseline)
    are evaluated too. Values in the game's unit."""
    n = grid * grid
    names = list(targets)

    def run(models: list[str], order) -> torch.Tensor:
        coalitions = torch.from_numpy(np.concatenate([faithfulness.curve_coalitions(order, kind, steps)
                                                      for kind in ("deletion", "insertion")]))
        game = pool.game(image, {k: targets[k] for k in models}, grid=grid, baseline=baseline, value=value,
                         models=models)
        return game(coalitions).reshape(2, -1, len(models))  # [curve kind, point, model]

    rand = run(names, faithfulness.random_order(n, seed))
    out = {}
    for j, name in enumerate(names):
        own = run([name], faithfulness.map_order(phi[name].numpy()))[..., 0]
        out[name] = {"deletion": own[0].tolist(), "insertion": own[1].tolist(),
                     "deletion_random": rand[0, :, j].tolist(), "insertion_random": rand[1, :, j].tolist()}
    return out


def map_seeds(cfg: ShapleyConfig, key: str, models: dict[str, str]) -> dict[str, int]:
    """Per model (``name -> model_sha256``), the seed of the coalitions its map of image ``key`` is estimated
    from: the model's own (``per_model``: no two maps share estimator noise) or the image's (``shared``)."""
    if cfg.coalitions == "shared":
        return dict.fromkeys(models, image_seed(cfg.seed, key))
    return {name: image_seed(cfg.seed, f"{key}/{sha}") for name, sha in models.items()}


#: one attribution at a time on the driver's models (two images are explained at once, in threads)
_ON_THE_DRIVER = threading.Lock()


def explain_image(pool: ShapleyPool, cfg: ShapleyConfig, key: str, image: torch.Tensor, baseline,
                  targets: dict[str, int], shas: dict[str, str],
                  modules: dict[str, nn.Module] | None = None) -> tuple[int, dict[str, dict]]:
    """One image's maps under the pool's models ``targets`` (name -> explained class index; ``shas``: name ->
    model_sha256): the coalitions evaluated and, per model, the ``shapley`` table's columns that depend on the
    model (see module doc). An attribution method other than Shapley runs on ``modules`` (name -> model)."""

    def game_of(names: list[str]):
        return pool.game(image, {n: targets[n] for n in names}, grid=cfg.grid, baseline=baseline, value=cfg.value,
                         models=names)

    seeds = map_seeds(cfg, key, shas)
    if cfg.attribution == SHAPLEY:
        maps, evaluations = estimate_maps(game_of, seeds, cfg.budget, cfg.estimator, cfg.halves, cfg.target_ceiling,
                                          cfg.max_budget)
    else:  # another attribution method, run here on the model itself (fst_ray.attribution)
        fill = baseline if isinstance(baseline, torch.Tensor) else baseline_image(image, baseline, cfg.grid)
        with _ON_THE_DRIVER:  # hooks on a shared module (Grad-CAM's layer) must not see another image's pass
            maps = {n: {**attribution_map(cfg.attribution, modules[n], image, t, cfg.grid, fill, cfg.budget,
                                          seeds[n], cfg.halves), "estimator": cfg.attribution, "seed": seeds[n]}
                    for n, t in targets.items()}
        evaluations = sum(m["n_evals"] for m in maps.values())
    columns, phi = {}, {}
    for name, m in maps.items():
        phi[name] = m["phi"]
        columns[name] = {"phi": m["phi"].float().tolist(), "stderr": m["stderr"].float().tolist(),
                         "estimator": m["estimator"], "seed": m["seed"], "n_evals": m["n_evals"],
                         "ceiling": m.get("ceiling"), "capped": m.get("capped"),
                         **{h: None if m[h] is None else m[h].float().tolist() for h in ("phi_a", "phi_b")}}
    # the model's value and probability of the explained class on the all-baseline and the whole image
    game = game_of(list(targets))
    ends = torch.zeros(2, cfg.grid ** 2, dtype=torch.bool)
    ends[1] = True
    values = game(ends)
    odds = values if cfg.value == "log-odds" else pool.game(
        image, targets, grid=cfg.grid, baseline=baseline, value="log-odds", models=list(targets))(ends)
    prob = torch.sigmoid(odds)
    for j, name in enumerate(targets):
        columns[name].update(value_empty=float(values[0, j]), value_full=float(values[1, j]),
                             p_empty=float(prob[0, j]), p_full=float(prob[1, j]))
    curves = _curves(pool, image, targets, cfg.grid, baseline, cfg.value, phi,
                     image_seed(image_seed(cfg.seed, key), "order"), cfg.curve_steps) if cfg.curve_steps else {}
    for name in targets:
        columns[name].update(curves.get(name, dict.fromkeys(CURVE_COLUMNS)))
    return evaluations, columns


def run_shapley(cfg: ShapleyConfig, progress: bool = True) -> ShapleySummary:
    """Explain the selected frames under every model of ``cfg`` into ``cfg.output``, holding its lease (see module
    doc)."""
    with lease.hold(cfg.output, "shapley"):
        return _run(cfg, progress)


def _run(cfg: ShapleyConfig, progress: bool) -> ShapleySummary:
    start = time.perf_counter()
    where = views.where(split=cfg.split, method=cfg.methods, compression=cfg.compressions)
    if cfg.keys is not None:
        where = frames.keys_filter(cfg.keys) if where is None else where & frames.keys_filter(cfg.keys)
    index = frames.read_index(cfg.input, where)
    rows = index.to_pylist()[: cfg.max_images]
    if not rows:
        keys = f" and the {len(cfg.keys)} keys given" if cfg.keys else ""
        raise UserError(f"no frames of {cfg.input} match split={cfg.split}, methods={cfg.methods}, "
                        f"compressions={cfg.compressions}{keys}: nothing to explain")
    side = pc.min(frames.read(cfg.input, ["size"], [row["key"] for row in rows])["size"]).as_py()
    if cfg.grid > side:
        raise UserError(f"grid {cfg.grid} has more cells per side than the frames have pixels ({side})")
    init_ray()
    models = load_models(cfg.models)
    record_or_refuse(storage.join(cfg.output, PARAMS_FILE), cache_params(cfg), "maps",
                     populated=tables.read(cfg.output, "shapley", ["key"]).num_rows > 0)
    done = finished(cfg.output)
    summary = ShapleySummary()
    work = []  # (frames row, [(model, class name, class index)])
    spec = baselines.get(cfg.baseline)
    others = spec.others(cfg.input, rows, cfg.backgrounds, cfg.seed) if spec.others else {}
    for row in rows:
        if spec.others and not others[row["key"]]:
            summary.no_baseline += 1  # e.g. a real under source, or no other person's frame under background
            continue
        todo = []
        for m in models:
            if (row["key"], m.sha256) in done:
                summary.skipped += 1
                continue
            target = roles.explained_class(m.role, m.classes, row)
            if target is None:
                summary.unexplainable += 1
                continue
            todo.append((m, *target))
        if todo:
            work.append((row, todo))
    if not work:
        summary.seconds = time.perf_counter() - start
        return summary
    pool = ShapleyPool({m.name: m.module for m in models}, n_actors=cfg.actors, num_cpus=cfg.actor_cpus,
                       chunk_size=cfg.chunk_size, batch_size=cfg.batch_size,
                       **cfg.model_dump(include=set(RUN_DEFAULTS)))
    bar = tqdm(total=len(work), desc="shapley", unit="image", disable=not progress)
    images = ThreadPoolExecutor(2 * len(pool.actors))  # images in flight: the actors never wait on the driver
    try:
        for first in range(0, len(work), cfg.flush_images):
            batch = work[first:first + cfg.flush_images]
            keys = [row["key"] for row, _ in batch]
            extra = [b for k in keys for b in others.get(k, [])]
            pixels = {k: frames.to_float(torch.from_numpy(image[None]))[0] for k, image in
                      frames.images(cfg.input, sorted(set(keys + extra))).items()}
            out: dict[str, list] = {f.name: [] for f in tables.SHAPLEY}

            def explain(item):
                row, todo = item
                baseline = spec.fill(pixels[row["key"]], cfg.grid, [pixels[b] for b in others[row["key"]]]) \
                    if spec.others else cfg.baseline  # (made on the actor from its name)
                return explain_image(pool, cfg, row["key"], pixels[row["key"]], baseline,
                                     {m.name: index for m, _, index in todo}, {m.name: m.sha256 for m, *_ in todo},
                                     {m.name: m.module for m, *_ in todo})

            for (row, todo), (n_evals, columns) in zip(batch, images.map(explain, batch)):
                for m, name, index in todo:
                    for k, v in (("key", row["key"]), ("role", m.role), ("model", m.uri), ("model_sha256", m.sha256),
                                 ("explained_class", name),
                                 ("class_index", index), ("grid", cfg.grid),
                                 ("budget", cfg.budget), ("baseline", cfg.baseline), ("value", cfg.value),
                                 *columns[m.name].items()):
                        out[k].append(v)
                summary.images += 1
                summary.maps += len(todo)
                summary.capped += sum(bool(columns[m.name]["capped"]) for m, *_ in todo)
                summary.evaluations += n_evals
                summary.forward_passes += sum(columns[m.name]["n_evals"] for m, *_ in todo) * \
                    (len(others[row["key"]]) if spec.takes_k else 1)
                bar.update(1)
                bar.set_postfix(evals_per_s=f"{summary.evaluations / (time.perf_counter() - start):.0f}")
            uri = storage.join(cfg.output, f"part-{uuid.uuid4().hex}.parquet")
            tables.write_parquet(pa.Table.from_pydict(out, schema=tables.SHAPLEY), uri)
            summary.files.append(uri)
    finally:
        images.shutdown()
        bar.close()
        pool.shutdown()
    summary.seconds = time.perf_counter() - start
    return summary
