"""Scoring frames with a trained model through Ray Data, and the evaluation of model files.

:func:`evaluation_keys` chooses what each role is scored on (DESIGN.md §1): detectors (``det``, ``fst``)
on the identity-disjoint ``test`` split, identity encoders (``source``, ``target``) on the frame-disjoint
hold-out they never trained on (rebuilt from the seed and fraction stored in the model file).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from fst_ray import storage
from fst_ray.data import views
from fst_ray.data.stream import frames_dataset
from fst_ray.evaluate import EvalConfig, EvalResult, detection_rows, identity_rows, report_markdown
from fst_ray.models import load_model, load_payload
from fst_ray.runtime import init_ray
from fst_ray.train.augment import resize, to_float
from fst_ray.train.roles import decode_images, encoder_split

__all__ = ["evaluation_keys", "predict", "evaluate_models", "model_files"]

DETECTORS = ("det", "fst")


def evaluation_keys(index: pa.Table, info: dict, split: str = "test") -> tuple[str, pa.Table]:
    """``(subset name, index rows)`` a model file is scored on (see module doc)."""
    if info["role"] in DETECTORS:
        return f"split={split}", views.select(index, split=split)
    meta = info["metadata"]
    _, holdout = encoder_split(index, meta["seed"], meta["holdout_fraction"])
    return f"frame hold-out (seed={meta['seed']}, fraction={meta['holdout_fraction']})", holdout


class _Scorer:
    """Ray Data callable: every model file's output for batches of ``frames`` rows (one read, one decode):
    column ``out{i}`` = P(fake) of detector ``i``, or the predicted class index of identity encoder ``i``."""

    def __init__(self, model_uris: list[str], use_gpu: bool):
        self.device = torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")
        self.models = []
        for uri in model_uris:
            model, info = load_model(uri)
            self.models.append((model.to(self.device), info["role"] in DETECTORS, info["metadata"].get("image_size")))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = to_float(torch.from_numpy(decode_images(batch["image"], int(batch["size"][0]))).to(self.device))
        out = {"key": batch["key"]}
        with torch.no_grad():
            for i, (model, detector, size) in enumerate(self.models):
                logits = model(resize(x, size or x.shape[-1])).float()
                out[f"out{i}"] = (torch.softmax(logits, 1)[:, 1] if detector else logits.argmax(1)).cpu().numpy()
        return out


def predict(data: str, model_uris: list[str], keys: list[str], batch_size: int = 64, gpu: bool = False,
            concurrency: int = 1) -> pd.DataFrame:
    """Outputs of several model files for the ``frames`` rows of ``keys``, read once: ``key`` and ``out{i}``
    per model (detectors: P(fake); identity encoders: class index)."""
    ds = frames_dataset(data, ["key", "image", "size"], keys)
    ds = ds.map_batches(_Scorer, fn_constructor_kwargs={"model_uris": model_uris, "use_gpu": gpu},
                        batch_size=batch_size, batch_format="numpy", concurrency=concurrency,
                        num_gpus=1 if gpu else 0, num_cpus=0 if gpu else 1)
    return ds.to_pandas()


def _metrics(uri: str, info: dict, subset: str, df: pd.DataFrame, data: str) -> EvalResult:
    result = EvalResult(model=uri, role=info["role"], arch=info["arch"], data=data, subset=subset)
    if info["role"] in DETECTORS:
        result.detection = detection_rows(df.rename(columns={"out": "score"}))
    else:
        classes = {c: i for i, c in enumerate(info["classes"])}
        ids = df["source_id" if info["role"] == "source" else "target_id"]
        df = df.assign(label=ids.map(classes).fillna(-1).astype(int),  # an id the model never saw: wrong
                       pred=df["out"].astype(int))
        result.identity = identity_rows(df)
    return result


def model_files(uri: str) -> list[str]:
    """A model file URI, or every ``*.pt`` model file directly in a folder URI (e.g. a run's ``models/``)."""
    if uri.endswith(".pt"):
        return [uri]
    files = [u for u, _ in storage.list_files(uri, recursive=False) if u.endswith(".pt")]
    if not files:
        raise FileNotFoundError(f"no model files (*.pt) at {uri}")
    return files


def evaluate_models(cfg: EvalConfig) -> list[EvalResult]:
    """Evaluate every model file of ``cfg.model`` in one pass over ``frames``; write ``metrics.json`` and
    ``metrics.md`` to ``cfg.output_uri()``."""
    init_ray()
    index = views.read_index(cfg.data)
    uris = model_files(cfg.model)
    infos = [load_payload(u) for u in uris]
    subsets = [evaluation_keys(index, info, cfg.split) for info in infos]
    for uri, (name, rows) in zip(uris, subsets):
        if rows.num_rows == 0:
            raise ValueError(f"{uri}: no frames to score ({name}) in {cfg.data}")
    keys = sorted(set().union(*(rows["key"].to_pylist() for _, rows in subsets)))
    pred = predict(cfg.data, uris, keys, cfg.batch_size, cfg.gpu, cfg.concurrency)
    results = []
    for i, (uri, info, (name, rows)) in enumerate(zip(uris, infos, subsets)):
        df = rows.to_pandas().merge(pred[["key", f"out{i}"]].rename(columns={f"out{i}": "out"}), on="key",
                                    validate="one_to_one")
        results.append(_metrics(uri, info, name, df, cfg.data))
    out = cfg.output_uri()
    storage.write_bytes(storage.join(out, "metrics.json"),
                        json.dumps([r.model_dump() for r in results], indent=1).encode())
    storage.write_bytes(storage.join(out, "metrics.md"), report_markdown(results).encode())
    return results
