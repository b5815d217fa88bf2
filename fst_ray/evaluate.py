"""Metrics of detectors and identity encoders: pure pandas/numpy over scikit-learn, no Ray.

Detector predictions are one row per frame: ``video``, ``method``, ``compression``, ``det_label``
(1 = fake) and ``score`` (the model's P(fake), 0..1). Each fake method is scored against the originals
of the same compression (``method = all``: every fake). Frame level scores frames; video level scores
each video by its mean frame score. Identity predictions are one row per frame: ``method``,
``compression``, ``label`` and ``pred`` (class indices); top-1 accuracy.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score, roc_curve

from fst_ray import ffpp
from fst_ray.config import JobConfig, StrictModel, register_config, register_result

__all__ = ["eer", "binary_metrics", "video_scores", "detection_rows", "identity_rows", "markdown_table",
           "report_markdown", "DetectionRow", "IdentityRow", "EvalResult", "EvalConfig"]

ALL = "all"


@register_config("evaluate")
class EvalConfig(JobConfig):
    """Config of ``jobs/evaluate.py``: score model files on the ingest's ``frames``."""

    data: str = Field(..., description="ingest output URI (its `frames` table is read)")
    model: str = Field(..., description="a model file (*.pt) or a folder of them, e.g. a run's models/")
    output: str | None = Field(None, description="where metrics.json/.md go; default: eval/ beside models/")
    split: str = Field("test", description="split detectors are scored on (identity-disjoint)")
    batch_size: int = Field(64, ge=1)
    gpu: bool = Field(False, description="score on GPUs (one per scoring actor)")
    concurrency: int = Field(1, ge=1, description="scoring actors")

    def output_uri(self) -> str:
        if self.output:
            return self.output
        models = self.model.rstrip("/")
        if models.endswith(".pt"):
            models = models.rsplit("/", 1)[0]
        return models.rsplit("/", 1)[0] + "/eval" if "/" in models else "eval"


class DetectionRow(StrictModel):
    level: str
    method: str
    compression: str
    n: int
    n_real: int
    n_fake: int
    auc: float | None
    ap: float | None
    eer: float | None
    acc: float


class IdentityRow(StrictModel):
    method: str
    compression: str
    n: int
    top1: float


@register_result("evaluate")
class EvalResult(StrictModel):
    """What ``jobs/evaluate.py`` writes per model (``metrics.json``)."""

    model: str
    role: str
    arch: str
    data: str
    subset: str
    detection: list[DetectionRow] = []
    identity: list[IdentityRow] = []


def eer(y_true: np.ndarray, score: np.ndarray) -> float:
    """Equal error rate: where the false positive rate equals the false negative rate on the ROC curve
    (linear interpolation between the two ROC points around the crossing)."""
    fpr, tpr, _ = roc_curve(y_true, score)
    d = (1 - tpr) - fpr  # non-increasing along the curve
    i = int(np.argmax(d <= 0))
    if i == 0:
        return float(fpr[0])
    t = d[i - 1] / (d[i - 1] - d[i])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def binary_metrics(y_true, score, threshold: float = 0.5) -> dict:
    """AUC, AP, EER (``None`` where one class is absent) and accuracy at ``score >= threshold``."""
    y = np.asarray(y_true).astype(int)
    s = np.asarray(score, dtype=float)
    both = 0 < y.sum() < len(y)
    return {
        "n": len(y), "n_real": int((y == 0).sum()), "n_fake": int((y == 1).sum()),
        "auc": float(roc_auc_score(y, s)) if both else None,
        "ap": float(average_precision_score(y, s)) if both else None,
        "eer": eer(y, s) if both else None,
        "acc": float(accuracy_score(y, (s >= threshold).astype(int))),
    }


def video_scores(pred: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, compression, video): mean frame ``score``, the video's ``det_label``."""
    return (pred.groupby(["method", "compression", "video"], as_index=False)
            .agg(score=("score", "mean"), det_label=("det_label", "first")))


def _groups(df: pd.DataFrame):
    """``(method, compression, rows)``: each fake method (and ``all``) with the originals, per compression."""
    for comp in sorted(df["compression"].unique(), key=_compression_order):
        at = df[df["compression"] == comp]
        real = at["method"] == ffpp.ORIGINAL
        methods = sorted(m for m in at["method"].unique() if m != ffpp.ORIGINAL)
        for method in methods + [ALL]:
            yield method, comp, at[real | ((at["method"] == method) if method != ALL else ~real)]


def _compression_order(c: str):
    return ffpp.COMPRESSIONS.index(c) if c in ffpp.COMPRESSIONS else len(ffpp.COMPRESSIONS)


def detection_rows(pred: pd.DataFrame) -> list[DetectionRow]:
    """Frame- and video-level metrics per method x compression (see module doc)."""
    rows = []
    for level, df in (("frame", pred), ("video", video_scores(pred))):
        for method, comp, sub in _groups(df):
            rows.append(DetectionRow(level=level, method=method, compression=comp,
                                     **binary_metrics(sub["det_label"], sub["score"])))
    return rows


def identity_rows(pred: pd.DataFrame) -> list[IdentityRow]:
    """Top-1 accuracy per method x compression, and over all methods per compression."""
    rows = []
    for comp in sorted(pred["compression"].unique(), key=_compression_order):
        at = pred[pred["compression"] == comp]
        for method in sorted(at["method"].unique()) + [ALL]:
            sub = at if method == ALL else at[at["method"] == method]
            rows.append(IdentityRow(method=method, compression=comp, n=len(sub),
                                    top1=float(accuracy_score(sub["label"], sub["pred"]))))
    return rows


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def markdown_table(rows: list[BaseModel], columns: list[str]) -> str:
    """A GitHub Markdown table of ``rows`` (pydantic models), floats to 3 decimals, ``None`` as ``–``."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(getattr(r, c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


DETECTION_COLUMNS = ["method", "compression", "n", "n_real", "n_fake", "auc", "acc", "eer", "ap"]


def report_markdown(results: list[EvalResult]) -> str:
    """The Markdown report of evaluated models: one table per model and level, and, where several
    detectors were evaluated, their AUC side by side per compression (all methods, frame level)."""
    parts = ["# Evaluation"]
    for r in results:
        parts.append(f"## {r.role} ({r.arch})\n\n`{r.model}` on {r.subset}")
        for level in ("frame", "video"):
            rows = [d for d in r.detection if d.level == level]
            if rows:
                parts.append(f"{level} level\n\n" + markdown_table(rows, DETECTION_COLUMNS))
        if r.identity:
            parts.append("top-1 accuracy\n\n" + markdown_table(r.identity, ["method", "compression", "n", "top1"]))
    detectors = [r for r in results if r.detection]
    if len(detectors) > 1:
        comps = sorted({d.compression for r in detectors for d in r.detection}, key=_compression_order)
        auc = {(r.role, d.compression): d.auc for r in detectors for d in r.detection
               if d.level == "frame" and d.method == ALL}
        head = "| compression | " + " | ".join(f"AUC {r.role}" for r in detectors) + " |"
        lines = [head, "|" + "---|" * (len(detectors) + 1)]
        lines += [f"| {c} | " + " | ".join(_fmt(auc.get((r.role, c))) for r in detectors) + " |" for c in comps]
        parts.append("## Detectors side by side (frame level, all methods)\n\n" + "\n".join(lines) + "\n")
    return "\n\n".join(p.rstrip("\n") for p in parts) + "\n"
