"""The Shapley job: maps of ``frames`` images under model files, spread over a ``ShapleyPool``; resumable.

One image = one game whose masked images feed every model that still lacks this image's map (common random
numbers); its seed is derived from the job's seed and the image key, so a map does not depend on the order,
the batch or the number of actors. With ``halves`` (the default) each map is the mean of two independent
estimates at half the budget each (seeds derived from the image's seed), both stored (``phi_a``, ``phi_b``):
their agreement measures the map's noise (:func:`fst_ray.metrics.noise_ceiling`). Two images per actor are explained at once (driver threads), so the
actors do not idle while the driver samples coalitions or solves a regression. Finished (image, model)
pairs are read back from the output and skipped; rows are written in atomic Parquet files of ``flush_images`` images, so an interrupted run loses at most the
file in progress and a re-run duplicates nothing.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow as pa
import torch
from torch import nn
from tqdm import tqdm

from fst_ray import frames, roles, storage, tables
from fst_ray.data import views
from fst_ray.models import load_model
from fst_ray.runtime import init_ray
from fst_ray.shapley.config import ShapleyConfig
from fst_ray.shapley.estimate import estimate
from fst_ray.shapley.pool import ShapleyPool

__all__ = ["run_shapley", "ShapleySummary", "image_seed", "finished"]


class _AtSize(nn.Module):
    """A model that resizes its input to the size it was trained at (masks are drawn on the stored frame)."""

    def __init__(self, model: nn.Module, size: int):
        super().__init__()
        self.model, self.size = model, size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(frames.resize(x, self.size))


@dataclass
class _Model:
    name: str
    uri: str
    role: str
    classes: list[str] | None
    module: nn.Module


@dataclass
class ShapleySummary:
    images: int = 0
    maps: int = 0
    skipped: int = 0
    unexplainable: int = 0
    evaluations: int = 0
    forward_passes: int = 0
    seconds: float = 0.0
    files: list[str] = field(default_factory=list)

    @property
    def evals_per_s(self) -> float:
        return self.evaluations / self.seconds if self.seconds else 0.0


def image_seed(seed: int, key: str) -> int:
    """A 62-bit seed from the job's seed and an image key (stable across runs and machines)."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{key}".encode()).digest()[:8], "little") >> 2


def finished(output: str) -> set[tuple[str, str]]:
    """``(key, model URI)`` of every map already in the output's ``shapley`` table."""
    done = tables.read(output, "shapley", ["key", "model"])
    return set(zip(done["key"].to_pylist(), done["model"].to_pylist()))


def _load_models(uris: list[str]) -> list[_Model]:
    models, roles = [], []
    for uri in uris:
        module, info = load_model(uri)
        size = info["metadata"].get("image_size")
        roles.append(info["role"])
        models.append(_Model("", uri, info["role"], info.get("classes"), _AtSize(module, size) if size else module))
    for i, m in enumerate(models):
        m.name = m.role if roles.count(m.role) == 1 else f"{m.role}{i}"
    return models


def run_shapley(cfg: ShapleyConfig, progress: bool = True) -> ShapleySummary:
    """Explain the selected frames under every model of ``cfg`` into ``cfg.output`` (see module doc)."""
    start = time.perf_counter()
    init_ray()
    where = views.where(split=cfg.split, method=cfg.methods, compression=cfg.compressions)
    if cfg.keys is not None:
        where = frames.keys_filter(cfg.keys) if where is None else where & frames.keys_filter(cfg.keys)
    index = frames.read_index(cfg.input, where)
    rows = index.to_pylist()[: cfg.max_images]
    models = _load_models(cfg.models)
    done = finished(cfg.output)
    summary = ShapleySummary()
    work = []  # (frames row, [(model, class name, class index)])
    for row in rows:
        todo = []
        for m in models:
            if (row["key"], m.uri) in done:
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
                       chunk_size=cfg.chunk_size, batch_size=cfg.batch_size)
    bar = tqdm(total=len(work), desc="shapley", unit="image", disable=not progress)
    images = ThreadPoolExecutor(2 * len(pool.actors))  # images in flight: the actors never wait on the driver
    try:
        for first in range(0, len(work), cfg.flush_images):
            batch = work[first:first + cfg.flush_images]
            keys = [row["key"] for row, _ in batch]
            pixels = {k: frames.to_float(torch.from_numpy(image[None]))[0]
                      for k, image in frames.images(cfg.input, keys).items()}
            out: dict[str, list] = {f.name: [] for f in tables.SHAPLEY}

            def explain(item):
                row, todo = item
                seed = image_seed(cfg.seed, row["key"])
                game = pool.game(pixels[row["key"]], {m.name: index for m, _, index in todo}, grid=cfg.grid,
                                 baseline=cfg.baseline, value=cfg.value, models=[m.name for m, _, _ in todo])
                if not cfg.halves:
                    return seed, estimate(game, cfg.budget, cfg.estimator, seed=seed), None
                half = cfg.budget // 2
                first = estimate(game, half, cfg.estimator, seed=seed)
                return seed, first, estimate(game, cfg.budget - half, cfg.estimator, seed=image_seed(seed, "b"))

            for (row, todo), (seed, result, second) in zip(batch, images.map(explain, batch)):
                n_evals = result.n_evals + (second.n_evals if second is not None else 0)
                outputs = result.by_output()
                halves = second.by_output() if second is not None else None
                for (m, name, index), key in zip(todo, outputs):
                    r = outputs[key]
                    phi, stderr, phi_a, phi_b = r.values, r.stderr, None, None
                    if halves is not None:  # the map is the mean of two independent halves of the budget
                        h = halves[key]
                        phi_a, phi_b = r.values.float().tolist(), h.values.float().tolist()
                        phi, stderr = (r.values + h.values) / 2, (r.stderr ** 2 + h.stderr ** 2).sqrt() / 2
                    for k, v in (("key", row["key"]), ("role", m.role), ("model", m.uri), ("explained_class", name),
                                 ("class_index", index), ("grid", cfg.grid), ("phi", phi.float().tolist()),
                                 ("stderr", stderr.float().tolist()),
                                 ("n_evals", n_evals),
                                 ("estimator", r.method), ("seed", seed), ("budget", cfg.budget),
                                 ("baseline", cfg.baseline), ("value", cfg.value), ("phi_a", phi_a), ("phi_b", phi_b)):
                        out[k].append(v)
                summary.images += 1
                summary.maps += len(todo)
                summary.evaluations += n_evals
                summary.forward_passes += n_evals * len(todo)
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
