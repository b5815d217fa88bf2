"""One command line for every job, generated from its pydantic config.

Each field of the config is a flag (``frames_per_video`` -> ``--frames-per-video``; a nested model's fields
are dotted: ``--explain.budget 512``), typed from its annotation, with the field's description as help:
lists take comma-separated values (``--methods Deepfakes,FaceSwap``), booleans ``--x`` / ``--no-x``,
``Literal`` fields list their choices, mappings take JSON. Flags override ``--config FILE`` (YAML, a local
path or URI). ``--verbose`` shows Ray's own log lines, which otherwise stay in Ray's log files.

A user's mistake — an invalid or unknown config key (with the nearest valid name), a :class:`UserError` —
ends in one line on stderr and exit code 2 (so does storage refusing the credentials); a storage fault that
outlasted its retries (an ``OSError``: the object store unreachable, a disk full) ends in one line naming it and
exit code 3, nothing marked complete, and the same command resumes; Ctrl-C one line, Ray's processes ended, exit
code 130; ``--debug`` shows the traceback instead. A job holds the lease of each output it writes
(:mod:`fst_ray.lease`): a second run on the same output is refused with one line.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import signal
import sys
import types
import typing
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from fst_ray import lease, runtime, storage
from fst_ray.config import JobConfig, UserError, choices

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
        if (names := choices(field)) is not None:  # a registry's names
            kwargs["choices"] = list(names)
        default = "" if field.is_required() else f" (default: {field.get_default(call_default_factory=True)!r})"
        parser.add_argument("--" + dest.replace("_", "-"), dest=dest, default=None,
                            help=((field.description or "") + default).replace("%", "%%"), **kwargs)


def build_parser(config: type[JobConfig], doc: str | None) -> argparse.ArgumentParser:
    """The parser of a job: ``--config``, ``--verbose`` and one flag per config field."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML config, a local path or URI (flags override it)")
    parser.add_argument("--verbose", action="store_true", help="show Ray's own log lines")
    parser.add_argument("--debug", action="store_true", help="show the traceback of a user error")
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
    args.pop("debug")
    return config.load(args.pop("config"), **_nest(args))


def _field_names(model: type[BaseModel], loc: tuple) -> list[str]:
    """The field names of the (nested) model at ``loc``'s parent."""
    for part in loc[:-1]:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        t = _unwrap(field.annotation) if field else None
        if not (isinstance(t, type) and issubclass(t, BaseModel)):
            return []
        model = t
    return list(model.model_fields)


def describe(error: ValidationError, config: type[BaseModel]) -> str:
    """One line for a config's validation errors, naming each key and, for an unknown one, the nearest valid."""
    parts = []
    for e in error.errors():
        key = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            near = difflib.get_close_matches(str(e["loc"][-1]), _field_names(config, e["loc"]), n=1)
            parts.append(f"unknown key {key!r}" + (f" (did you mean {'.'.join([*map(str, e['loc'][:-1]), near[0]])!r}?)"
                                                  if near else ""))
        else:
            parts.append(f"{key}: {e['msg']}" if key else e["msg"])
    return "invalid config: " + "; ".join(parts)


def main(config: type[JobConfig], run: Callable[[Any], int | None], doc: str | None,
         argv: list[str] | None = None) -> int:
    """Parse the job's config and run it, holding the leases of its outputs (:meth:`JobConfig.outputs`: one writer
    per output, and the check that they can be written, before any work); returns the exit code ``run`` returns
    (``None``: 0), or after one line on stderr 2 for a user's mistake, 3 for a storage fault, 130 for Ctrl-C
    (``--debug``: raise it)."""
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    cfg = None
    try:
        cfg = parse(config, doc, argv)
        with contextlib.ExitStack() as leases:
            for output in cfg.outputs():
                leases.enter_context(lease.hold(output))
            return run(cfg) or 0
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        print("interrupted; re-run the same command to resume", file=sys.stderr)
        runtime.shutdown_ray()
        return 130
    except (UserError, ValidationError) as e:
        if debug:
            raise
        print(f"error: {describe(e, config) if isinstance(e, ValidationError) else e}", file=sys.stderr)
        return 2
    except FileNotFoundError as e:  # a path the user gave that is not there
        if debug:
            raise
        print(f"error: not found: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if debug:
            raise
        code, line = storage.describe_error(e, cfg.outputs() if cfg is not None else [])
        print(f"error: {line}", file=sys.stderr)
        return code
