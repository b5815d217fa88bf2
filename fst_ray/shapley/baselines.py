"""Removal baselines: what a removed cell shows. One registry; a new baseline is one registration.

A baseline is either made from the image alone (``zero``, ``mean``, ``blur``: ``fill(image, grid, [])``) or from
other frames of the tables (``source``, ``background``): those register ``others(tables, rows, k, seed)``, which
names per explained row the frames of the ingest output ``tables`` it needs (an empty list: the row has none and is not explained), and
``fill(image, grid, those frames)``. A ``[K, C, H, W]`` fill is K baselines whose values
:class:`fst_ray.shapley.game.ImageGame` averages. Pure torch/pyarrow: no Ray.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch
import torch.nn.functional as F

from fst_ray import frames
from fst_ray.data import views
from fst_ray.shapley.estimate import image_seed

__all__ = ["Baseline", "BASELINES", "register_baseline", "get", "names", "from_image", "background_keys"]

Fill = Callable[[torch.Tensor, int, list[torch.Tensor]], torch.Tensor]
Others = Callable[[str, list[dict], int, int], dict[str, list[str]]]


@dataclass(frozen=True)
class Baseline:
    """One registered baseline. ``fill(image [C, H, W], grid, others)``: what removed cells show, ``[C, H, W]`` or
    ``[K, C, H, W]``; ``others``: ``None`` for a baseline made from the image alone, else the frames each row
    needs (``tables``: the ingest output; ``k``: ``explain.backgrounds``; ``seed``: the job's seed);
    ``needs``: those frames in words (errors); ``takes_k``: K is one of its settings (its cache folder and
    protocol name it); ``protocol``: its protocol words, ``{k}`` filled in; ``note``: what every report says of
    maps under it; ``own_class_role``: the role whose all-baseline image is its own class by design (its
    baseline check is not a degeneracy); ``degenerate_why``: why it is degenerate when its check warns."""

    name: str
    doc: str
    fill: Fill
    others: Others | None = None
    needs: str = ""
    takes_k: bool = False
    protocol: str = ""
    note: str = ""
    own_class_role: str | None = None
    degenerate_why: str = ""

    def describe(self, k: int) -> str:
        """Its name as a protocol line gives it."""
        return self.name + self.protocol.format(k=k)


BASELINES: dict[str, Baseline] = {}


def register_baseline(name: str, fill: Fill, doc: str, **kw) -> Baseline:
    """Register a baseline (fields of :class:`Baseline`); returns it."""
    if name in BASELINES:
        raise ValueError(f"baseline {name!r} is already registered")
    BASELINES[name] = spec = Baseline(name, doc, fill, **kw)
    return spec


def get(name: str) -> Baseline:
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}: use one of {names()} or a tensor")
    return BASELINES[name]


def names() -> tuple[str, ...]:
    return tuple(BASELINES)


def from_image() -> tuple[str, ...]:
    """The baselines made from the image alone."""
    return tuple(n for n, b in BASELINES.items() if b.others is None)


def _blur(image: torch.Tensor, grid: int, others: list[torch.Tensor]) -> torch.Tensor:
    sigma = max(image.shape[1], image.shape[2]) / grid
    radius = min(int(3 * sigma), min(image.shape[1:]) - 1)
    x = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    c = image.shape[0]
    out = F.pad(image[None], (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(out, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    out = F.conv2d(out, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return out[0]


def _source_frames(tables: str, rows: list[dict], k: int, seed: int) -> dict[str, list[str]]:
    """A fake's source frame, as the ingest paired it (``fst_pairs``); none for reals and unpaired fakes."""
    pairs = views.read_table(tables, "fst_pairs", ["fake_key", "source_key"])
    source = dict(zip(pairs["fake_key"].to_pylist(), pairs["source_key"].to_pylist()))
    return {r["key"]: [source[r["key"]]] if r["key"] in source else [] for r in rows}


def _background_frames(tables: str, rows: list[dict], k: int, seed: int) -> dict[str, list[str]]:
    return background_keys(frames.read_index(tables), rows, k, seed)


def background_keys(index: pa.Table, rows: list[dict], k: int, seed: int) -> dict[str, list[str]]:
    """Per row (a ``frames`` index row), the keys of up to ``k`` real frames of other people to fill its removed
    cells: originals of the same split and compression whose person is neither the row's source person nor its
    target, one frame each of ``k`` distinct videos, drawn from ``seed`` and the row's key (``index``: the
    candidate frames). A real's person is its ``target_id`` (Celeb-DF, DFD: one person has several videos); a
    fake's source person, that of its source video. A row with no candidate gets none."""
    videos: dict[tuple, dict[str, list[str]]] = {}
    person: dict[str, str] = {}
    for r in index.to_pylist():
        if r["det_label"] == 0:
            videos.setdefault((r["split"], r["compression"]), {}).setdefault(r["source_id"], []).append(r["key"])
            person[r["source_id"]] = r["target_id"]
    out = {}
    for row in rows:
        pool = videos.get((row["split"], row["compression"]), {})
        people = {person.get(row["source_id"], row["source_id"]), row["target_id"]}
        others = sorted(v for v in pool if v != row["source_id"] and person[v] not in people)
        rng = np.random.default_rng(image_seed(seed, f"{row['key']}/background"))
        chosen = [others[i] for i in rng.permutation(len(others))[:k]]
        out[row["key"]] = [pool[v][int(rng.integers(len(pool[v])))] for v in chosen]
    return out


def _raw_background_frames(tables: str, rows: list[dict], k: int, seed: int) -> dict[str, list[str]]:
    """Per row, the backgrounds :func:`background_keys` draws for the same frame at raw: the same real frames
    whatever the row's compression."""
    at_raw = [{**r, "compression": "raw", "key": frames.same_frame_keys(r["key"], ("raw",))["raw"]} for r in rows]
    chosen = background_keys(frames.read_index(tables), at_raw, k, seed)
    return {r["key"]: chosen[a["key"]] for r, a in zip(rows, at_raw)}


register_baseline("zero", lambda image, grid, others: torch.zeros_like(image),
                  "0 in the model's input space (the paper's: black, as the project's models take raw 0..1 pixels)")
register_baseline("mean", lambda image, grid, others: image.mean(dim=(1, 2), keepdim=True).expand_as(image).clone(),
                  "the image's mean colour")
register_baseline("blur", _blur, "the image under a Gaussian blur of sigma = one cell's size, so a removed cell "
                                 "keeps only what is coarser than the grid")
#: the FST counterfactual baseline: a fake's removed cells show the same cells of its source's real frame
#: (same video A, frame index and compression: the ingest aligns a fake with its source's landmarks)
register_baseline(
    "source", lambda image, grid, others: others[0],
    "a fake's source frame (same video A, frame index and compression); reals are not explained",
    others=_source_frames, needs="its source's real frame", own_class_role="source",
    note="Under the **source** baseline a cell where the fake equals its source cannot contribute, so every "
         "model's map is confined to the manipulated cells (and, where crops are not pixel-aligned, their "
         "surroundings): M_τ and φ_d then overlap by construction, and Q compares them inside the manipulated "
         "region only — not the paper's Q.")
#: interventional removal: removed cells show K real frames of other people (aligned crops of originals whose
#: identity is neither the image's source nor its target, same split and compression), the value averaged
#: over the K (:class:`fst_ray.shapley.game.ImageGame`)
register_baseline(
    "background", lambda image, grid, others: torch.stack(others),
    "K real frames of other people, same split and compression (the value averaged over them)",
    others=_background_frames, needs="a real frame of another person in its split and compression", takes_k=True,
    protocol=" (K = {k} real frames of other people)",
    degenerate_why=": its all-baseline image is other people's real frames, which the model gives the class "
                   "explained")
#: the same removal at every compression, as the paper's black image is: a frame's removed cells show the same raw
#: real frames at raw, c23 and c40, so the maps H3 compares differ in the explained image only; a detector that
#: calls compressed frames fake sees the all-baseline image as real at every compression
register_baseline(
    "background_raw", lambda image, grid, others: torch.stack(others),
    "K real frames of other people at raw, the same for every compression of a frame (the value averaged over "
    "them)",
    others=_raw_background_frames, needs="a raw real frame of another person in its split", takes_k=True,
    protocol=" (K = {k} real frames of other people, at raw for every compression)",
    degenerate_why=": its all-baseline image is other people's raw real frames, which the model gives the class "
                   "explained")
