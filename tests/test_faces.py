"""Real faces: an FF++-layout tree without landmark sidecars, made from a photo that ships with matplotlib
(Grace Hopper) moved by a known per-frame motion (fst_ray.synth.photo), ingested with the dlib face detector."""

from __future__ import annotations

import os

import numpy as np
import pytest

from fst_ray import ffpp, frames, storage
from fst_ray.data import align, landmarks, views
from fst_ray.data.config import PrepareConfig
from fst_ray.data.ingest import run_ingest
from fst_ray.synth import photo

W, H, T, K, S = 320, 240, 12, 6, 64
NO_FACE = {"001": (3, 5)}  # frames of original 001 showing no face (sampled indices of 12 frames at K=6: 1, 3, .., 11)


def write_tree(root: str, compressions: dict[str, tuple[str, ...]]) -> dict[str, np.ndarray]:
    return photo.write_tree(root, compressions, frames=T, width=W, height=H, no_face=NO_FACE)


def _ingest(root: str, output: str, **kw) -> PrepareConfig:
    return PrepareConfig(input=root, output=output, frames_per_video=K, size=S, methods=["FaceSwap"], **kw)


@pytest.fixture(scope="module")
def c23_only(ray_session, tmp_path_factory):
    """A tree with c23 alone (the common FF++ download), plus 000 at c40, ingested once."""
    root = str(tmp_path_factory.mktemp("faces") / "ffpp")
    truth = write_tree(root, {"000": ("c23", "c40"), "001": ("c23",), "000_001": ("c23",)})
    cfg = _ingest(root, str(tmp_path_factory.mktemp("faces") / "out"))
    return cfg, truth, run_ingest(cfg)


def _sidecar(cfg: PrepareConfig, vid: str) -> ffpp.Sidecar:
    return ffpp.landmarks_from_json(storage.read_bytes(
        storage.join(cfg.output, "landmarks", ffpp.landmarks_path(ffpp.ORIGINAL, vid))))


def test_detected_landmarks_match_the_true_points(c23_only):
    cfg, truth, summary = c23_only
    assert summary.videos_ok == 4, str(summary)
    side = _sidecar(cfg, "000")
    assert side.detector == "dlib" and side.sampled.tolist() == [1, 3, 5, 7, 9, 11]
    assert side.frames.tolist() == side.sampled.tolist()
    true = truth["000"][side.frames]
    inter_ocular = np.linalg.norm(true[:, 1] - true[:, 0], axis=1)
    error = np.linalg.norm(side.landmarks - true, axis=2) / inter_ocular[:, None]
    assert error.mean() < 0.08 and error.max() < 0.2, error.round(3)


def test_a_frame_without_a_face_is_an_errors_row_and_costs_no_other_frame(c23_only):
    cfg, _, _ = c23_only
    errors = views.read_table(cfg.output, "errors").to_pylist()
    no_face = sorted(e["frame"] for e in errors if e["stage"] == "detect")
    assert no_face == list(NO_FACE["001"]), errors
    index = frames.read_index(cfg.output)
    kept = sorted(r["frame_index"] for r in index.to_pylist() if r["video"] == "001")
    assert kept == [1, 7, 9, 11]


def test_fakes_reuse_their_sources_landmarks_and_their_crops_line_up(c23_only):
    cfg, _, summary = c23_only
    assert not storage.exists(storage.join(cfg.output, "landmarks", ffpp.landmarks_path("FaceSwap", "000_001")))
    errors = views.read_table(cfg.output, "errors").to_pylist()
    assert [(e["stage"], e["frame"]) for e in errors if "FaceSwap" in e["path"]] == [("decode", 11)]
    crops = frames.images(cfg.output, frames.read_index(cfg.output)["key"].to_pylist())
    border = np.ones((S, S), bool)
    border[S // 5: -S // 5, S // 5: -S // 5] = False  # the crop's margin: background and hair, not the swapped box
    same, shifted = [], []
    for i in (1, 3, 5, 7, 9):
        fake = crops[frames.key("FaceSwap", "c23", "000_001", i)].astype(float)
        for j, into in ((i, same), (i + 2 if i < 9 else 1, shifted)):
            into.append(np.abs(fake - crops[frames.key(ffpp.ORIGINAL, "c23", "000", j)])[border].mean())
    assert max(same) < 6 and min(shifted) > 2 * max(same), (same, shifted)
    # and one frame's crops at c23 and c40 are pixel-aligned (H3 compares them cell by cell)
    for i in (1, 5, 9):
        a, b = (crops[frames.key(ffpp.ORIGINAL, c, "000", i)].astype(float) for c in ("c23", "c40"))
        assert np.abs(a - b).mean() < 8


def test_a_rerun_detects_nothing(c23_only):
    cfg, _, _ = c23_only
    uris = [storage.join(cfg.output, "landmarks", ffpp.landmarks_path(ffpp.ORIGINAL, v)) for v in ("000", "001")]
    before = [os.stat(storage.resolve(u)[1]).st_mtime_ns for u in uris]
    again = run_ingest(cfg)
    assert again.videos_skipped == again.videos and again.frames_this_run == 0
    assert [os.stat(storage.resolve(u)[1]).st_mtime_ns for u in uris] == before


def test_sidecar_mode_refuses_a_tree_without_sidecars_and_too_few_faces_is_a_video_error(c23_only, tmp_path):
    cfg, _, _ = c23_only
    strict = run_ingest(_ingest(cfg.input, str(tmp_path / "strict"), landmarks="sidecar"))
    assert strict.videos == 0 and strict.errors_by_reason == {"landmarks: missing landmark sidecar": 4}
    picky = run_ingest(_ingest(cfg.input, str(tmp_path / "picky"), min_face_share=0.9))
    errors = views.read_table(picky.output, "errors").to_pylist()
    lost = [e["path"] for e in errors if e["frame"] is None and e["stage"] == "landmarks"]
    assert lost == [storage.join(cfg.input, ffpp.video_path(ffpp.ORIGINAL, "c23", "001"))], errors  # 4 of 6 < 90%
    assert picky.videos_ok == 3


def test_alignment_of_detected_points_puts_the_eyes_on_the_template(c23_only):
    """The aligned crop of a detected frame has the true eyes where the template puts them."""
    cfg, truth, _ = c23_only
    side = _sidecar(cfg, "000")
    tpl = align.template(S, cfg.margin)
    for k, i in enumerate(side.frames):
        m = align.similarity(side.landmarks[k], tpl)
        eyes = align.apply(m, truth["000"][i][:2])
        assert np.abs(eyes - tpl[:2]).max() < 0.1 * S, (i, eyes, tpl[:2])


@pytest.mark.slow
def test_a_real_face_tree_of_videos_and_split_files_runs_h1_with_no_other_step(ray_session, tmp_path):
    """What a new user with FF++'s videos and split files (nothing else) does: H1 ingests, detects faces,
    trains and explains."""
    from fst_ray.hypotheses.config import HypothesisConfig
    from fst_ray.hypotheses.h1 import run_h1

    root = str(tmp_path / "ffpp")
    photo.write_tree(root, {"000": ("c23",), "001": ("c23",), "000_001": ("c23",)}, frames=16, width=W, height=H,
                     pairs=5, train_pairs=3)
    cfg = HypothesisConfig(input=root, tables=str(tmp_path / "prepared"), work=str(tmp_path / "work"),
                           output=str(tmp_path / "h1"), methods=["FaceSwap"], archs=["resnet10t"],
                           prepare={"frames_per_video": 6, "size": 32},
                           train={"epochs": 1, "pretrained": False, "image_size": 32, "workers": 1,
                                  "cpus_per_worker": 1.0, "backend": "local"},
                           detector_epochs=1, h2_epochs=1, n_boot=200,
                           explain={"images_per_method": 2, "grid": 2, "budget": 32, "baseline": "zero", "actors": 1})
    result = run_h1(cfg)
    assert result.q["FaceSwap"]["resnet10t"].n_images == 2
    assert storage.exists(storage.join(cfg.tables, "landmarks", ffpp.landmarks_path(ffpp.ORIGINAL, "000")))
