"""The steps every hypothesis job shares: tables, models, explained images, Shapley maps, evaluation.

Each step is cached under the config's ``tables`` / ``work`` URIs and skipped when its output exists, so
the jobs share their work: H1, H2 and H3 train the ``full`` encoders once and explain each image under
each model once.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fst_ray import datasets, ffpp, frames, metrics, storage, tables
from fst_ray.config import UserError
from fst_ray.data import views
from fst_ray.data.config import PrepareConfig
from fst_ray.data.ingest import run_ingest
from fst_ray.data.records import finished_ingest, ingest_dataset
from fst_ray.evaluate import EvalResult
from fst_ray.hypotheses.config import (BY_COMPRESSION, DETECTOR_RUNS, FULL, RUN_ROLES, TRAIN_SETS,
                                       HypothesisConfig)
from fst_ray.hypotheses.results import Ceiling
from fst_ray.layout import RunLayout, model_file
from fst_ray.shapley import baselines
from fst_ray.shapley.config import SHAPLEY, ShapleyConfig, ShapleySpec
from fst_ray.shapley.estimate import choose
from fst_ray.shapley.run import run_shapley
from fst_ray.train.labels import encoder_split
from fst_ray.train.config import TrainConfig
from fst_ray.train.trainer import DETECTOR_FRAMES, check_run, run_dir, train_encoders, trained_epochs



def log(msg: str) -> None:
    print(f"[fst-ray] {msg}", flush=True)


def ensure_tables(cfg: HypothesisConfig) -> None:
    """Ingest ``cfg.input`` into ``cfg.tables`` unless a succeeded ingest made with the config's frame
    parameters is already there (one made with others is refused)."""
    marker = finished_ingest(cfg.tables)
    if marker is not None:
        have = {k: marker["params"][k] for k in ("frames_per_video", "size")}
        want = cfg.prepare.model_dump(include=set(have))
        if cfg.input is not None and have != want:
            raise UserError(f"{cfg.tables} was ingested with {have}, this run asks {want}: use other --tables")
        return
    if cfg.input is None:
        raise UserError(f"{cfg.tables} holds no finished ingest and no corpus is configured to make one")
    summary = run_ingest(PrepareConfig(input=cfg.input, output=cfg.tables, methods=cfg.methods,
                                       **cfg.prepare.model_dump()))
    log(str(summary))
    if summary.exit_code(0.2):
        raise UserError(f"the ingest of {cfg.input} produced too little usable data; see {cfg.tables}/errors")


def dataset_layout(cfg: HypothesisConfig) -> datasets.Layout:
    """The layout of the dataset ingested into ``cfg.tables`` (FF++ for tables that do not record one)."""
    return datasets.get_layout(ingest_dataset(cfg.tables))


def resolve_compressions(cfg: HypothesisConfig) -> HypothesisConfig:
    """``cfg`` with each ``best`` compression setting replaced by the best compression the tables hold (raw,
    else c23, else c40; raw is the paper's), so that results name the one used."""
    from fst_ray.hypotheses.config import BEST

    if BEST not in (cfg.explain.compression, cfg.train_compression):
        return cfg
    present = set(frames.read(cfg.tables, ["compression"])["compression"].to_pylist())
    best = next((c for c in ffpp.COMPRESSIONS if c in present), None)
    if best is None:
        raise UserError(f"{cfg.tables} holds no frames")
    return cfg.model_copy(update={
        "explain": cfg.explain.model_copy(update={"compression": best}) if cfg.explain.compression == BEST
        else cfg.explain, "train_compression": best if cfg.train_compression == BEST else cfg.train_compression})


def run_name(arch: str, run: str, compression: str | None, train: TrainConfig | None = None) -> str:
    """The folder under ``work/models`` of a training run: architecture, run, the detectors' compression (not for
    the encoders' run; the shortcut study's ``balanced`` run keeps it in its name, as its checkpoint key does), and
    tags for the training options that change what a model learns from the same frames (ImageNet start, weights
    file, scene balance, the detectors' blur + JPEG, their epoch kept by validation AUC)."""
    tags = ""
    if train is not None:
        tags += "-imagenet" if train.pretrained and not train.weights else ""
        tags += f"-w{storage.digest(train.weights)[:8]}" if train.weights else ""  # the file's content
        tags += "-scenebal" if train.scene_balance and run != "balanced" else ""
        tags += f"-degrade{train.degrade:g}" if train.degrade and run in DETECTOR_RUNS else ""
        tags += "-valauc" if train.select_epoch == "val_auc" and run in DETECTOR_RUNS else ""
    return f"{arch}-{run}{tags}" if run == "encoders" else f"{arch}-{run}-{compression or 'all'}{tags}"


def run_epochs(cfg: HypothesisConfig, run: str) -> int:
    """Epochs of training run ``run``: H2's detectors ``h2_epochs``, the detectors ``detector_epochs``, else
    ``train.epochs``."""
    given = {"paired": cfg.h2_epochs, "unpaired": cfg.h2_epochs, "detectors": cfg.detector_epochs}.get(run)
    return given or cfg.train.epochs


def ensure_models(cfg: HypothesisConfig, arch: str, run: str, roles: list[str],
                  compression: str | None = "config") -> dict[str, str]:
    """Model file URIs of ``roles`` from training run ``run`` (full, encoders, detectors, paired, unpaired,
    balanced) of ``arch``, its detectors trained on ``compression`` (default: ``cfg.train_compression``): given
    in ``cfg.checkpoints``, already trained under ``cfg.work``, or trained now. ``full``: each role from the
    encoders' or the detectors' run."""
    compression = cfg.train_compression if compression == "config" else compression
    if run == FULL:
        given = {r: cfg.checkpoints[f"{arch}/{FULL}/{r}"] for r in roles if f"{arch}/{FULL}/{r}" in cfg.checkpoints}
        out = {r: storage.canonical(u) for r, u in given.items()}
        for part in ("encoders", "detectors"):
            wanted = [r for r in roles if r in RUN_ROLES[part] and r not in given]
            if wanted:
                out.update(ensure_models(cfg, arch, part, wanted, compression))
        return {r: out[r] for r in roles}
    key = f"{run}-{compression or 'all'}" if run in BY_COMPRESSION else run
    given = {r: cfg.checkpoints[f"{arch}/{key}/{r}"] for r in roles if f"{arch}/{key}/{r}" in cfg.checkpoints}
    if len(given) == len(roles):
        return {r: storage.canonical(u) for r, u in given.items()}
    train = cfg.train.model_copy(update=dict(input=cfg.tables, output=RunLayout.of(cfg).models,
                                             name=run_name(arch, run, compression, cfg.train), roles=RUN_ROLES[run],
                                             arch=arch, train_set=TRAIN_SETS[run], epochs=run_epochs(cfg, run),
                                             detector_compression=compression if run in DETECTOR_RUNS else None,
                                             scene_balance=run == "balanced" or cfg.train.scene_balance))
    train = type(train).model_validate(train.model_dump())
    files = {r: model_file(run_dir(train), r) for r in RUN_ROLES[run]}
    if all(storage.exists(f) for f in files.values()):
        check_run(train)  # models trained with other settings are refused, never reused
        done = trained_epochs(train)
        if done != train.epochs:  # (the learning-rate schedule spans the epochs: a continued run is another model)
            raise UserError(f"{run_dir(train)} was trained for {done} epochs, this run asks {train.epochs}: "
                            "use another work folder")
    else:
        log(f"training {arch} ({run}: {', '.join(RUN_ROLES[run])})")
        summary = train_encoders(train)
        last = summary.last_epoch
        log(f"trained {summary.run} in {summary.seconds:.0f} s: " + ", ".join(
            f"{r} loss {last.get(f'{r}/loss', float('nan')):.3f} acc {last.get(f'{r}/acc', float('nan')):.3f}"
            + (f" (kept epoch {last[f'{r}/selected_epoch'] + 1} of {summary.epochs} by val AUC)"
               if f"{r}/selected_epoch" in last else "") for r in summary.roles))
        files = summary.models
    # one spelling per model file (the caches know a model by its content: storage.digest)
    return {r: storage.canonical(given.get(r, files[r])) for r in roles}


def training_frames(model: str) -> str:
    """The file of the keys of the frames ``model``'s run trained its detectors on (beside ``models/``)."""
    return storage.join(model.rsplit("/models/", 1)[0], DETECTOR_FRAMES)


def explained_keys(cfg: HypothesisConfig, compression: str | None = None) -> dict[str, list[str]]:
    """Per method, ``cfg.explain.images_per_method`` fake test frames at ``compression`` to explain.

    Frames come from the source/target encoders' frame hold-out (so no explained image was seen by any
    encoder), one per video in a seeded order before a second frame of any video."""
    compression = compression or cfg.explain.compression
    index = frames.read_index(cfg.tables)
    _, holdout = encoder_split(index, cfg.train.seed, cfg.train.holdout_fraction)
    candidates = views.select(holdout, split="test", compression=compression, det_label=1)
    spec = baselines.get(cfg.explain.baseline)
    if spec.others:  # only fakes whose baseline's frames are there to fill their removed cells
        rows = candidates.to_pylist()
        filled = spec.others(cfg.tables, rows, 1, cfg.explain.seed)
        candidates = candidates.filter(pa.array([bool(filled[r["key"]]) for r in rows], pa.bool_()))
    rng = np.random.default_rng([cfg.explain.seed, 0x51])
    out = {}
    for method in cfg.methods:
        rows = views.select(candidates, method=method).sort_by("key").to_pylist()
        by_video = defaultdict(list)
        for r in rows:
            by_video[r["video"]].append(r["key"])
        videos = sorted(by_video)
        videos = [videos[i] for i in rng.permutation(len(videos))]
        order = [by_video[v][k] for k in range(max(map(len, by_video.values()), default=0))
                 for v in videos if k < len(by_video[v])]
        out[method] = order[: cfg.explain.images_per_method]
    if not any(out.values()):
        raise UserError(f"no fake test frames at {compression} in the encoders' hold-out of {cfg.tables} that a "
                        f"{cfg.explain.baseline} baseline can explain")
    return out


def _maps_dir(cfg: HypothesisConfig) -> str:
    """The Shapley cache of the config's explain settings (one folder per setting: never mixed; ``auto`` is named
    with the estimator it runs, so maps of an earlier ``auto`` rule stay in their own folder)."""
    e = cfg.explain
    est = e.estimator if e.estimator != "auto" else \
        f"auto-{choose(e.grid ** 2, e.budget // 2 if e.halves else e.budget)}"
    baseline = f"{e.baseline}{e.backgrounds}" if baselines.get(e.baseline).takes_k else e.baseline
    method = "" if e.attribution == SHAPLEY else f"{e.attribution}-"  # another method's maps: never mixed in
    return RunLayout.of(cfg).maps(f"{method}g{e.grid}-b{e.budget}-{est}-s{e.seed}-{baseline}-{e.value}"
                                  + ("-h" if e.halves else "") + ("-shared" if e.coalitions == "shared" else "-own"))


def shapley_maps(cfg: HypothesisConfig, keys: list[str], models: list[str]) -> dict[tuple[str, str], np.ndarray]:
    """φ (flat, G², unit L2 norm as in the paper) of every (key, model URI), computed where missing, cached
    under ``cfg.work`` (the cache keeps the estimator's raw values and, with ``explain.halves``, both halves)."""
    e = cfg.explain
    output = _maps_dir(cfg)
    summary = run_shapley(ShapleyConfig(input=cfg.tables, models=models, output=output, split=None, keys=keys,
                                        **e.model_dump(include=set(ShapleySpec.model_fields))))
    if summary.no_baseline:
        raise UserError(f"{summary.no_baseline} of the {len(keys)} images explained have no {e.baseline} baseline "
                        f"({baselines.get(e.baseline).needs}) to fill removed cells with: use a corpus with more people in each split, or "
                        "explain.baseline zero")
    if summary.images:
        log(f"shapley: {summary.maps} maps of {summary.images} images, {summary.evals_per_s:.0f} evaluations/s")
    uri = {storage.digest(m): m for m in models}
    table = tables.read(output, "shapley", ["key", "model_sha256", "phi"],
                        pc.field("key").isin(keys) & pc.field("model_sha256").isin(list(uri)))
    return {(k, uri[m]): metrics.unit_norm(phi) for k, m, phi in
            zip(table["key"].to_pylist(), table["model_sha256"].to_pylist(), table["phi"].to_pylist())}


def map_columns(cfg: HypothesisConfig, keys: list[str], model: str, columns: list[str]) -> dict[str, list]:
    """Columns of the cached ``shapley`` rows of ``model``'s maps of ``keys`` (in that order), from the cache
    :func:`shapley_maps` filled: ``column -> [value per key]``."""
    table = tables.read(_maps_dir(cfg), "shapley", ["key", *columns],
                        pc.field("key").isin(keys) & (pc.field("model_sha256") == storage.digest(model)))
    row = {k: i for i, k in enumerate(table["key"].to_pylist())}
    missing = [k for k in keys if k not in row]
    if missing:
        raise UserError(f"{model} has no map of {len(missing)} of the images explained ({missing[0]}, ...): its "
                        "file names no class for them (an identity encoder explains the image's own id)")
    return {c: [table[c][row[k]].as_py() for k in keys] for c in columns}


def map_halves(cfg: HypothesisConfig, keys: list[str], model: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The two independent half-budget estimates ``([N, G²], [N, G²])`` of ``model``'s maps of ``keys`` (in
    that order); ``None`` when the maps were made in one piece."""
    cols = map_columns(cfg, keys, model, ["phi_a", "phi_b"])
    if any(a is None for a in cols["phi_a"]):
        return None
    return tuple(np.array(cols[c], dtype=np.float64) for c in ("phi_a", "phi_b"))


def frame_auc(result: EvalResult) -> dict[str, dict[str, float]]:
    """``method -> compression -> frame-level AUC`` of a detector's evaluation."""
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for row in result.detection:
        if row.level == "frame" and row.auc is not None:
            out[row.method][row.compression] = row.auc
    return dict(out)


def clusters_of(keys: list[str]) -> list[str]:
    """The source identity of each frame key (frames of one video, and fakes of one source, are not
    independent draws): the bootstrap's clusters."""
    return [frames.split_key(k)[2].split("_")[0] for k in keys]


def ceilings(cfg: HypothesisConfig, keys: list[str], models: dict[str, str]) -> dict[str, Ceiling]:
    """Name -> the noise ceiling of that model's maps of ``keys``, pooled (``models``: name -> URI; empty when
    the maps were made in one piece)."""
    out = {}
    for name, uri in models.items():
        halves = map_halves(cfg, keys, uri)
        if halves is not None:
            c = metrics.ceiling_summary(*halves, clusters_of(keys), n_boot=cfg.n_boot, seed=cfg.seed)
            out[name] = Ceiling(**c, readable=c["centred"] >= metrics.READABLE_CEILING)
    return out


def stack(maps: dict, keys: list[str], model: str) -> np.ndarray:
    """``[N, G²]``: ``model``'s maps of ``keys`` (from :func:`shapley_maps`), in that order."""
    return np.stack([maps[(k, model)] for k in keys])
