"""The ``frames`` table, the one definition every stage uses: its key, its Arrow schema, its pixel codec
(stored bytes -> ``uint8 [n, S, S, 3]`` -> model input ``float [n, 3, S, S]`` in 0..1) and reading rows by
key. Pure pyarrow/numpy/torch, no Ray; the ingest writes it (:mod:`fst_ray.data.ingest`), everything
after reads it through here (Ray Data through :mod:`fst_ray.data.stream`).

A row's key is ``{method}/{compression}/{video}/{frame:05d}``; ``image`` holds the aligned face as raw
``S*S*3`` uint8 RGB bytes (row-major HWC, lossless), ``mask`` the aligned manipulation mask as ``S*S``
uint8 (255 = changed).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import torch
import torch.nn.functional as F

from fst_ray import ffpp, storage, tables

__all__ = ["SCHEMA", "INDEX_COLUMNS", "key", "split_key", "same_frame_keys", "encode", "decode", "decode_mask",
           "to_float", "resize", "uri", "read", "read_index", "keys_filter", "images", "iter_batches"]

SCHEMA = tables.FRAMES

#: the columns of ``frames`` without pixels (an *index*: what views and plans work on)
INDEX_COLUMNS = ["key", "video", "frame_index", "method", "compression", "det_label", "source_id", "target_id",
                 "split"]


# -- keys -----------------------------------------------------------------------------------------------

def key(method: str, compression: str, video: str, frame: int) -> str:
    """The key of one frame: ``{method}/{compression}/{video}/{frame:05d}``."""
    return f"{method}/{compression}/{video}/{frame:05d}"


def split_key(k: str) -> tuple[str, str, str, int]:
    """``(method, compression, video, frame)`` of a key."""
    method, compression, video, frame = k.split("/")
    return method, compression, video, int(frame)


def same_frame_keys(k: str, compressions: Iterable[str] = ffpp.COMPRESSIONS) -> dict[str, str]:
    """The keys of one frame (same video, same index) at each compression (H3 compares them):
    ``{compression: key}``."""
    method, _, video, frame = split_key(k)
    return {c: key(method, c, video, frame) for c in compressions}


# -- pixel codec ----------------------------------------------------------------------------------------

def encode(image: np.ndarray) -> bytes:
    """An aligned face ``uint8 [S, S, 3]`` (or a mask ``uint8 [S, S]``) -> the stored bytes."""
    return np.ascontiguousarray(image, dtype=np.uint8).tobytes()


def decode(blobs, size: int | None = None) -> np.ndarray:
    """``image`` values (``S*S*3`` bytes each) -> ``uint8 [n, S, S, 3]``, writable (torch takes it as is);
    ``size`` defaults to the side the first value implies."""
    blobs = list(blobs)
    if not blobs:
        return np.zeros((0, size or 0, size or 0, 3), np.uint8)
    flat = np.frombuffer(bytearray(b"".join(blobs)), dtype=np.uint8)
    side = size or int(round((len(blobs[0]) // 3) ** 0.5))
    return flat.reshape(len(blobs), side, side, 3)


def decode_mask(blob: bytes | None, size: int) -> np.ndarray | None:
    """A ``mask`` value -> ``bool [S, S]`` (True = manipulated), ``None`` where the row has no mask."""
    return None if blob is None else np.frombuffer(blob, np.uint8).reshape(size, size) > 127


def to_float(images: torch.Tensor) -> torch.Tensor:
    """``uint8 [n, S, S, 3]`` -> model input ``float [n, 3, S, S]`` in 0..1 (models normalise inside)."""
    return images.permute(0, 3, 1, 2).float().div_(255)


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear (antialiased) resize of ``[n, 3, H, W]`` to ``size x size``; a no-op at that size already."""
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


# -- reading ----------------------------------------------------------------------------------------------

def uri(output: str) -> str:
    """URI of the ``frames`` table (a folder of Parquet files) under an ingest's output URI."""
    return storage.join(output, "frames")


def keys_filter(keys) -> pc.Expression:
    """Row filter: the frames whose key is in ``keys``."""
    return pc.field("key").isin(list(keys))


def read(output: str, columns: list[str] | None = None, keys=None, filter: pc.Expression | None = None) -> pa.Table:
    """``frames`` rows of the ingest at ``output``: only ``columns``; only ``keys`` and/or ``filter`` rows
    when given (pushed down to Parquet)."""
    if keys is not None:
        filter = keys_filter(keys) if filter is None else filter & keys_filter(keys)
    return tables.read(uri(output), "frames", columns, filter)


def read_index(output: str, filter: pc.Expression | None = None) -> pa.Table:
    """``frames`` without pixels (:data:`INDEX_COLUMNS`), sorted by key."""
    return read(output, INDEX_COLUMNS, filter=filter).sort_by("key")


def images(output: str, keys) -> dict[str, np.ndarray]:
    """The aligned faces (``uint8 [S, S, 3]``) of some keys."""
    t = read(output, ["key", "image", "size"], keys)
    return {k: decode([blob], s)[0] for k, blob, s in zip(t["key"].to_pylist(), t["image"].to_pylist(),
                                                          t["size"].to_pylist())}


def iter_batches(output: str, columns: list[str], keys, batch_size: int,
                 rng: np.random.Generator | None = None) -> Iterator[pa.RecordBatch]:
    """Stream the rows of ``keys`` (only ``columns``) with pyarrow, at most ``batch_size`` rows a batch,
    memory bounded by the batch; with ``rng``, the table's files in a random order."""
    fs, path = storage.resolve(uri(output))
    files = sorted(pads.dataset(path, filesystem=fs, format="parquet").files)
    if rng is not None:
        files = [files[i] for i in rng.permutation(len(files))]
    scan = pads.dataset(files, filesystem=fs, format="parquet", schema=SCHEMA)
    for batch in scan.to_batches(columns=columns, filter=keys_filter(keys), batch_size=batch_size):
        if batch.num_rows:
            yield batch
