"""Arrow schemas of fst-ray's Parquet tables, registered so ``schemas/`` documents them.

A row's key is a readable string, ``{method}/{compression}/{video}/{frame:05d}``, never a position.
"""

from __future__ import annotations

import pyarrow as pa

TABLES: dict[str, pa.Schema] = {}


def register_table(name: str, schema: pa.Schema) -> pa.Schema:
    """Record a table's schema under ``schemas/table.<name>.json``; returns the schema."""
    TABLES[name] = schema
    return schema


def frame_key(method: str, compression: str, video: str, frame: int) -> str:
    """The key of one frame: ``{method}/{compression}/{video}/{frame:05d}``."""
    return f"{method}/{compression}/{video}/{frame:05d}"


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


# -- the ingest's tables (DESIGN.md §3; written by jobs/prepare_data.py) ---------------------------------

FRAMES = register_table("frames", pa.schema(
    [
        field("key", pa.string(), "{method}/{compression}/{video}/{frame:05d}"),
        field("image", pa.binary(), "aligned face, S*S*3 uint8 RGB, row-major HWC, raw bytes (lossless)"),
        field("size", pa.int32(), "S: the aligned image is S x S pixels"),
        field("video", pa.string(), "video name: 'A' for originals, 'A_B' for fakes"),
        field("frame_index", pa.int32(), "0-based index of the frame in the video"),
        field("method", pa.string(), "'original' or a FF++ manipulation method"),
        field("compression", pa.string(), "raw, c23 or c40"),
        field("det_label", pa.int8(), "1 = fake, 0 = real"),
        field("source_id", pa.string(), "paper's source: A of 'A_B' (and of 'A')"),
        field("target_id", pa.string(), "paper's target: B of 'A_B' (A for originals)"),
        field("split", pa.string(), "train, val or test (identity-disjoint FF++ splits)"),
        field("mask", pa.binary(), "aligned manipulation mask, S*S uint8 (255 = changed); null for reals "
              "or where the corpus has no mask", nullable=True),
    ],
    metadata={"doc": "one row per sampled, aligned frame"},
))

FST_PAIRS = register_table("fst_pairs", pa.schema(
    [
        field("fake_key", pa.string(), "key of a fake frame in `frames`"),
        field("source_key", pa.string(), "same frame index of original video A, same compression"),
        field("target_key", pa.string(), "a frame of original video B, same compression"),
        field("method", pa.string(), "manipulation method of the fake"),
        field("compression", pa.string(), "raw, c23 or c40"),
        field("split", pa.string(), "split of the fake"),
    ],
    metadata={"doc": "one row per fake frame: its FST triple (fake, source, target)"},
))

ERRORS = register_table("errors", pa.schema(
    [
        field("path", pa.string(), "URI of the input that could not be used"),
        field("stage", pa.string(), "pipeline stage that rejected it (list, parse, decode, align, pair, ...)"),
        field("reason", pa.string(), "human-readable reason"),
    ],
    metadata={"doc": "one row per unusable input; the job goes on without it"},
))

# -- Shapley maps (written by jobs/shapley.py, fst_ray.shapley.run) ------------------------------------

SHAPLEY = register_table("shapley", pa.schema(
    [
        field("key", pa.string(), "frame key in `frames`: {method}/{compression}/{video}/{frame:05d}"),
        field("role", pa.string(), "encoder role: source, target, det (or fst)"),
        field("model", pa.string(), "URI of the model file"),
        field("explained_class", pa.string(), "explained class: the source/target video id, or real/fake"),
        field("class_index", pa.int32(), "index of the explained class in the model's output"),
        field("grid", pa.int32(), "G: the players are the G x G cells, row-major"),
        field("phi", pa.list_(pa.float32()), "Shapley value of each cell (G*G, row-major), in units of the "
              "game's value (not normalised)"),
        field("stderr", pa.list_(pa.float32()), "standard error of each value (0 for exact)"),
        field("n_evals", pa.int64(), "coalitions evaluated for this image (shared by its models)"),
        field("estimator", pa.string(), "estimator that ran (what auto chose)"),
        field("seed", pa.int64(), "the image's seed (derived from the job's seed and the key)"),
        field("budget", pa.int64(), "evaluation budget per image"),
        field("baseline", pa.string(), "what removed cells showed: zero, mean, blur"),
        field("value", pa.string(), "game value: logit, probability or log-odds"),
    ],
    metadata={"doc": "one row per (image, model): a Shapley map of G x G regional contributions"},
))
