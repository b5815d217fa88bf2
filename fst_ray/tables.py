"""Arrow schemas of fst-ray's Parquet tables, registered so ``schemas/`` documents them, and the one
reader and atomic writer of Parquet files and folders (any URI).

A row's key is a readable string (``frames``: :func:`fst_ray.frames.key`), never a position.
"""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from fst_ray import storage
from fst_ray.config import UserError

log = logging.getLogger(__name__)

TABLES: dict[str, pa.Schema] = {}
#: the columns that identify a row of a table (no two rows share them), where a table has such a key
UNIQUE: dict[str, tuple[str, ...]] = {}


def register_table(name: str, schema: pa.Schema, unique: tuple[str, ...] = ()) -> pa.Schema:
    """Record a table's schema under ``schemas/table.<name>.json`` and the columns that identify its rows
    (readers keep the first of rows that share them); returns the schema."""
    TABLES[name] = schema
    if unique:
        UNIQUE[name] = unique
    return schema


def describe(schema: pa.Schema) -> dict:
    """A JSON-able description: each field's name, Arrow type, nullability and ``doc`` metadata."""
    fields = []
    for f in schema:
        meta = {k.decode(): v.decode() for k, v in (f.metadata or {}).items()}
        fields.append({"name": f.name, "type": str(f.type), "nullable": f.nullable, "doc": meta.get("doc", "")})
    table_meta = {k.decode(): v.decode() for k, v in (schema.metadata or {}).items()}
    return {"doc": table_meta.get("doc", ""), "fields": fields}


def field(name: str, type_: pa.DataType, doc: str, nullable: bool = False) -> pa.Field:
    """A documented Arrow field."""
    return pa.field(name, type_, nullable=nullable, metadata={"doc": doc})


# -- the ingest's tables (docs/design.md §3; written by jobs/prepare_data.py; read through fst_ray.frames) --

FRAMES = register_table("frames", pa.schema(
    [
        field("key", pa.string(), "{method}/{compression}/{video}/{frame:05d}"),
        field("image", pa.binary(), "aligned face, S*S*3 uint8 RGB, row-major HWC, raw bytes (lossless)"),
        field("size", pa.int32(), "S: the aligned image is S x S pixels"),
        field("video", pa.string(), "video name (FF++: 'A' for originals, 'A_B' for fakes)"),
        field("frame_index", pa.int32(), "0-based index of the frame in the video"),
        field("method", pa.string(), "'original' or the dataset's manipulation method"),
        field("compression", pa.string(), "raw, c23 or c40"),
        field("det_label", pa.int8(), "1 = fake, 0 = real"),
        field("source_id", pa.string(), "paper's source: the scene video a fake was made from, a real's own name "
                                        "(FF++: A of 'A_B' and of 'A'); the source encoder's class"),
        field("target_id", pa.string(), "paper's target: the identity that gave the face, a real's own identity "
                                        "(FF++: B of 'A_B', A of 'A'); the target encoder's class"),
        field("split", pa.string(), "train, val, test (identity-disjoint) or none (in no split: encoders only)"),
        field("mask", pa.binary(), "aligned manipulation mask, S*S uint8 (255 = changed); null for reals "
              "or where the corpus has no mask", nullable=True),
    ],
    metadata={"doc": "one row per sampled, aligned frame"},
), unique=("key",))


FST_PAIRS = register_table("fst_pairs", pa.schema(
    [
        field("fake_key", pa.string(), "key of a fake frame in `frames`"),
        field("source_key", pa.string(), "same frame index of the fake's source video (FF++: original A), same "
                                         "compression"),
        field("target_key", pa.string(), "a frame of a real video of the fake's target identity (FF++: original "
                                         "B), same compression"),
        field("method", pa.string(), "manipulation method of the fake"),
        field("compression", pa.string(), "raw, c23 or c40"),
        field("split", pa.string(), "split of the fake"),
    ],
    metadata={"doc": "one row per fake frame: its FST triple (fake, source, target)"},
), unique=("fake_key",))

ERRORS = register_table("errors", pa.schema(
    [
        field("path", pa.string(), "URI of the input that could not be used"),
        field("stage", pa.string(), "pipeline stage that rejected it (list, parse, decode, align, pair, ...)"),
        field("reason", pa.string(), "human-readable reason"),
        field("frame", pa.int64(), "the frame index, for a row about one frame (the rest of its video is kept)",
              nullable=True),
    ],
    metadata={"doc": "one row per unusable input or frame; the job goes on without it"},
))

# -- Shapley maps (written by jobs/shapley.py, fst_ray.shapley.run) ------------------------------------

SHAPLEY = register_table("shapley", pa.schema(
    [
        field("key", pa.string(), "frame key in `frames`: {method}/{compression}/{video}/{frame:05d}"),
        field("role", pa.string(), "encoder role: source, target, det (or fst)"),
        field("model", pa.string(), "URI of the model file, as given to the job that wrote the row"),
        field("model_sha256", pa.string(), "SHA-256 of the model file's content: the map cache's key for the model"),
        field("explained_class", pa.string(), "explained class: the source/target video id, or real/fake"),
        field("class_index", pa.int32(), "index of the explained class in the model's output"),
        field("grid", pa.int32(), "G: the players are the G x G cells, row-major"),
        field("phi", pa.list_(pa.float32()), "Shapley value of each cell (G*G, row-major), in units of the "
              "game's value (not normalised)"),
        field("stderr", pa.list_(pa.float32()), "standard error of each value (0 for exact)"),
        field("n_evals", pa.int64(), "coalitions this map was estimated from (both halves; with coalitions: shared, the image's, shared by its models)"),
        field("estimator", pa.string(), "estimator that ran (what auto chose)"),
        field("seed", pa.int64(), "the map's seed (derived from the job's seed, the key and the model's content; shared: from the key)"),
        field("budget", pa.int64(), "evaluation budget per map (with a target ceiling: per round)"),
        field("baseline", pa.string(), "what removed cells showed: zero, mean, blur, or source (a fake's cells "
              "replaced by the same cells of its source's real frame)"),
        field("value", pa.string(), "game value: logit, probability or log-odds"),
        field("phi_a", pa.list_(pa.float32()), "first of two independent estimates at half the budget each "
              "(phi is their mean); null when the map was estimated in one piece", nullable=True),
        field("phi_b", pa.list_(pa.float32()), "second half-budget estimate, independent of phi_a (own seed)",
              nullable=True),
        field("ceiling", pa.float64(), "the map's centred noise ceiling from its halves (Spearman-Brown of their "
              "centred cosine); null without halves or for other attribution methods", nullable=True),
        field("capped", pa.bool_(), "with a target ceiling: the map stopped at max_budget below the target; null "
              "without one", nullable=True),
        field("value_empty", pa.float64(), "the game's value of the all-baseline image (every cell removed)",
              nullable=True),
        field("value_full", pa.float64(), "the game's value of the whole image (sum of exact φ = full - empty)",
              nullable=True),
        field("p_empty", pa.float64(), "the model's probability of the explained class on the all-baseline image",
              nullable=True),
        field("p_full", pa.float64(), "the model's probability of the explained class on the whole image",
              nullable=True),
        *(field(name, pa.list_(pa.float64()), doc, nullable=True) for name, doc in (
            ("deletion", "the game's value as the map's cells are removed, most positive first (curve_steps + 1 "
                         "points over the share of cells removed, 0..1)"),
            ("insertion", "the game's value as the map's cells are added to the baseline, most positive first"),
            ("deletion_random", "the deletion curve along a random order (seeded by the image)"),
            ("insertion_random", "the insertion curve along the same random order"))),
    ],
    metadata={"doc": "one row per (image, model): a Shapley map of G x G regional contributions"},
), unique=("key", "model_sha256"))


# -- reading and writing ------------------------------------------------------------------------------

class DamagedFile(UserError):
    """A table file that does not read as Parquet (truncated, overwritten): the job stops with one line naming
    it and what to do."""


def damage(error: Exception) -> str:
    """What is wrong with a file that did not read, in a few words."""
    return " ".join(str(error).split())[:200]


def check_files(uri: str) -> None:
    """Raise :class:`DamagedFile` naming the first Parquet file under ``uri`` (a file or a folder) whose footer
    does not read; a storage fault stays an ``OSError``."""
    files = [uri] if uri.endswith(".parquet") else [u for u, _ in storage.list_files(uri) if u.endswith(".parquet")]
    for file in files:
        fs, path = storage.resolve(file)
        try:
            pq.read_metadata(path, filesystem=fs)
        except (pa.ArrowInvalid, OSError) as e:
            if not storage.exists(file):
                raise
            raise DamagedFile(f"{file} is damaged ({damage(e)}): re-run the job that wrote it (the ingest rebuilds "
                              "what it can), or delete the file") from e


def _first_of_each(table: pa.Table, unique: tuple[str, ...], name: str) -> pa.Table:
    """``table`` with only the first row of each value of the ``unique`` columns, in order."""
    if table.num_rows < 2:
        return table
    rows = table.select(list(unique)).append_column("__row", pa.array(np.arange(table.num_rows)))
    first = np.sort(rows.group_by(list(unique), use_threads=False).aggregate([("__row", "min")])["__row_min"]
                    .to_numpy())
    if len(first) == table.num_rows:
        return table
    log.warning("table %s holds %d rows twice (two runs wrote one output?): each read once", name,
                table.num_rows - len(first))
    return table.take(first)


def read(uri: str, name: str, columns: list[str] | None = None, filter: pc.Expression | None = None) -> pa.Table:
    """Table ``name`` (its registered schema) from a Parquet file or folder of files at ``uri``, optionally
    only some columns and rows (pushed down to Parquet); an empty table when nothing is there. Files
    still being written (``.tmp-*``, see :func:`write_parquet`) are not read; rows that share a table's
    unique columns are read once (a last defence: one writer per output holds them apart); a damaged file is a
    :class:`DamagedFile`."""
    schema = TABLES[name]
    if not storage.exists(uri):
        return schema.empty_table().select(columns or schema.names)
    unique = UNIQUE.get(name, ())
    read_columns = None if columns is None else columns + [c for c in unique if c not in columns]
    fs, path = storage.resolve(uri)
    try:
        dataset = pads.dataset(path, filesystem=fs, format="parquet", schema=schema)  # skips ".tmp-*" files
        table = dataset.to_table(columns=read_columns, filter=filter)
    except (pa.ArrowInvalid, OSError):
        check_files(uri)  # names the damaged file, if that was it
        raise
    if unique:
        table = _first_of_each(table, unique, name)
    return table if columns is None else table.select(columns)


def write_parquet(table: pa.Table, uri: str, compression: str = "snappy") -> None:
    """Write a Parquet file atomically (:func:`fst_ray.storage.atomic_path`): readers see the old file or the
    whole new one, and an interrupted write leaves nothing under ``uri``."""
    with storage.atomic_path(uri) as (fs, tmp):
        pq.write_table(table, tmp, filesystem=fs, compression=compression)
