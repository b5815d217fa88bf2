"""Starting or joining Ray: a running cluster when one is reachable, a local one otherwise."""

from __future__ import annotations

import logging
import os

import ray

log = logging.getLogger(__name__)


def init_ray(**kwargs) -> None:
    """Join the cluster this process was submitted to (``ray job submit`` sets ``RAY_ADDRESS``), or start
    a local Ray. Idempotent: does nothing when Ray is already initialised (tests, notebooks)."""
    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(**kwargs)
    else:
        kwargs.setdefault("include_dashboard", False)
        ray.init(**kwargs)
    log.info("Ray resources: %s", ray.cluster_resources())
