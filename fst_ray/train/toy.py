"""A small ``frames`` table for tests, benchmarks and smoke runs (FRAMES schema, random but learnable).

Identity ``i`` has a colour: a frame of video ``A`` (or fake ``A_B``) has A's colour in its background
and the face identity's colour in its centre square (B's for face swaps, A's otherwise), over noise.
Fakes carry a faint checkerboard in the centre: a planted artifact a detector can learn. FF++ pairs
are ``(0, 1), (2, 3), ...``; the first ``train_pairs`` pairs are ``train``, the next ``val_pairs`` ``val``, the
rest ``test``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fst_ray import ffpp, storage
from fst_ray import frames as frames_table
from fst_ray.data.pairs import build_fst_pairs

__all__ = ["toy_frames", "write_toy_frames"]


def _ids(n: int) -> list[str]:
    return [f"{i:03d}" for i in range(n)]


def toy_frames(identities: int = 6, frames: int = 4, size: int = 32, methods=("Deepfakes",),
               compressions=("raw",), train_pairs: int | None = None, val_pairs: int = 0, seed: int = 0) -> pa.Table:
    """The table (see module doc); ``identities`` must be even."""
    if identities % 2 or identities < 4:
        raise ValueError("identities must be an even number >= 4")
    rng = np.random.default_rng(seed)
    ids = _ids(identities)
    colour = {i: rng.uniform(0.15, 0.85, 3) for i in ids}
    pairs = [(ids[k], ids[k + 1]) for k in range(0, identities, 2)]
    n_train = train_pairs if train_pairs is not None else max(1, len(pairs) - 1 - val_pairs)
    split = {i: "train" if k < n_train else "val" if k < n_train + val_pairs else "test"
             for k, p in enumerate(pairs) for i in p}
    videos = [(ffpp.ORIGINAL, a, a) for a in ids]
    videos += [(m, a, b) for m in methods for p in pairs for a, b in (p, p[::-1])]
    lo, hi = size // 4, 3 * size // 4
    checker = (np.indices((hi - lo, hi - lo)).sum(0) % 2)[..., None] * 0.08
    rows: dict[str, list] = {f.name: [] for f in frames_table.SCHEMA}
    for comp in compressions:
        for method, a, b in videos:
            name = ffpp.video_name(a, b)
            face = b if method in ffpp.FACE_SWAPS else a
            for t in range(frames):
                img = np.clip(colour[a] + rng.normal(0, 0.08, (size, size, 3)), 0, 1)
                img[lo:hi, lo:hi] = np.clip(colour[face] + rng.normal(0, 0.08, (hi - lo, hi - lo, 3)), 0, 1)
                if method != ffpp.ORIGINAL:
                    img[lo:hi, lo:hi] = np.clip(img[lo:hi, lo:hi] + checker, 0, 1)
                for k, v in (("key", frames_table.key(method, comp, name, t)),
                             ("image", (img * 255).astype(np.uint8).tobytes()), ("size", size), ("video", name),
                             ("frame_index", t), ("method", method), ("compression", comp),
                             ("det_label", int(method != ffpp.ORIGINAL)), ("source_id", a), ("target_id", b),
                             ("split", split[a]), ("mask", None)):
                    rows[k].append(v)
    return pa.Table.from_pydict(rows, schema=frames_table.SCHEMA)


def write_toy_frames(output: str, files: int = 2, **kwargs) -> pa.Table:
    """Write :func:`toy_frames` as ``{output}/frames/part-*.parquet`` and its ``fst_pairs`` (an ingest-shaped
    output); returns the frames."""
    table = toy_frames(**kwargs)
    fs, path = storage.resolve(storage.join(output, "frames"))
    fs.create_dir(path, recursive=True)
    step = -(-len(table) // files)
    for i in range(files):
        pq.write_table(table.slice(i * step, step), f"{path}/part-{i:03d}.parquet", filesystem=fs)
    fs, path = storage.resolve(storage.join(output, "fst_pairs"))
    fs.create_dir(path, recursive=True)
    pq.write_table(build_fst_pairs(table)[0], f"{path}/fst_pairs.parquet", filesystem=fs)
    return table
