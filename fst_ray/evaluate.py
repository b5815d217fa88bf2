"""Evaluation, in one module: the scorer of a model on frames, the metrics, and the evaluation of model
files (``jobs/evaluate.py``; training-time validation and the hypothesis jobs use the same pieces).

What a model is scored on (docs/design.md §1, "Which data trains what";
:func:`evaluation_keys`): detectors on the identity-disjoint
``test`` split, identity encoders on the frame-disjoint hold-out they never trained on (rebuilt from the
seed and fraction stored in the model file). Cross-dataset (DeepfakeBench's protocol: train on FF++, test on
Celeb-DF): a detector is scored on the test split of any ingest; an identity encoder only where its classes
are (another dataset's people are not its classes), and the metrics go to ``eval-{dataset}/`` beside the models.

Metrics are pure pandas/numpy over scikit-learn. Detector predictions are one row per frame: ``video``,
``method``, ``compression``, ``det_label`` (1 = fake) and ``score`` (the model's P(fake), 0..1). Each fake
method is scored against the originals of the same compression (``method = all``: every fake). Frame
level scores frames; video level scores each video by its mean frame score. Identity predictions are
one row per frame: ``method``, ``compression``, ``label`` and ``pred`` (class indices); top-1 accuracy.
Scoring many frames runs on Ray Data (:func:`predict`).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import ray.data
import torch
from pydantic import BaseModel, Field
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score, roc_curve

from fst_ray import ffpp, frames, roles, storage
from fst_ray.config import JobConfig, Split, StrictModel, UserError, register_config, register_result
from fst_ray.data import views
from fst_ray.data.records import ingest_dataset
from fst_ray.data.stream import frames_dataset
from fst_ray.layout import evaluation_dir
from fst_ray.markdown import md_table
from fst_ray.models import load_model, load_payload
from fst_ray.runtime import init_ray
from fst_ray.train.labels import encoder_split

__all__ = ["eer", "binary_metrics", "video_scores", "detection_rows", "identity_rows", "markdown_table",
           "report_markdown", "DetectionRow", "IdentityRow", "EvalResult", "EvalConfig", "score",
           "evaluation_keys", "predict", "model_files", "evaluate_models", "output_folder", "model_metrics", "trained_on"]

ALL = "all"


@register_config("evaluate")
class EvalConfig(JobConfig):
    """Config of ``jobs/evaluate.py``: score model files on the ingest's ``frames``."""

    input: str = Field(..., description="ingest output URI (its `frames` table is read)")
    models: str = Field(..., description="a model file (*.pt) or a folder of them, e.g. a run's models/; several, "
                                         "comma-separated (metrics go beside the first)")
    output: str | None = Field(None, description="where metrics.json/.md go; default: eval/ beside models/")
    split: Split = Field("test", description="split detectors are scored on (identity-disjoint)")
    batch_size: int = Field(64, ge=1)
    gpu: bool = Field(False, description="score on GPUs (one per scoring actor)")
    concurrency: int = Field(1, ge=1, description="scoring actors")

    def output_uri(self) -> str:
        """Where the metrics go: ``output``, else ``eval/`` beside the models folder."""
        if self.output:
            return self.output
        first = self.models.split(",")[0].strip()
        folder = storage.parent(first) if first.endswith(".pt") else first
        return evaluation_dir(storage.parent(folder))

    def outputs(self) -> list[str]:
        return [self.output_uri()]


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
    model_sha256: str | None = None  # the model file's content hash: what a cached evaluation is found by
    role: str
    arch: str
    input: str
    subset: str
    dataset: str | None = None  # layout of the scored ingest (fst_ray.datasets)
    trained_on: str | None = None  # layout of the ingest the model trained on, where its file says
    note: str | None = None  # why a model was not scored
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


def markdown_table(rows: list[BaseModel], columns: list[str]) -> str:
    """A GitHub Markdown table of ``rows`` (pydantic models), one column per field named."""
    return md_table(columns, [[getattr(r, c) for c in columns] for r in rows]) + "\n"


DETECTION_COLUMNS = ["method", "compression", "n", "n_real", "n_fake", "auc", "acc", "eer", "ap"]


def report_markdown(results: list[EvalResult]) -> str:
    """The Markdown report of evaluated models: one table per model and level, and, where several
    detectors were evaluated, their AUC side by side per compression (all methods, frame level)."""
    parts = ["# Evaluation"]
    for r in results:
        where = f" of {r.dataset}" + (f" (trained on {r.trained_on})" if r.trained_on not in (None, r.dataset) else "")
        parts.append(f"## {r.role} ({r.arch})\n\n`{r.model}` on {r.subset}{where if r.dataset else ''}"
                     + (f"\n\n{r.note}" if r.note else ""))
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
        table = md_table(["compression", *(f"AUC {r.role}" for r in detectors)],
                         [[c, *(auc.get((r.role, c)) for r in detectors)] for c in comps])
        parts.append("## Detectors side by side (frame level, all methods)\n\n" + table + "\n")
    return "\n\n".join(p.rstrip("\n") for p in parts) + "\n"


# -- scoring model files -----------------------------------------------------------------------------

def evaluation_keys(index: pa.Table, info: dict, split: str = "test") -> tuple[str, pa.Table]:
    """``(subset name, index rows)`` a model file is scored on (see module doc)."""
    if roles.get(info["role"]).detector:
        return f"split={split}", views.select(index, split=split)
    meta = info["metadata"]
    _, holdout = encoder_split(index, meta["seed"], meta["holdout_fraction"])
    if not set(info["classes"]) & set(holdout[roles.get(info["role"]).column].to_pylist()):
        holdout = holdout.slice(0, 0)  # another dataset's people: nothing it can be scored on
    return f"frame hold-out (seed={meta['seed']}, fraction={meta['holdout_fraction']})", holdout


@torch.no_grad()
def score(model, role: str, x: torch.Tensor) -> torch.Tensor:
    """The scored output of a model of ``role`` on model input ``x`` ``[n, 3, H, W]``: P(fake) ``[n]``
    for a detector, the predicted class index ``[n]`` for an identity encoder."""
    logits = model(x).float()
    return torch.softmax(logits, 1)[:, 1] if roles.get(role).detector else logits.argmax(1)


class _Scorer:
    """Ray Data callable: every model file's output for batches of ``frames`` rows (one read, one decode):
    column ``out{i}`` = :func:`score` of model ``i``."""

    def __init__(self, model_uris: list[str], use_gpu: bool):
        self.device = torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")
        self.models = []
        for uri in model_uris:
            model, info = load_model(uri)
            self.models.append((model.to(self.device).eval(), info["role"], info["metadata"].get("image_size")))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = frames.to_float(torch.from_numpy(frames.decode(batch["image"], int(batch["size"][0]))).to(self.device))
        out = {"key": batch["key"]}
        for i, (model, role, size) in enumerate(self.models):
            out[f"out{i}"] = score(model, role, frames.resize(x, size or x.shape[-1])).cpu().numpy()
        return out


def predict(data: str, model_uris: list[str], keys: list[str], batch_size: int = 64, gpu: bool = False,
            concurrency: int = 1) -> pd.DataFrame:
    """Outputs of several model files for the ``frames`` rows of ``keys``, read once: ``key`` and ``out{i}``
    per model (detectors: P(fake); identity encoders: class index)."""
    ds = frames_dataset(data, ["key", "image", "size"], keys)
    ds = ds.map_batches(_Scorer, fn_constructor_kwargs={"model_uris": model_uris, "use_gpu": gpu},
                        batch_size=batch_size, batch_format="numpy",
                        compute=ray.data.ActorPoolStrategy(size=concurrency),
                        num_gpus=1 if gpu else 0, num_cpus=0 if gpu else 1)
    return ds.to_pandas()


def trained_on(info: dict) -> str | None:
    """The layout of the ingest a model file trained on (its metadata's ``data``), where that ingest is found."""
    data = info["metadata"].get("data")
    return ingest_dataset(data) if data and storage.exists(data) else None


def _metrics(uri: str, info: dict, subset: str, df: pd.DataFrame, data: str, dataset: str) -> EvalResult:
    result = EvalResult(model=uri, model_sha256=storage.digest(uri), role=info["role"], arch=info["arch"],
                        input=data, subset=subset, dataset=dataset, trained_on=trained_on(info))
    spec = roles.get(info["role"])
    if spec.detector:
        result.detection = detection_rows(df.rename(columns={"out": "score"}))
    elif df.empty:
        result.note = (f"not scored: none of its {len(info['classes'])} classes ({spec.column}) is in this ingest "
                       "(an identity encoder knows only the people of the dataset it trained on)")
    else:
        classes = {c: i for i, c in enumerate(info["classes"])}
        ids = df[spec.column]
        df = df.assign(label=ids.map(classes).fillna(-1).astype(int),  # an id the model never saw: wrong
                       pred=df["out"].astype(int))
        result.identity = identity_rows(df)
    return result


def model_files(uri: str) -> list[str]:
    """A model file URI, every ``*.pt`` model file directly in a folder URI (e.g. a run's ``models/``), or
    several of either, comma-separated (a hypothesis job's encoders and detectors train in runs of their own)."""
    if "," in uri:
        return [f for part in uri.split(",") for f in model_files(part.strip())]
    if uri.endswith(".pt"):
        return [uri]
    files = [u for u, _ in storage.list_files(uri, recursive=False) if u.endswith(".pt")]
    if not files:
        raise FileNotFoundError(f"no model files (*.pt) at {uri}")
    return files


def evaluate_models(cfg: EvalConfig) -> list[EvalResult]:
    """Evaluate every model file of ``cfg.models`` in one pass over ``frames``; write ``metrics.json`` and
    ``metrics.md`` to ``cfg.output_uri()``."""
    init_ray()
    index = frames.read_index(cfg.input)
    dataset = ingest_dataset(cfg.input)
    uris = model_files(cfg.models)
    infos = [load_payload(u) for u in uris]
    subsets = [evaluation_keys(index, info, cfg.split) for info in infos]
    for uri, info, (name, rows) in zip(uris, infos, subsets):
        if rows.num_rows == 0 and roles.get(info["role"]).detector:
            raise UserError(f"{uri}: no frames to score ({name}) in {cfg.input}")
    keys = sorted(set().union(*(rows["key"].to_pylist() for _, rows in subsets)))
    pred = predict(cfg.input, uris, keys, cfg.batch_size, cfg.gpu, cfg.concurrency)
    results = []
    for i, (uri, info, (name, rows)) in enumerate(zip(uris, infos, subsets)):
        df = rows.to_pandas().merge(pred[["key", f"out{i}"]].rename(columns={f"out{i}": "out"}), on="key",
                                    validate="one_to_one")
        results.append(_metrics(uri, info, name, df, cfg.input, dataset))
    out = output_folder(cfg, results)
    storage.write_bytes(storage.join(out, "metrics.json"),
                        json.dumps([r.model_dump() for r in results], indent=1).encode())
    storage.write_bytes(storage.join(out, "metrics.md"), report_markdown(results).encode())
    return results


def output_folder(cfg: EvalConfig, results: list[EvalResult]) -> str:
    """Where :func:`evaluate_models` wrote: ``cfg.output_uri()``, or ``{it}-{dataset}`` for models scored on
    another dataset than the one they trained on (the in-dataset metrics stay where they are)."""
    cross = {r.trained_on for r in results} - {None} - {r.dataset for r in results}
    return cfg.output_uri() if cfg.output or not cross else f"{cfg.output_uri()}-{results[0].dataset}"


def model_metrics(tables: str, model: str) -> EvalResult:
    """The metrics of one model file on the ingest at ``tables``: the models of its folder are evaluated
    together once (:func:`evaluate_models`) into ``eval/metrics.json`` beside the folder, and read back. The
    cached evaluation is found by the file's content, so a moved run folder reuses it and a retrained model
    is evaluated again."""
    cfg = EvalConfig(input=tables, models=storage.parent(model))
    cached, sha = storage.join(cfg.output_uri(), "metrics.json"), storage.digest(model)
    results = [EvalResult.model_validate(r) for r in json.loads(storage.read_bytes(cached))] \
        if storage.exists(cached) else []
    if not any(r.model_sha256 == sha and r.input == tables for r in results):
        results = evaluate_models(cfg)
    return next(r for r in results if r.model_sha256 == sha and r.input == tables)
