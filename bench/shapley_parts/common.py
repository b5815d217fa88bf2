"""What the Shapley bench's experiments share: the toy game's constants, error measures, the trained models' games on a
frames table, and side-by-side timing."""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from fst_ray import frames, roles
from fst_ray.data import views
from fst_ray.shapley import ImageGame
from fst_ray.shapley.run import load_models


SAMPLED = ["official", "permutation", "antithetic", "adjusted", "kernel", "leverage"]
TARGET = 3
SIZE = 64


def rel_err2(values: torch.Tensor, ref: torch.Tensor) -> float:
    return float(((values - ref) ** 2).sum() / (ref ** 2).sum())


def match_fraction(budgets: list[int], err2: list[float], target: float, official_budget: int) -> float:
    """Budget (as a fraction of the official one) where err^2 falls to ``target`` (log-log interpolation)."""
    lb, le = np.log(budgets), np.log(np.maximum(err2, 1e-300))
    lt = math.log(target)
    for i in range(len(lb) - 1):
        if le[i] >= lt >= le[i + 1]:
            t = (lt - le[i]) / (le[i + 1] - le[i])
            return float(math.exp(lb[i] + t * (lb[i + 1] - lb[i])) / official_budget)
    end = 0 if lt > le[0] else len(lb) - 1  # outside the range: err^2 ~ 1/budget from the nearest point
    return float(math.exp(lb[end] + le[end] - lt) / official_budget)


def fake_rows(tables: str, split: str) -> list[dict]:
    """The fake frames of ``split`` in ``tables``, with what the games need."""
    cols = ["key", "image", "size", "method", "video", "frame_index", "compression", "det_label", "source_id",
            "target_id"]
    return frames.read(tables, cols, filter=views.where(split=split, det_label=1)).to_pylist()


def first_fake(tables: str) -> list[dict]:
    """The first fake test frame of ``tables`` (at c23 where there is one: H1's compression), one row per
    compression it was ingested at, that row first."""
    fakes = fake_rows(tables, "test")
    first = next((r for r in fakes if r["compression"] == "c23"), fakes[0])
    same = [r for r in fakes if (r["method"], r["video"], r["frame_index"])
            == (first["method"], first["video"], first["frame_index"])]
    return sorted(same, key=lambda r: r["key"] != first["key"])


def explained_by(models: list, row: dict) -> tuple[torch.Tensor, dict[str, tuple[torch.nn.Module, int]]]:
    """The image of ``row`` and ``name -> (module, class index)`` of each loaded model
    (:func:`fst_ray.shapley.run.load_models`) that has a class for it (the class the Shapley job explains,
    :func:`fst_ray.roles.explained_class`)."""
    image = frames.to_float(torch.from_numpy(frames.decode([row["image"]], row["size"])))[0]
    out = {}
    for m in models:
        explained = roles.explained_class(m.role, m.classes, row)
        if explained is not None:
            out[m.name] = (m.module, explained[1])
    return image, out


def load(models: str) -> list:
    """The model files in ``models`` (a folder, one file, or several comma-separated), loaded once."""
    from fst_ray.evaluate import model_files

    return load_models(model_files(models))


def trained_games(models: str, tables: str, grid: int) -> dict[str, ImageGame]:
    """``name -> game`` of each model file in ``models`` (a folder, one file, or several comma-separated) on the first fake test frame of
    ``tables``, explaining the class the Shapley job explains."""
    row = first_fake(tables)[0]
    image, explained = explained_by(load(models), row)
    return {f"{name} ({row['key']})": ImageGame(module, image, cls, grid=grid, batch_size=256)
            for name, (module, cls) in explained.items()}


def joint_games(loaded: list, rows: list[dict], grid: int) -> tuple[torch.Tensor, list[ImageGame]]:
    """Images ``[N, 3, H, W]`` and one game per row in which every loaded model explains its class (rows where
    one of them has no class for the frame are left out)."""
    images, games = [], []
    for row in rows:
        image, explained = explained_by(loaded, row)
        if len(explained) == len(loaded):
            images.append(image)
            games.append(ImageGame({k: m for k, (m, _) in explained.items()}, image,
                                   {k: c for k, (_, c) in explained.items()}, grid=grid, batch_size=256))
    return torch.stack(images), games


def paired_rates(fa, fb, count: int, repeats: int) -> tuple[float, float]:
    """Best rates of ``fa`` and ``fb`` (``count`` items per call) over ``repeats`` alternating timings (the
    best of many is the timing least disturbed by other processes on a shared machine, as in timeit)."""
    fa(), fb()
    ta, tb = math.inf, math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        fa()
        ta = min(ta, time.perf_counter() - t)
        t = time.perf_counter()
        fb()
        tb = min(tb, time.perf_counter() - t)
    return count / ta, count / tb
