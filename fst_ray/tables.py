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
