"""H1, H2 and H3 end to end on a tiny synthetic corpus: each writes a schema-valid result.json, its report
and figures, and the three share their models and maps."""

from __future__ import annotations

import json
import os

import jsonschema
import numpy as np
import pytest

from fst_ray import ffpp, storage
from fst_ray.hypotheses.cli import main
from fst_ray.hypotheses.config import HypothesisConfig
from fst_ray.hypotheses.h1 import run_h1
from fst_ray.hypotheses.h2 import run_h2
from fst_ray.hypotheses.h3 import run_h3
from fst_ray.schemas import SCHEMA_DIR
from fst_ray.synth.config import SynthConfig
from fst_ray.synth.generate import generate_corpus

METHODS = ["Deepfakes", "FaceSwap"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, ray_session):
    root = tmp_path_factory.mktemp("hyp")
    corpus = SynthConfig(output=str(root / "data"), identities=8, frames=4, size=32, methods=METHODS,
                         contact_sheet=False)
    generate_corpus(corpus)
    # a relative work dir, as `make demo` uses: models and maps must be found again whatever the spelling
    return HypothesisConfig.model_validate(dict(
        input=corpus.output, tables=str(root / "prepared"), work=os.path.relpath(root / "work"), methods=METHODS,
        archs=["test_resnet"], prepare=dict(frames_per_video=2, size=32),
        train=dict(epochs=1, pretrained=False, workers=1, cpus_per_worker=1.0, batch_size=16, image_size=32,
                   backend="local"),  # Ray Train's own path: tests/test_train.py, test_job_submit.py
        detector_epochs=1, h2_epochs=1,
        explain=dict(images_per_method=2, grid=2, budget=32, actors=1, baseline="zero"),  # one test pair: no
        n_boot=200,  # other person to take a background from; halves of 16 = 2^4: exact
    ))


def _check_outputs(output: str, name: str, figures: list[str]) -> dict:
    result = json.loads(storage.read_bytes(storage.join(output, "result.json")))
    jsonschema.validate(result, json.loads((SCHEMA_DIR / f"result.{name}.json").read_text()))
    for fig in figures:
        png = storage.read_bytes(storage.join(output, fig))
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000, fig
    report = storage.read_bytes(storage.join(output, "report.md")).decode()
    assert report.startswith("# H") and all(f"({fig})" in report for fig in figures)
    return result


@pytest.mark.slow
def test_h1_h2_h3_complete_and_share_their_work(tiny, tmp_path):
    h1 = tiny.model_copy(update={"output": str(tmp_path / "h1")})
    result = run_h1(h1)
    saved = _check_outputs(h1.output, "h1", ["h1_maps.png", "h1_faithfulness.png"])
    assert set(saved["q"]) == set(METHODS) and saved["variant"] == "official"
    # the paper's protocol by default ('best' = raw here), named in the result; the checks of every model
    assert result.protocol["detectors trained on"] == result.protocol["explained"] == "raw"
    assert set(result.baseline_check) == {"source", "target", "detector"}
    assert all(0 <= c.p_empty <= 1 and c.n_images == 2 * len(METHODS) for c in result.baseline_check.values())
    assert set(result.faithfulness) == {*METHODS, "all"}
    pooled = result.faithfulness["all"]
    assert all(f.n_images > 0 and f.mask_area is not None and f.deletion is not None and f.face_area is not None
               for f in pooled.values())  # the synthetic corpus has masks; every map has its curves
    for method in METHODS:
        s = result.q[method]["test_resnet"]
        assert s.n_images == 2 and s.ci[0] <= s.mean <= s.ci[1] and np.isfinite(s.baseline)
        assert s.gap == pytest.approx(s.mean - s.baseline) and s.gap_ci[0] <= s.gap <= s.gap_ci[1]
        # exact maps: every ceiling is 1, the corrected gap is the gap; the ceilings pool every method's images
        assert {r: (c.centred, c.plain, c.n_images) for r, c in s.noise_ceiling.items()} == {
            r: (pytest.approx(1.0), pytest.approx(1.0), 2 * len(METHODS)) for r in ("source", "target", "det")}
        assert s.gap_corrected == pytest.approx(s.gap) and 1 <= s.n_clusters <= s.n_images
    # every verdict is data in result.json, and the report renders those
    assert {(r.hypothesis, r.method, r.model) for r in result.readings} == {("H1", m, "test_resnet") for m in METHODS}
    report = storage.read_bytes(storage.join(h1.output, "report.md")).decode()
    assert all(f"**{r.verdict}**: {r.why}" in report for r in result.readings)
    assert saved["readings"] == [r.model_dump(mode="json") for r in result.readings]

    models_before = storage.list_files(storage.join(tiny.work, "models"))
    h2 = tiny.model_copy(update={"output": str(tmp_path / "h2")})
    result2 = run_h2(h2)
    saved2 = _check_outputs(h2.output, "h2", ["h2_q_curves.png"])
    assert saved2["tau"] == pytest.approx(list(tiny.tau))
    for method in METHODS:
        assert len(result2.q_paired[method]) == len(tiny.tau) == len(result2.q_unpaired[method])
        assert 0.0 <= result2.auc_paired[method] <= 1.0 and 0.0 <= result2.auc_unpaired[method] <= 1.0
        lo, hi = result2.difference_ci[method]
        assert lo <= result2.difference[method] <= hi
        assert len(result2.baseline_paired[method]) == len(result2.baseline_unpaired[method]) == len(tiny.tau)
    assert {r: c.centred for r, c in result2.noise_ceiling.items()} == {
        r: pytest.approx(1.0) for r in ("source", "target", "paired", "unpaired")}
    assert {r.method for r in result2.readings} == set(METHODS)
    # the keys of the frames each H2 detector trained on, beside its models: equal sets sharing their fakes
    import pyarrow.parquet as pq

    from fst_ray import frames

    index = {r["key"]: r for r in frames.read_index(tiny.tables).to_pylist()}
    trained = {s: pq.read_table(result2.training_frames[s])["key"].to_pylist() for s in ("paired", "unpaired")}
    assert len(trained["paired"]) == len(trained["unpaired"]) > 0
    fakes = {s: {k for k in keys if index[k]["det_label"] == 1} for s, keys in trained.items()}
    assert fakes["paired"] == fakes["unpaired"] and fakes["paired"]
    assert set(trained["paired"]) != set(trained["unpaired"])
    full_run = [u for u, _ in models_before if "/test_resnet-encoders/models/" in u
                or "/test_resnet-detectors-raw/models/" in u]  # H1's: encoders and detectors, each run its own
    assert {u.rsplit("/", 1)[1] for u in full_run} == {"source.pt", "target.pt", "det.pt", "fst.pt"}
    assert all(u in dict(storage.list_files(storage.join(tiny.work, "models"))) for u in full_run)

    h3 = tiny.model_copy(update={"output": str(tmp_path / "h3")})
    result3 = run_h3(h3)
    _check_outputs(h3.output, "h3", ["h3_delta.png"] + [f"h3_maps_{m}.png" for m in METHODS])
    for method in METHODS:
        row = result3.delta[method]
        assert all(-1.0 <= v <= 1.0 for v in (row.source, row.target, row.detector, row.fst))
        assert all(row.ci[n][0] <= getattr(row, n) <= row.ci[n][1] for n in ("source", "target", "detector", "fst"))
        assert set(result3.auc[method]) == set(ffpp.COMPRESSIONS)
        # exact maps (each half is the exact Shapley value): ceiling 1, so the corrected δ is the centred δ itself
        for n in ("source", "target", "detector", "fst"):
            assert row.method_ceiling[n] == {c: pytest.approx(1.0) for c in ffpp.COMPRESSIONS}
            assert row.corrected[n] == pytest.approx(row.centred[n]) and row.delta_ceiling[n] == pytest.approx(1.0)
        assert row.contrast == pytest.approx(min(row.corrected["source"], row.corrected["target"])
                                             - row.corrected["detector"])
        assert row.contrast_ci[0] <= row.contrast <= row.contrast_ci[1] and row.n_clusters >= 1
    assert {r.method: r.verdict for r in result3.readings}.keys() == set(METHODS)
    assert all(r.verdict != "too noisy" for r in result3.readings)


@pytest.mark.slow  # its cache is what the end-to-end test above made; alone, this run makes it
def test_job_cli_reruns_from_cache(tiny, tmp_path, capsys):
    """The job script's entry point: flags override the config; a re-run trains and explains nothing new."""
    cfg_file = tmp_path / "h1.yaml"
    cfg_file.write_text(json.dumps(tiny.model_dump(mode="json")))  # JSON is YAML
    maps_before = storage.list_files(storage.join(tiny.work, "shapley"))
    main(run_h1, "h1", "doc", ["--config", str(cfg_file), "--output", str(tmp_path / "out")])
    assert "H1Result" in capsys.readouterr().out
    assert storage.exists(storage.join(str(tmp_path / "out"), "result.json"))
    assert storage.list_files(storage.join(tiny.work, "shapley")) == maps_before


def test_a_copied_run_folder_is_reused(tiny, tmp_path):
    """A run folder (corpus, tables, work) copied elsewhere is reused as it is: no ingest, no training, no map
    and no evaluation made again, and the same result."""
    import shutil

    from fst_ray.hypotheses import pipeline

    first = run_h1(tiny.model_copy(update={"output": str(tmp_path / "h1")}))
    root = os.path.dirname(tiny.input)
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    moved = tiny.model_copy(update={"input": str(copy / "data"), "tables": str(copy / "prepared"),
                                    "work": str(copy / "work"), "output": str(copy / "h1")})
    before = storage.list_files(moved.work)
    assert pipeline.finished_ingest(moved.tables) is not None
    again = run_h1(moved)
    assert storage.list_files(moved.work) == before  # nothing trained, explained or evaluated again
    assert again.q == first.q


@pytest.mark.slow
def test_h1_killed_midway_resumes_to_the_uninterrupted_result(tiny, ray_session, tmp_path):
    """H1's driver SIGKILLed once its maps are being computed (its models trained: the clean run's, copied), then
    the same command run again: its result.json equals an uninterrupted run's, and the map cache holds each
    (image, model) once."""
    import shutil
    import signal
    import subprocess
    import sys
    import time

    from fst_ray import tables

    clean = tmp_path / "clean"
    run_h1(tiny.model_copy(update={"output": str(clean)}))
    cfg_file = tmp_path / "h1.json"
    cfg_file.write_text(json.dumps(tiny.model_dump(mode="json")))
    work, out = tmp_path / "work", tmp_path / "h1"
    shutil.copytree(tiny.work, work, ignore=shutil.ignore_patterns("shapley"))  # no map made yet
    cmd = [sys.executable, "jobs/h1_intersection.py", "--config", str(cfg_file), "--work", str(work),
           "--output", str(out)]
    env = {**os.environ, "RAY_ADDRESS": ray_session.get_runtime_context().gcs_address}
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    job = subprocess.Popen(cmd, cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 400
    while time.time() < deadline and job.poll() is None and not list(work.glob("shapley/*/_shapley.json")):
        time.sleep(0.05)
    assert job.poll() is None, "H1 ended before it could be interrupted"
    job.send_signal(signal.SIGKILL)
    job.wait()
    time.sleep(1.0)  # let Ray reap the dead driver's tasks and actors
    assert not (out / "result.json").exists()
    again = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((out / "result.json").read_text()) == json.loads((clean / "result.json").read_text())
    (maps,) = work.glob("shapley/*/")
    done = tables.read(str(maps), "shapley", ["key", "model_sha256"])
    pairs = list(zip(done["key"].to_pylist(), done["model_sha256"].to_pylist()))
    assert len(pairs) == len(set(pairs)) > 0


def test_demo_config_is_the_defaults():
    assert HypothesisConfig.load("configs/demo.yaml") == HypothesisConfig()


def test_study_preset_validates():
    """The study preset (docs/results.md, "What the study found") is a demo config whose H1-H3 settings validate."""
    from fst_ray.demo import DemoConfig

    cfg = DemoConfig.load("configs/study.yaml")
    assert cfg.hypothesis.explain.grid == 4 and cfg.hypothesis.explain.halves and cfg.hypothesis.shortcut_study


def test_the_demo_corpus_holds_the_default_methods_and_a_synthetic_block_changes_it_key_by_key():
    """`make demo`'s corpus holds the methods the jobs' defaults read (so each job runs after it with no flag);
    a config's ``synthetic`` keys change the demo corpus, the others keep its values."""
    from fst_ray.demo import DemoConfig

    demo = DemoConfig()
    assert demo.synthetic.methods == HypothesisConfig().methods == demo.hypothesis.methods
    changed = DemoConfig.model_validate({"synthetic": {"identities": 40}})
    assert changed.synthetic.identities == 40
    assert changed.synthetic.model_dump(exclude={"identities"}) == demo.synthetic.model_dump(exclude={"identities"})


def test_a_mistyped_checkpoint_key_is_refused_not_ignored():
    """A checkpoints key that names no run, or a role its run does not train, would never be looked up (the model
    would be trained instead, silently): the config refuses it."""
    HypothesisConfig(checkpoints={"resnet18/full/det": "a.pt", "resnet18/encoders/source": "b.pt",
                                  "resnet18/detectors-c23/fst": "c.pt", "resnet18/detectors-all/det": "d.pt",
                                  "resnet18/balanced-raw/target": "e.pt", "resnet18/unpaired/det": "f.pt"})
    for bad in ("resnet18/ful/det", "resnet18/encoders/det", "resnet18/detectors/det", "resnet18/detectors-c50/det",
                "resnet18/paired-raw/det", "resnet18/full/dett", "det", "/full/det"):
        with pytest.raises(ValueError, match="checkpoints key"):
            HypothesisConfig(checkpoints={bad: "m.pt"})


def test_paper_sized_config_validates():
    cfg = HypothesisConfig.load("configs/ffpp.yaml")
    assert cfg.explain.grid == 16 and cfg.train.gpu and cfg.tables.startswith("s3://")
    with pytest.raises(ValueError):
        HypothesisConfig.model_validate({"explain": {"grids": 16}})


@pytest.mark.slow
def test_explain_options_key_the_map_cache(tiny):
    """Baseline and value land in the map cache's key: keeping them reuses the maps, changing either computes
    new ones in their own folder, never mixed with the others."""
    from fst_ray import tables
    from fst_ray.hypotheses import pipeline

    pipeline.ensure_tables(tiny)
    tiny = pipeline.resolve_compressions(tiny)
    assert (tiny.explain.compression, tiny.train_compression) == ("raw", "raw")  # 'best' with raw present
    keys = pipeline.explained_keys(tiny)[METHODS[0]][:1]
    det = pipeline.ensure_models(tiny, "test_resnet", "full", ["det"])["det"]

    def files():
        return {u for u, _ in storage.list_files(storage.join(tiny.work, "shapley"))}

    pipeline.shapley_maps(tiny, keys, [det])
    before = files()
    pipeline.shapley_maps(tiny, keys, [det])
    assert files() == before
    for change in ({"baseline": "blur"}, {"value": "log-odds"}, {"baseline": "source"}):
        cfg = tiny.model_copy(update={"explain": tiny.explain.model_copy(update=change)})
        pipeline.shapley_maps(cfg, keys, [det])
        new = files() - before
        assert new and all(os.path.basename(pipeline._maps_dir(cfg)) in u for u in new), change
        stored = tables.read(pipeline._maps_dir(cfg), "shapley", ["key", "baseline", "value"])
        assert stored["key"].to_pylist() == keys
        assert stored["baseline"].to_pylist() == [cfg.explain.baseline]
        assert stored["value"].to_pylist() == [cfg.explain.value]
        before = files()


def test_source_baseline_frame_is_the_fakes_source_crop_and_lines_up_with_it(tiny):
    """The `source` baseline is the fake's source frame (same video A, frame index, compression); the ingest
    crops a fake with its source's landmarks (detect_per source), so at raw (lossless) the two crops agree
    outside the planted mask up to the crop's interpolation at the mask's border, and differ inside it:
    φ under this baseline measures what the manipulation contributes."""
    from fst_ray import frames
    from fst_ray.hypotheses import pipeline
    from fst_ray.shapley import baselines

    pipeline.ensure_tables(tiny)
    fakes = [r for r in frames.read_index(tiny.tables).to_pylist() if r["det_label"] == 1 and r["compression"] == "raw"]
    assert fakes
    sources = baselines.get("source").others(tiny.tables, fakes[:6], 1, 0)
    for row in fakes[:6]:
        [src] = sources[row["key"]]
        assert frames.split_key(src) == ("original", "raw", row["source_id"], row["frame_index"])
        t = frames.read(tiny.tables, ["key", "image", "mask", "size"], [row["key"], src]).to_pylist()
        by_key = {r["key"]: r for r in t}
        fake, source = (frames.decode([by_key[k]["image"]], row_size := by_key[k]["size"])[0].astype(int)
                        for k in (row["key"], src))
        mask = frames.decode_mask(by_key[row["key"]]["mask"], row_size)
        other = next(r["key"] for r in frames.read_index(tiny.tables).to_pylist() if r["det_label"] == 0 and
                     r["compression"] == "raw" and r["source_id"] != row["source_id"])
        other = frames.decode(frames.read(tiny.tables, ["image"], [other])["image"].to_pylist(), row_size)[0]
        outside = np.abs(fake - source)[~mask].mean()
        inside = np.abs(fake - source)[mask].mean()
        assert outside < 0.5 and inside > 10 * outside, (row["key"], outside, inside)
        assert np.abs(fake - other.astype(int))[~mask].mean() > 10, row["key"]  # another identity's frame


@pytest.mark.slow
def test_h3_matched_protocol_trains_and_tests_a_detector_per_compression(tiny, tmp_path):
    """auc_protocol=matched: besides the raw-trained detectors scored at every compression, a detector and an
    FST model trained on c23 and on c40, each scored on its own compression (the paper's table)."""
    cfg = tiny.model_copy(update={"output": str(tmp_path / "h3m"), "auc_protocol": "matched"})
    result = run_h3(cfg)
    assert result.protocol["detectors trained on"] == "raw"
    for method in METHODS:
        assert set(result.auc_matched[method]) == set(ffpp.COMPRESSIONS)
        assert result.auc_matched[method]["raw"] == result.auc[method]["raw"]  # the raw run serves raw
        assert all(0 <= v <= 1 for c in ffpp.COMPRESSIONS for v in result.auc_matched[method][c].values())
    runs = {u.split("/models/")[1].split("/")[0] for u, _ in storage.list_files(storage.join(tiny.work, "models"))}
    assert {"test_resnet-detectors-c23", "test_resnet-detectors-c40"} <= runs
    report = storage.read_bytes(storage.join(cfg.output, "report.md")).decode()
    assert "Both trained on raw" in report and "Trained and tested on each compression" in report


@pytest.mark.slow
def test_the_comparison_job_scores_every_method_on_the_same_frames(tiny, tmp_path):
    from fst_ray.hypotheses.compare import CompareConfig, run_compare

    cfg = CompareConfig.model_validate({**tiny.model_dump(), "output": str(tmp_path / "compare"),
                                        "attributions": ["occlusion", "rise", "grad_cam"]})
    result = run_compare(cfg)
    assert list(result.methods) == ["shapley", "occlusion", "rise", "grad_cam"]
    assert result.methods["shapley"].agreement == pytest.approx(1.0)  # itself
    for name, score in result.methods.items():
        assert -1 <= score.agreement <= 1 and score.model_calls > 0, name
        assert score.faithfulness.n_images == 2 * len(METHODS)
    assert result.methods["occlusion"].model_calls == cfg.explain.grid ** 2 + 1
    assert all(s.q_gap is not None and s.q_gap_ci[0] <= s.q_gap <= s.q_gap_ci[1] for s in result.methods.values())
    # the Shapley row's gap is H1's on the same maps
    from fst_ray.hypotheses import pipeline
    from fst_ray.hypotheses.h1 import q_summary

    resolved = pipeline.resolve_compressions(cfg)
    keys = [k for ks in pipeline.explained_keys(resolved).values() for k in ks]
    models = pipeline.ensure_models(resolved, "test_resnet", "full", ["source", "target", "det"])
    maps = pipeline.shapley_maps(resolved, keys, list(models.values()))
    s, t, d = (pipeline.stack(maps, keys, models[r]) for r in ("source", "target", "det"))
    assert result.methods["shapley"].q_gap == pytest.approx(q_summary(s, t, d, resolved, pipeline.clusters_of(keys)).gap)
    # H3's δ and contrast for every method on the same frames at raw, c23 and c40; the Shapley row's are H3's
    from fst_ray.hypotheses.h3 import same_frames, stability_row

    assert result.n_delta_images > 0 and set(result.encoder_delta) == {"source", "target"}
    for name, score in result.methods.items():
        assert score.delta is not None and score.h3_contrast is not None, name
        assert score.h3_contrast_ci[0] <= score.h3_contrast <= score.h3_contrast_ci[1], name
    triples = [t for ts in same_frames(resolved).values() for t in ts]
    at = {c: [t[c] for t in triples] for c in ("raw", "c23", "c40")}
    maps = pipeline.shapley_maps(resolved, [k for ks in at.values() for k in ks], list(models.values()))
    h3 = stability_row({word: ([pipeline.stack(maps, ks, models[role]) for ks in at.values()],
                               [pipeline.map_halves(resolved, ks, models[role]) for ks in at.values()])
                        for word, role in (("source", "source"), ("target", "target"), ("detector", "det"))},
                       pipeline.clusters_of(at["raw"]), resolved)
    assert result.methods["shapley"].h3_contrast == pytest.approx(h3.contrast)
    assert result.methods["shapley"].delta == pytest.approx(h3.corrected["detector"])
    report = storage.read_bytes(storage.join(cfg.output, "report.md")).decode()
    assert report.startswith("# Attribution methods compared") and "(compare_maps.png)" in report
    assert storage.read_bytes(storage.join(cfg.output, "compare_maps.png"))[:4] == b"\x89PNG"
    jsonschema.validate(json.loads(storage.read_bytes(storage.join(cfg.output, "result.json"))),
                        json.loads((SCHEMA_DIR / "result.compare.json").read_text()))


@pytest.mark.slow
def test_h1_explains_a_detector_imported_from_elsewhere(tiny, tmp_path):
    """A detector trained by a plain PyTorch loop on these frames (one logit, ImageNet normalisation, 40 px, DDP
    keys), imported, goes through `checkpoints` into H1: its maps are made and read beside fst-ray's encoders."""
    import torch
    from conftest import ELSEWHERE_SIDE, train_elsewhere

    from fst_ray import frames
    from fst_ray.data import views
    from fst_ray.hypotheses import pipeline
    from fst_ray.models.importer import ImportConfig, run_import

    pipeline.ensure_tables(tiny)
    rows = frames.read_index(tiny.tables, views.where(split="train"))
    pixels = frames.images(tiny.tables, rows["key"].to_pylist())
    images = frames.to_float(torch.from_numpy(np.stack([pixels[k] for k in rows["key"].to_pylist()])))
    train_elsewhere(tmp_path / "theirs.pth", images, rows["det_label"].to_pylist())
    imported = ImportConfig(weights=str(tmp_path / "theirs.pth"), arch="test_resnet", image_size=ELSEWHERE_SIDE,
                            output=str(tmp_path / "imported" / "det.pt"), tables=tiny.tables)
    assert run_import(imported).max_abs_diff <= 1e-4
    cfg = tiny.model_copy(update={"output": str(tmp_path / "h1"),
                                  "checkpoints": {"test_resnet/full/det": imported.output}})
    result = run_h1(cfg)
    assert imported.output in result.protocol["models given (not trained here)"]
    resolved = pipeline.resolve_compressions(cfg)
    keys = [k for ks in pipeline.explained_keys(resolved).values() for k in ks]
    assert len(pipeline.map_columns(resolved, keys, storage.canonical(imported.output), ["phi"])["phi"]) == len(keys)
    for method in METHODS:
        s = result.q[method]["test_resnet"]
        assert s.n_images == 2 and s.gap_ci[0] <= s.gap <= s.gap_ci[1]
    assert result.baseline_check["detector"].n_images == 2 * len(METHODS)
