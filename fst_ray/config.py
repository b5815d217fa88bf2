"""Job configs: pydantic models loaded from YAML, unknown keys rejected.

Every job config subclasses :class:`JobConfig` and is registered with :func:`register_config`, so that
``python -m fst_ray.schemas`` writes its JSON Schema into ``schemas/`` (a test fails when one is stale).
Command-line flags override YAML values: ``Config.load(path, **flags)`` (``None`` flags are ignored).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict

from fst_ray import storage

__all__ = ["StrictModel", "JobConfig", "register_config", "CONFIGS", "RESULTS", "register_result"]

T = TypeVar("T", bound="JobConfig")

CONFIGS: dict[str, type[BaseModel]] = {}
RESULTS: dict[str, type[BaseModel]] = {}


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
            data = yaml.safe_load(storage.read_bytes(str(path))) or {}
            if not isinstance(data, dict):
                raise ValueError(f"{path}: a config file must hold a mapping, got {type(data).__name__}")
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(data)


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
