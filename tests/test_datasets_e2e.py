"""Other datasets end to end, on small trees the synthetic generator writes in their layouts: Celeb-DF v2 (re-encoded
to c23/c40, H1 and H3 run, H2 refused for want of donor videos, encoders classifying scene videos and identities), DFD,
and cross-dataset evaluation (a detector trained on Celeb-DF scored on an FF++ tree)."""

from __future__ import annotations

import json
import os

import jsonschema
import numpy as np
import pyarrow.parquet as pq
import pytest

from fst_ray import frames, storage, video
from fst_ray.config import UserError
from fst_ray.data import views
from fst_ray.data.config import PrepareConfig
from fst_ray.data.ingest import run_ingest
from fst_ray.evaluate import EvalConfig, evaluate_models, model_metrics, output_folder
from fst_ray.hypotheses import pipeline
from fst_ray.hypotheses.config import HypothesisConfig
from fst_ray.hypotheses.h1 import run_h1
from fst_ray.hypotheses.h2 import run_h2
from fst_ray.hypotheses.h3 import run_h3
from fst_ray.models import load_payload
from fst_ray.schemas import SCHEMA_DIR
from fst_ray.synth.config import SynthConfig
from fst_ray.synth.generate import generate_corpus

SMALL = dict(identities=8, frames=4, size=32, methods=["FaceSwap"], contact_sheet=False)


@pytest.fixture(scope="module")
def trees(tmp_path_factory, ray_session):
    root = tmp_path_factory.mktemp("datasets")
    out = {}
    for layout, comps in (("celebdf", ["raw"]), ("dfd", ["c23"]), ("ffpp", ["raw", "c23"])):
        cfg = SynthConfig(output=str(root / layout), layout=layout, compressions=comps, **SMALL)
        generate_corpus(cfg)
        out[layout] = cfg.output
    out["root"] = root
    return out


@pytest.fixture(scope="module")
def celebdf(trees):
    cfg = PrepareConfig(input=trees["celebdf"], output=str(trees["root"] / "celebdf-prepared"), frames_per_video=2,
                        size=32, reencode=["c23", "c40"])
    summary = run_ingest(cfg)
    assert summary.exit_code(0.0) == 0, str(summary)
    return cfg


def test_reencoded_compressions_decode_and_lose_what_c23_and_c40_should(celebdf):
    manifest = pq.read_table(storage.join(celebdf.output, "manifest.parquet")).to_pylist()
    raw = {r["video"]: r for r in manifest if r["compression"] == "raw"}
    made = [r for r in manifest if r["reencoded_from"] is not None]
    assert {r["compression"] for r in made} == {"c23", "c40"} and len(made) == 2 * len(raw)
    params = json.loads(storage.read_bytes(storage.join(celebdf.output, "_ingest.json")))
    assert params["dataset"] == "celebdf"
    assert {c: (s["codec"], s["crf"]) for c, s in params["reencode"].items()} == \
        {"c23": ("libx264", 23), "c40": ("libx264", 40)}
    for name in sorted(raw)[:3]:
        original = video.decode(storage.read_bytes(raw[name]["uri"])).astype(float)
        error, size = {}, {}
        for r in (r for r in made if r["video"] == name):
            assert r["reencoded_from"] == raw[name]["uri"]
            data = storage.read_bytes(r["uri"])
            decoded = video.decode(data)
            assert decoded.shape == original.shape  # every frame, same size
            error[r["compression"]], size[r["compression"]] = np.abs(decoded - original).mean(), len(data)
        assert 0 < error["c23"] < error["c40"] and size["c40"] < size["c23"], (name, error, size)
    index = frames.read_index(celebdf.output)
    assert sorted(set(index["compression"].to_pylist())) == ["c23", "c40", "raw"]


def test_dfd_tree_ingests_with_scene_sources_and_actor_targets(trees):
    cfg = PrepareConfig(input=trees["dfd"], output=str(trees["root"] / "dfd-prepared"), frames_per_video=2, size=32)
    summary = run_ingest(cfg)
    assert summary.exit_code(0.0) == 0 and summary.pairs > 0, str(summary)
    rows = views.read_table(cfg.output, "frames", ["video", "method", "det_label", "source_id", "target_id"])
    for r in rows.to_pylist():
        if r["det_label"]:
            x, y = r["video"].split("__")[0].split("_")
            assert (r["method"], r["source_id"], r["target_id"]) == ("DeepFakeDetection", f"{x}__synthetic_scene", y)
        else:
            assert (r["source_id"], r["target_id"]) == (r["video"], r["video"].split("__")[0])


@pytest.mark.slow
def test_h1_h3_run_on_celebdf_h2_does_not_apply_and_detectors_cross_to_ffpp(trees, celebdf):
    cfg = HypothesisConfig.model_validate(dict(
        input=None, tables=celebdf.output, work=os.path.relpath(trees["root"] / "work"), methods=["Celeb-synthesis"],
        archs=["test_resnet"], prepare=dict(frames_per_video=2, size=32, dataset="celebdf"),
        train=dict(epochs=1, pretrained=False, workers=1, cpus_per_worker=1.0, batch_size=16, image_size=32,
                   backend="local"),
        detector_epochs=1, h2_epochs=1,
        explain=dict(images_per_method=2, grid=2, budget=32, actors=1, baseline="zero"), n_boot=200,
        output=str(trees["root"] / "h1")))
    # the tiny Celeb-DF test split holds no real frame of a third person: the background baseline says so first
    background = cfg.model_copy(update={"explain": cfg.explain.model_copy(update={"baseline": "background"})})
    with pytest.raises(UserError, match="background baseline can explain"):
        pipeline.explained_keys(background)
    run_h1(cfg)
    result = json.loads(storage.read_bytes(storage.join(cfg.output, "result.json")))
    jsonschema.validate(result, json.loads((SCHEMA_DIR / "result.h1.json").read_text()))
    assert "Celeb-DF v2" in storage.read_bytes(storage.join(cfg.output, "report.md")).decode()

    # the encoders' classes follow the layout: scene videos for the source, identities for the target
    models = pipeline.ensure_models(pipeline.resolve_compressions(cfg), "test_resnet", "full",
                                    ["source", "target", "det", "fst"])
    index = frames.read_index(celebdf.output)
    scenes = sorted(v for v in set(index["video"].to_pylist()) if v.count("id") == 1)
    assert load_payload(models["source"])["classes"] == scenes
    assert load_payload(models["target"])["classes"] == sorted({s.split("_")[0] for s in scenes})
    assert load_payload(models["fst"])["classes"] == {"source_id": scenes, "target_id": sorted({s.split("_")[0]
                                                                                               for s in scenes})}

    # H3's δ on a dataset without compressions of its own: the re-encoded c23 and c40 frames
    h3 = run_h3(cfg.model_copy(update={"output": str(trees["root"] / "h3")}))
    assert list(h3.delta) == ["Celeb-synthesis"] and h3.n_images["Celeb-synthesis"] > 0
    assert set(h3.auc["Celeb-synthesis"]) == {"raw", "c23", "c40"}

    h2 = run_h2(cfg.model_copy(update={"output": str(trees["root"] / "h2")}))
    assert h2.dataset == "celebdf" and "does not apply to Celeb-DF v2" in h2.not_applicable and not h2.q_paired
    assert "no paired set" in storage.read_bytes(storage.join(str(trees["root"] / "h2"), "report.md")).decode()

    ffpp = PrepareConfig(input=trees["ffpp"], output=str(trees["root"] / "ffpp-prepared"), frames_per_video=2,
                         size=32)
    assert run_ingest(ffpp).exit_code(0.0) == 0
    ev = EvalConfig(input=ffpp.output, models=f"{storage.parent(models['det'])},{storage.parent(models['source'])}")
    results = {r.role: r for r in evaluate_models(ev)}
    det = results["det"]
    assert (det.dataset, det.trained_on) == ("ffpp", "celebdf")
    frame_rows = {(d.method, d.compression) for d in det.detection if d.level == "frame"}
    assert {("FaceSwap", "raw"), ("all", "c23")} <= frame_rows
    assert all(d.auc is not None and d.eer is not None and d.ap is not None for d in det.detection)
    assert {d.level for d in det.detection} == {"frame", "video"}
    assert results["source"].note and not results["source"].identity  # other people: not scored
    out = output_folder(ev, list(results.values()))
    assert out.endswith("eval-ffpp") and storage.exists(storage.join(out, "metrics.json"))
    # the in-dataset evaluation H1 cached beside the models is neither overwritten nor mistaken for this one
    own = model_metrics(celebdf.output, models["det"])
    assert (own.dataset, own.input) == ("celebdf", celebdf.output) and own.detection
