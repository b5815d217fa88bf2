"""Evaluation metrics (hand-made cases, checked against scikit-learn) and the evaluate job's Ray path."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from fst_ray import frames, storage
from fst_ray.data import views
from fst_ray.evaluate import (EvalConfig, binary_metrics, detection_rows, eer, identity_rows, markdown_table,
                              report_markdown)
from fst_ray.models import create_model, save_model
from fst_ray.train.toy import write_toy_frames

# 3 reals, 3 fakes; ranking (high to low): F .9, F .8, R .6, R .4, F .35, R .1
Y = np.array([0, 0, 0, 1, 1, 1])
S = np.array([0.1, 0.4, 0.6, 0.35, 0.8, 0.9])


def test_binary_metrics_on_a_hand_made_case():
    m = binary_metrics(Y, S)
    assert m["auc"] == pytest.approx(7 / 9)  # fake-over-real pairs: 1 + 3 + 3 of 9
    assert m["ap"] == pytest.approx((1 + 1 + 3 / 5) / 3)  # precision at each fake: 1/1, 2/2, 3/5
    assert m["eer"] == pytest.approx(1 / 3)  # at threshold .6: 1 of 3 reals passes, 1 of 3 fakes missed
    assert m["acc"] == pytest.approx(4 / 6)  # threshold .5: .6 and .35 are wrong
    assert m["auc"] == pytest.approx(roc_auc_score(Y, S)) and m["ap"] == pytest.approx(average_precision_score(Y, S))
    assert (m["n"], m["n_real"], m["n_fake"]) == (6, 3, 3)


def test_eer_extremes_and_one_class():
    assert eer(Y, Y.astype(float)) == 0.0
    assert eer(Y, 1.0 - Y) == 1.0
    assert binary_metrics([1, 1], [0.2, 0.9])["auc"] is None


def _pred() -> pd.DataFrame:
    rows = []
    for comp, shift in (("raw", 0.0), ("c23", 0.3)):
        for method, label, base in (("original", 0, 0.2), ("Deepfakes", 1, 0.8), ("FaceSwap", 1, 0.5)):
            for video in ("a", "b"):
                for frame, s in enumerate((base - 0.1, base + 0.1)):
                    rows.append(dict(video=f"{method}-{video}", method=method, compression=comp,
                                     det_label=label, score=min(1.0, s + shift * (label == 0))))
    return pd.DataFrame(rows)


def test_detection_rows_per_method_and_compression():
    pred = _pred()
    rows = {(r.level, r.method, r.compression): r for r in detection_rows(pred)}
    assert set(rows) == {(lvl, m, c) for lvl in ("frame", "video") for m in ("Deepfakes", "FaceSwap", "all")
                         for c in ("raw", "c23")}
    r = rows[("frame", "FaceSwap", "c23")]  # originals at c23 vs FaceSwap at c23 only
    assert (r.n, r.n_real, r.n_fake) == (8, 4, 4)
    sub = pred[(pred.compression == "c23") & pred.method.isin(["original", "FaceSwap"])]
    assert r.auc == pytest.approx(roc_auc_score(sub.det_label, sub.score))
    assert rows[("frame", "Deepfakes", "raw")].auc == 1.0
    v = rows[("video", "all", "raw")]
    assert (v.n, v.n_real, v.n_fake) == (6, 2, 4)  # one score per video: the mean of its frames
    assert "| Deepfakes | raw | 8 | 4 | 4 | 1.000 |" in markdown_table(list(rows.values()), ["method", "compression", "n",
                                                                                            "n_real", "n_fake", "auc"])


def test_identity_rows_top1():
    pred = pd.DataFrame(dict(method=["original", "original", "Deepfakes", "Deepfakes"], compression="raw",
                             label=[0, 1, 2, 3], pred=[0, 1, 2, 0]))
    rows = {r.method: r for r in identity_rows(pred)}
    assert rows["original"].top1 == 1.0 and rows["Deepfakes"].top1 == 0.5 and rows["all"].top1 == 0.75


@pytest.mark.slow
def test_evaluate_job_writes_json_and_markdown(ray_session, tmp_path):
    from fst_ray.evaluate import evaluate_models

    data = str(tmp_path / "prepared")
    write_toy_frames(data, identities=6, frames=4, size=32, compressions=("raw", "c23"))
    classes = ["000", "001", "002", "003", "004", "005"]
    meta = {"image_size": 32, "seed": 0, "holdout_fraction": 0.25}
    models = tmp_path / "run" / "models"
    for role in ("det", "fst", "target"):
        n = 2 if role == "det" else len(classes)
        save_model(str(models / f"{role}.pt"), create_model(role, "test_resnet", None if role == "det" else n),
                   role=role, arch="test_resnet", num_classes=n, classes=None if role == "det" else classes,
                   metadata=meta)
    results = evaluate_models(EvalConfig(input=data, models=str(models)))
    index = frames.read_index(data)
    n_test = views.select(index, split="test", compression="raw").num_rows
    _, holdout = views.frame_holdout(index, 0, 0.25)
    by_role = {r.role: r for r in results}
    det_all = [d for d in by_role["det"].detection if d.level == "frame" and d.method == "all"]
    assert [d.compression for d in det_all] == ["raw", "c23"] and det_all[0].n == n_test
    assert sum(i.n for i in by_role["target"].identity if i.method == "all") == holdout.num_rows
    out = tmp_path / "run" / "eval"
    assert {r["role"] for r in json.loads((out / "metrics.json").read_text())} == {"det", "fst", "target"}
    md = (out / "metrics.md").read_text()
    assert "AUC det | AUC fst" in md and md == report_markdown(results)
    assert storage.exists(str(out / "metrics.json"))
