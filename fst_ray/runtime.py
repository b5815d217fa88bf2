"""Starting or joining Ray: a running cluster when one is reachable, a local one otherwise; and the console.

The console is quiet by default: a job prints its own lines, progress bars and summary, while Ray's own
log lines (workers' output, Ray Data's executor messages, Ray Train's controller) stay in Ray's log files
(``/tmp/ray/session_latest/logs``). :func:`set_verbose` (the jobs' ``--verbose``) shows them.
"""

from __future__ import annotations

import contextlib
import logging
import os

import ray

log = logging.getLogger(__name__)

_VERBOSE = False


def set_verbose(verbose: bool) -> None:
    """Show (``True``) or hide Ray's own log lines on the console from now on."""
    global _VERBOSE
    _VERBOSE = bool(verbose)
    _quiet_ray_data(not _VERBOSE)


def _quiet_ray_data(quiet: bool) -> None:
    """Ray Data's console handler at WARNING (its log file keeps everything); its progress bars off."""
    import ray.data
    from ray.data._internal.logging import SessionFileHandler

    for handler in logging.getLogger("ray.data").handlers:
        if not isinstance(handler, SessionFileHandler):
            handler.setLevel(logging.WARNING if quiet else logging.INFO)
    ray.data.DataContext.get_current().enable_progress_bars = not quiet
    # ...and it says so with a warning of its own, which in quiet mode is the point, not news
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR if quiet else logging.NOTSET)


def _no_cpu_alarm(record: logging.LogRecord) -> bool:
    return "does not have any available CPUs" not in record.getMessage()


@contextlib.contextmanager
def no_cpu_alarm():
    """Within: Ray Data's "no available CPUs, the Dataset job will hang" off the quiet console (its log file
    keeps it) -- for code that leaves Ray Data a CPU by construction, where the warning, checked at one instant
    while Ray Data's own tasks or actors hold the CPUs, is a false alarm."""
    from ray.data._internal.logging import SessionFileHandler

    handlers = [] if _VERBOSE else [h for h in logging.getLogger("ray.data").handlers
                                    if not isinstance(h, SessionFileHandler)]
    for h in handlers:
        h.addFilter(_no_cpu_alarm)
    try:
        yield
    finally:
        for h in handlers:
            h.removeFilter(_no_cpu_alarm)


def init_ray(**kwargs) -> None:
    """Join the cluster this process was submitted to (``ray job submit`` sets ``RAY_ADDRESS``), or start
    a local Ray. Idempotent: does nothing when Ray is already initialised (tests, notebooks). Quiet
    unless :func:`set_verbose`."""
    if ray.is_initialized():
        return
    kwargs.setdefault("log_to_driver", _VERBOSE)
    kwargs.setdefault("logging_level", logging.INFO if _VERBOSE else logging.WARNING)
    if not os.environ.get("RAY_ADDRESS"):
        kwargs.setdefault("include_dashboard", False)
    # "token authentication is enabled" is Ray's notice of its default (kept on), not a warning to act on
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
        logging.INFO if _VERBOSE else logging.ERROR)
    ray.init(**kwargs)
    _quiet_ray_data(not _VERBOSE)
    log.info("Ray resources: %s", ray.cluster_resources())


def shutdown_ray() -> None:
    """End this driver's Ray: its actors and tasks, and the local cluster when this process started one (so no Ray
    process outlives an interrupted job)."""
    if ray.is_initialized():
        with contextlib.suppress(Exception):
            ray.shutdown()
