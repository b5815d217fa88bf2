"""The ingest's ``frames`` table as a Ray Dataset, for the jobs that stream pixels (training, scoring).

Ray Data's Parquet reader pays a fixed cost per file (41-45 ms a file on 2 cores with Ray 2.60, measured
by ``bench/read_frames.py``), and the ingest writes one file per video so that a re-run can skip
finished videos. A 432-video demo table (27 MiB) then takes 17.6-19.6 s to read; pyarrow reads it in 0.3 s.
So a table under :data:`DRIVER_READ_BYTES` is read by pyarrow on the driver (threads, filter pushed
down) and handed to Ray; a larger one streams through ``ray.data.read_parquet`` as usual.
"""

from __future__ import annotations

import ray.data
from ray.data.expressions import col

from fst_ray import frames, storage, tables
from fst_ray.data import views

__all__ = ["DRIVER_READ_BYTES", "frames_dataset"]

#: bytes on storage below which ``frames`` is read on the driver instead of by Ray Data's reader
DRIVER_READ_BYTES = 512 * 2 ** 20
#: rows per block of a table read on the driver (lets map_batches spread it over workers)
BLOCK_ROWS = 256


def frames_dataset(output: str, columns: list[str], keys=None) -> ray.data.Dataset:
    """``frames`` rows of the ingest at ``output`` (only ``columns``; only ``keys`` when given)."""
    if views.table_bytes(output, "frames") < DRIVER_READ_BYTES:
        table = frames.read(output, columns, keys)
        return ray.data.from_arrow([table.slice(i, BLOCK_ROWS) for i in range(0, max(len(table), 1), BLOCK_ROWS)])
    tables.check_files(frames.uri(output))  # one line naming a damaged file, not a failed Ray task
    fs, path = storage.resolve(frames.uri(output))
    ds = ray.data.read_parquet(path, filesystem=fs).select_columns(columns)
    return ds if keys is None else ds.filter(expr=col("key").is_in(list(keys)))
