"""The ingest's records, read by every consumer of its output: ``_ingest.json`` (how the frames were made, written
first) and ``_SUCCESS.json`` (written last, only by a run that succeeded: verdict, counts, parameters)."""

from __future__ import annotations

import json

from fst_ray import storage

__all__ = ["PARAMS_FILE", "SUCCESS_FILE", "SUCCEEDED", "BEFORE_DATASETS", "write_json", "finished_ingest",
           "ingest_params", "ingest_dataset"]

PARAMS_FILE, SUCCESS_FILE = "_ingest.json", "_SUCCESS.json"
SUCCEEDED = "succeeded"

#: the parameters an ingest recorded before fst-ray read other datasets: it was an FF++ tree, none re-encoded
BEFORE_DATASETS = {"dataset": "ffpp", "split_seed": 0, "reencode": {}}


def write_json(uri: str, doc: dict) -> None:
    storage.write_bytes(uri, json.dumps(doc, indent=1, sort_keys=True).encode())


def finished_ingest(output: str) -> dict | None:
    """The completion marker of a succeeded ingest at ``output`` (its counts and ``params``), ``None`` when
    there is none (never finished, failed, or still running)."""
    uri = storage.join(output, SUCCESS_FILE)
    if not storage.exists(uri):
        return None
    marker = json.loads(storage.read_bytes(uri))
    return marker if marker.get("verdict") == SUCCEEDED else None


def ingest_params(output: str) -> dict:
    """How the frames at ``output`` were made (``_ingest.json`` without the input's path; empty where there is
    none, as for hand-written tables): what caches of results made from them record."""
    uri = storage.join(output, PARAMS_FILE)
    params = json.loads(storage.read_bytes(uri)) if storage.exists(uri) else {}
    params.pop("input", None)
    return params


def ingest_dataset(output: str) -> str:
    """The dataset layout (:mod:`fst_ray.datasets`) the frames at ``output`` were ingested from (FF++ where the
    ingest predates other datasets or the tables were written by hand)."""
    return ingest_params(output).get("dataset", BEFORE_DATASETS["dataset"])
