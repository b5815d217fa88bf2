"""Views of the ingest's tables that later jobs use: filters, H2's paired/unpaired sets, the encoders'
frame-disjoint hold-out. Pure pyarrow/numpy over an *index* (``frames`` without its pixel columns);
callers read pixels for the keys they chose (:func:`fst_ray.frames.read`, or Ray Data).

- :func:`where` / :func:`select`: by split, method, compression, label.
- :func:`paired_unpaired` (H2): two training sets of equal size sharing the same fakes; *paired*'s reals
  are exactly the source and target videos of those fakes, *unpaired*'s reals come from videos that are
  neither source nor target of any of them.
- :func:`frame_holdout` (source/target encoders): every video contributes frames to both sides, and no
  frame position of a source video is on both sides (a fake ``A_B`` frame ``i`` goes wherever A's frame
  ``i`` goes, at every compression), so hold-out images show no background the encoder trained on.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fst_ray import storage, tables


def table_bytes(output: str, name: str) -> int:
    """Bytes on storage of one of the ingest's tables (all its Parquet files)."""
    return sum(size for _, size in storage.list_files(storage.join(output, name)))


def read_table(output: str, name: str, columns: list[str] | None = None,
               filter: pc.Expression | None = None) -> pa.Table:
    """Read a table of the ingest's output (``frames``, ``fst_pairs``, ``errors``), optionally only some
    columns and rows (pushed down to Parquet)."""
    return tables.read(storage.join(output, name), name, columns, filter)


def _isin(column: str, value) -> pc.Expression:
    values = [value] if isinstance(value, (str, int)) else list(value)
    return pc.field(column).isin(values)


def where(split=None, method=None, compression=None, det_label=None) -> pc.Expression | None:
    """A row filter on ``frames`` (or ``fst_pairs`` for split/method/compression); each argument is a
    value or a list of values, ``None`` means any."""
    parts = [_isin(c, v) for c, v in (("split", split), ("method", method), ("compression", compression),
                                      ("det_label", det_label)) if v is not None]
    if not parts:
        return None
    expr = parts[0]
    for p in parts[1:]:
        expr = expr & p
    return expr


def select(table: pa.Table, **criteria) -> pa.Table:
    """Rows of an in-memory table matching :func:`where` criteria."""
    expr = where(**criteria)
    return table if expr is None else table.filter(expr)


@dataclass
class H2Sets:
    """H2's two training sets (index rows) and what they were built from."""

    paired: pa.Table
    unpaired: pa.Table
    fake_videos: list[str]
    paired_reals: list[str]
    unpaired_reals: list[str]


def paired_unpaired(index: pa.Table, seed: int, split: str | None = "train", compression: str | None = "c23",
                    methods: list[str] | None = None, pairs_fraction: float = 0.5) -> H2Sets:
    """H2's *paired* and *unpaired* sets from a frames index, deterministic for ``seed``.

    The FF++ pairs (``{A, B}`` of the fakes present) are shuffled; the first ``pairs_fraction`` of them
    give the fakes (all their ``A_B``/``B_A`` videos of ``methods``, every frame) and the paired reals
    (videos A and B). Unpaired reals are the originals touched by no chosen fake. Both sets get the same
    fakes and the same number of real frames, taken round-robin over their videos (every video keeps
    at least one frame)."""
    index = select(index, split=split, compression=compression)
    fakes = index.filter(pc.field("det_label") == 1)
    if methods is not None:
        fakes = select(fakes, method=methods)
    reals = index.filter(pc.field("det_label") == 0)
    rng = np.random.default_rng([seed, 0x42])

    fake_ids = fakes.select(["source_id", "target_id"]).to_pydict()
    id_pairs = sorted({tuple(sorted(p)) for p in zip(fake_ids["source_id"], fake_ids["target_id"])})
    if len(id_pairs) < 2:
        raise ValueError(f"H2 needs fakes of at least 2 pairs in split={split}, compression={compression}; "
                         f"found {len(id_pairs)}")
    order = rng.permutation(len(id_pairs))
    n_chosen = min(max(1, int(round(pairs_fraction * len(id_pairs)))), len(id_pairs) - 1)
    paired_ids = {i for k in order[:n_chosen] for i in id_pairs[k]}
    chosen = fakes.filter(pc.field("source_id").isin(list(paired_ids)) & pc.field("target_id").isin(list(paired_ids)))
    touched = set(chosen["source_id"].to_pylist()) | set(chosen["target_id"].to_pylist())
    paired_reals = reals.filter(pc.field("video").isin(sorted(touched)))
    unpaired_reals = reals.filter(~pc.field("video").isin(sorted(touched)))
    n_real = min(len(paired_reals), len(unpaired_reals))
    if n_real == 0:
        raise ValueError("H2 needs real frames on both sides; one side has none")
    paired_reals = _round_robin(paired_reals, n_real, rng)
    unpaired_reals = _round_robin(unpaired_reals, n_real, rng)
    chosen = chosen.sort_by("key")
    return H2Sets(
        paired=pa.concat_tables([chosen, paired_reals]),
        unpaired=pa.concat_tables([chosen, unpaired_reals]),
        fake_videos=sorted(set(chosen["video"].to_pylist())),
        paired_reals=sorted(set(paired_reals["video"].to_pylist())),
        unpaired_reals=sorted(set(unpaired_reals["video"].to_pylist())),
    )


def _round_robin(table: pa.Table, n: int, rng: np.random.Generator) -> pa.Table:
    """``n`` rows taken one per video in turn (videos and frames in random order), sorted by key."""
    table = table.sort_by("key")
    videos = np.asarray(table["video"].to_pylist())
    names = np.unique(videos)
    video_rank = dict(zip(names[rng.permutation(len(names))], range(len(names))))
    frame_rank = np.empty(len(table), dtype=np.int64)
    for v in names:
        rows = np.flatnonzero(videos == v)
        frame_rank[rows] = rng.permutation(len(rows))
    order = np.lexsort((np.array([video_rank[v] for v in videos]), frame_rank))
    return table.take(np.sort(order[:n]))


def frame_holdout(index: pa.Table, seed: int, fraction: float = 0.2) -> tuple[pa.Table, pa.Table]:
    """``(train, holdout)`` rows of a frames index for the source/target encoders.

    Per source id A, a ``fraction`` of the frame positions sampled from A's videos (at least one, at most
    all but one) is held out; a row is held out when its ``(source_id, frame_index)`` is. Deterministic
    for ``seed``, independent of row order."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    cols = index.select(["source_id", "frame_index"]).to_pydict()
    positions: dict[str, set[int]] = {}
    for s, i in zip(cols["source_id"], cols["frame_index"]):
        positions.setdefault(s, set()).add(i)
    held: set[tuple[str, int]] = set()
    for s, idx in positions.items():
        idx = sorted(idx)
        if len(idx) < 2:
            continue
        n = min(max(1, int(round(fraction * len(idx)))), len(idx) - 1)
        rng = np.random.default_rng([seed, zlib.crc32(s.encode())])
        held.update((s, idx[k]) for k in rng.choice(len(idx), n, replace=False))
    mask = np.fromiter(((s, i) in held for s, i in zip(cols["source_id"], cols["frame_index"])), bool, len(index))
    return index.filter(pa.array(~mask)), index.filter(pa.array(mask))
