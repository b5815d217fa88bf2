"""Job configs: pydantic models loaded from YAML, unknown keys rejected.

Every job config subclasses :class:`JobConfig` and is registered with :func:`register_config`, so that
``python -m fst_ray.schemas`` writes its JSON Schema into ``schemas/`` (a test fails when one is stale).
Command-line flags override YAML values: ``Config.load(path, **flags)`` (``None`` flags are ignored; nested
mappings are merged), see :mod:`fst_ray.cli`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import core_schema

from fst_ray import datasets, ffpp, storage

__all__ = ["StrictModel", "JobConfig", "register_config", "CONFIGS", "RESULTS", "register_result", "Methods",
           "MethodList", "Compressions", "CompressionList", "VideoMethods", "Dataset", "Split", "Compression",
           "OneOf", "one_of", "choices"]

T = TypeVar("T", bound="JobConfig")

CONFIGS: dict[str, type[BaseModel]] = {}
RESULTS: dict[str, type[BaseModel]] = {}


def _members_of(allowed: tuple[str, ...], what: str):
    def check(values: list[str]) -> list[str]:
        bad = [v for v in values if v not in allowed]
        if bad:
            raise ValueError(f"unknown {what} {bad}; choose from {list(allowed)}")
        return values

    return AfterValidator(check)


Methods = Annotated[list[str], _members_of(datasets.all_methods(), "methods"),
                    Field(default_factory=lambda: list(ffpp.METHODS), description="manipulation methods")]
"""A list of manipulation methods (default: FF++'s five), validated against every dataset layout's."""
MethodList = Annotated[list[str], _members_of(datasets.all_methods(), "methods")]
"""A list of manipulation methods, validated, without a default (for optional fields)."""
Compressions = Annotated[list[str], _members_of(ffpp.COMPRESSIONS, "compressions"),
                         Field(default_factory=lambda: list(ffpp.COMPRESSIONS), description="FF++ compressions")]
"""A list of FF++ compressions (default: raw, c23, c40), validated."""
CompressionList = Annotated[list[str], _members_of(ffpp.COMPRESSIONS, "compressions")]
"""A list of FF++ compressions, validated, without a default (for optional fields)."""
VideoMethods = Annotated[list[str], _members_of((ffpp.ORIGINAL, *datasets.all_methods()), "methods")]
"""A list of methods where ``original`` (the real videos) is one too, validated."""
Split = Literal[ffpp.SPLITS]
"""One of FF++'s splits: train, val, test."""
Compression = Literal[ffpp.COMPRESSIONS]
"""One FF++ compression: raw, c23, c40."""
ImageSide = Annotated[int, Field(ge=16, le=2048)]
"""A square image's side in pixels (aligned faces, model inputs)."""


@dataclass(frozen=True)
class OneOf:
    """``Annotated[str, OneOf(...)]``: a name in a registry (``names()``) or one of ``extra``, checked when a
    config is validated, so that entries registered after this module was imported count too; the JSON Schema
    and the CLI list the names registered when they are made."""

    names: Callable[[], tuple[str, ...]]
    what: str
    extra: tuple[str, ...] = ()

    def choices(self) -> tuple[str, ...]:
        return (*self.extra, *self.names())

    def _check(self, value: str) -> str:
        if value not in self.choices():
            raise ValueError(f"unknown {self.what} {value!r}; choose from {list(self.choices())}")
        return value

    def __get_pydantic_core_schema__(self, source, handler):
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(self, schema, handler):
        out = handler(schema)
        out["enum"] = list(self.choices())
        return out


def one_of(names: Callable[[], tuple[str, ...]], what: str, *extra: str):
    """The type of a field naming an entry of a registry (:class:`OneOf`)."""
    return Annotated[str, OneOf(names, what, extra)]


def choices(field) -> tuple[str, ...] | None:
    """The names a config field (a pydantic ``FieldInfo``) may take where it is :func:`one_of` a registry."""
    return next((m.choices() for m in field.metadata if isinstance(m, OneOf)), None)


Dataset = one_of(lambda: tuple(datasets.LAYOUTS), "dataset layout", "auto")
"""A dataset layout registered in :mod:`fst_ray.datasets`, or ``auto`` (recognised from the tree)."""


def merge(base: dict, over: dict) -> dict:
    """``base`` with ``over`` applied, nested mappings merged key by key."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


class StrictModel(BaseModel):
    """A pydantic model that rejects unknown keys."""

    model_config = ConfigDict(extra="forbid")


class JobConfig(StrictModel):
    """Base of every job config."""

    @classmethod
    def load(cls: type[T], path: str | Path | None = None, **overrides: Any) -> T:
        """Read YAML from a local path or URI (if given), apply non-``None`` overrides, validate."""
        data: dict[str, Any] = {}
        if path is not None:
            try:
                data = yaml.safe_load(storage.read_bytes(str(path))) or {}
            except FileNotFoundError as e:
                raise UserError(f"config file {path} not found") from e
            except IsADirectoryError as e:
                raise UserError(f"config file {path} is a folder") from e
            except (yaml.YAMLError, UnicodeDecodeError) as e:
                where = getattr(e, "problem_mark", None)
                at = f" (line {where.line + 1}, column {where.column + 1})" if where is not None else ""
                raise UserError(f"config file {path} is not YAML{at}: "
                                f"{getattr(e, 'problem', None) or type(e).__name__}") from e
            if not isinstance(data, dict):
                raise UserError(f"{path}: a config file must hold a mapping, got {type(data).__name__}")
        return cls.model_validate(merge(data, {k: v for k, v in overrides.items() if v is not None}))

    def outputs(self) -> list[str]:
        """The locations the job writes: it holds their leases while it runs (:mod:`fst_ray.lease`), which is
        also the check, before any work, that they can be written. Default: ``output``, where there is one."""
        output = getattr(self, "output", None)
        return [output] if isinstance(output, str) else []


class UserError(Exception):
    """A mistake in a job's input or config (a path with nothing usable, a selection that selects nothing):
    the command line reports it as one line and exit code 2, without a traceback (``--debug`` shows it)."""


def record_or_refuse(uri: str, want: dict, what: str, populated: bool) -> None:
    """A cache's settings file at ``uri`` against ``want``, where ``populated`` says whether the cache holds
    results yet. Empty cache: the settings are (re)written. Results made with other settings, or results whose
    settings were never recorded (an older fst-ray): a :class:`UserError` naming each difference."""
    import json

    from fst_ray import storage

    have = json.loads(storage.read_bytes(uri)) if storage.exists(uri) else None
    if not populated:
        if have != want:
            storage.write_bytes(uri, json.dumps(want, indent=1).encode())
    elif have is None:
        raise UserError(f"{storage.parent(uri)} holds {what} whose settings were not recorded (an older fst-ray): "
                        "use another output, or delete it")
    elif have != want:
        missing = "(not recorded)"
        diff = "; ".join(f"{k}: {have.get(k, missing)!r} there, {want.get(k, missing)!r} here"
                         for k in sorted(set(have) | set(want)) if have.get(k, missing) != want.get(k, missing))
        raise UserError(f"{storage.parent(uri)} holds {what} made with other settings ({diff}): use another "
                        "output, or delete it")


def register_config(name: str):
    """Class decorator: list a config model under ``schemas/config.<name>.json``."""

    def deco(cls):
        CONFIGS[name] = cls
        return cls

    return deco


def register_result(name: str):
    """Class decorator: list a result model under ``schemas/result.<name>.json``."""

    def deco(cls):
        RESULTS[name] = cls
        return cls

    return deco
