"""One command line for every job, generated from its pydantic config.

Each field of the config is a flag (``frames_per_video`` -> ``--frames-per-video``; a nested model's fields
are dotted: ``--explain.budget 512``), typed from its annotation, with the field's description as help:
lists take comma-separated values (``--methods Deepfakes,FaceSwap``), booleans ``--x`` / ``--no-x``,
``Literal`` fields list their choices, mappings take JSON. Flags override ``--config FILE`` (YAML, a local
path or URI). ``--verbose`` shows Ray's own log lines, which otherwise stay in Ray's log files.
"""

from __future__ import annotations

import argparse
import json
import types
import typing
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from fst_ray import runtime
from fst_ray.config import JobConfig

__all__ = ["build_parser", "parse", "main"]


def _unwrap(annotation):
    """The annotation without ``Optional``/``Annotated`` wrappers."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _scalar(t) -> Callable[[str], Any]:
    return t if t in (int, float, str) else str


def _flag_kwargs(annotation) -> dict | None:
    """argparse keywords for one field, ``None`` for fields only a config file can set."""
    t = _unwrap(annotation)
    origin = typing.get_origin(t)
    if t is bool:
        return {"action": argparse.BooleanOptionalAction}
    if t in (int, float, str):
        return {"type": t}
    if origin is typing.Literal:
        choices = list(typing.get_args(t))
        return {"type": type(choices[0]), "choices": choices}
    if origin in (list, tuple):
        item = _unwrap(typing.get_args(t)[0]) if typing.get_args(t) else str
        convert = _scalar(item)
        return {"type": lambda s: [convert(v) for v in s.split(",") if v], "metavar": "A,B,..."}
    if origin is dict:
        return {"type": json.loads, "metavar": "JSON"}
    return None


def _add_fields(parser: argparse.ArgumentParser, model: type[BaseModel], prefix: str = "") -> None:
    for name, field in model.model_fields.items():
        dest = prefix + name
        t = _unwrap(field.annotation)
        if isinstance(t, type) and issubclass(t, BaseModel):
            _add_fields(parser, t, dest + ".")
            continue
        kwargs = _flag_kwargs(field.annotation)
        if kwargs is None:
            continue
        default = "" if field.is_required() else f" (default: {field.get_default(call_default_factory=True)!r})"
        parser.add_argument("--" + dest.replace("_", "-"), dest=dest, default=None,
                            help=(field.description or "") + default, **kwargs)


def build_parser(config: type[JobConfig], doc: str | None) -> argparse.ArgumentParser:
    """The parser of a job: ``--config``, ``--verbose`` and one flag per config field."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML config, a local path or URI (flags override it)")
    parser.add_argument("--verbose", action="store_true", help="show Ray's own log lines")
    _add_fields(parser, config)
    return parser


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}`` (``None`` values dropped)."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        if value is None:
            continue
        *parents, last = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return out


def parse(config: type[JobConfig], doc: str | None, argv: list[str] | None = None) -> JobConfig:
    """The job's config from ``--config`` and the flags (which win); sets the console's verbosity."""
    args = vars(build_parser(config, doc).parse_args(argv))
    runtime.set_verbose(args.pop("verbose"))
    return config.load(args.pop("config"), **_nest(args))


def main(config: type[JobConfig], run: Callable[[Any], int | None], doc: str | None,
         argv: list[str] | None = None) -> int:
    """Parse the job's config and run it; returns the exit code ``run`` returns (``None``: 0)."""
    return run(parse(config, doc, argv)) or 0
