"""Pure parts of the ingest (no Ray): manifest from a listing, frame sampling and seek/scan choice,
landmark sidecars, exit-code rule."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from fst_ray import ffpp, storage
from fst_ray.data import decode, landmarks, manifest
from fst_ray.data.config import PrepareConfig
from fst_ray.data.ingest import IngestSummary


def _tree(tmp_path, splits=None):
    """A dataset root holding only split files; the listing is made up (no video is opened here)."""
    root = str(tmp_path / "ffpp")
    splits = splits or {"train": [("000", "001")], "val": [("002", "003")], "test": [("004", "005")]}
    for s, pairs in splits.items():
        storage.write_bytes(storage.join(root, ffpp.split_path(s)), ffpp.splits_to_json(pairs).encode())
    return root, [(ffpp.split_path(s), 20) for s in splits]


def _videos(ids=("000", "001", "002", "003"), methods=("Deepfakes",), comps=("c23",), partner=None):
    partner = partner or {"000": "001", "001": "000", "002": "003", "003": "002"}
    out = []
    for c in comps:
        for a in ids:
            out += [(ffpp.video_path("original", c, a), 1000 + int(a))]
            out += [(ffpp.video_path(m, c, f"{a}_{partner[a]}"), 2000) for m in methods]
    for a in ids:
        out += [(ffpp.landmarks_path("original", a), 50)]
        for m in methods:
            out += [(ffpp.landmarks_path(m, f"{a}_{partner[a]}"), 50), (ffpp.mask_path(m, f"{a}_{partner[a]}"), 70)]
    return out


def test_manifest_rows_carry_labels_splits_sizes_and_masks(tmp_path):
    root, listing = _tree(tmp_path)
    rows, errors = manifest.build_manifest(root, listing + _videos())
    assert not errors
    by_id = {r.video_id: r for r in rows}
    assert len(rows) == 8 and [r.video_id for r in rows] == sorted(by_id)
    real, fake = by_id["original/c23/002"], by_id["Deepfakes/c23/003_002"]
    assert (real.det_label, real.source_id, real.target_id, real.split, real.bytes) == (0, "002", "002", "val", 1002)
    assert (fake.det_label, fake.source_id, fake.target_id, fake.split) == (1, "003", "002", "val")
    assert real.mask_uri is None and fake.mask_uri == storage.join(root, ffpp.mask_path("Deepfakes", "003_002"))
    assert fake.uri == storage.join(root, "manipulated_sequences/Deepfakes/c23/videos/003_002.mp4")
    assert fake.stem == "Deepfakes.c23.003_002"


def test_manifest_turns_each_bad_listing_into_an_error(tmp_path):
    root, listing = _tree(tmp_path)
    good = _videos()
    listing = listing + [
        *[(p, 0 if p.endswith("original_sequences/youtube/c23/videos/003.mp4") else n) for p, n in good
          if p != ffpp.landmarks_path("Deepfakes", "000_001") and p != ffpp.video_path("original", "c23", "001")],
        ("original_sequences/youtube/c23/videos/notes.txt", 10),  # non-video file
        ("original_sequences/youtube/c23/videos/abc.mp4", 10),  # name that does not parse
        ("manipulated_sequences/Unknown/c23/videos/000_001.mp4", 10),  # unknown method folder
        (ffpp.video_path("original", "c23", "042"), 10), (ffpp.landmarks_path("original", "042"), 5),  # in no split
        ("original_sequences/actors/c23/videos/01__walk.mp4", 10),  # excluded (DeepFakeDetection)
        ("contact_sheet.png", 10),  # not an input: ignored
    ]
    # a fake's own sidecar counts with detect_per=video; with source (the default) it is cropped with its
    # source original's landmarks, so only the missing partner 001 keeps Deepfakes 000_001 out
    rows, errors = manifest.build_manifest(root, listing, exclude=["original_sequences/actors/"])
    by_source = {e["path"].split("ffpp/", 1)[1]: e["stage"] for e in errors}
    assert by_source["manipulated_sequences/Deepfakes/c23/videos/000_001.mp4"] == "pair"
    rows, errors = manifest.build_manifest(root, listing, exclude=["original_sequences/actors/"], detect_per="video")
    stage = {e["path"].split("ffpp/", 1)[1]: e["stage"] for e in errors}
    assert stage == {
        "original_sequences/youtube/c23/videos/003.mp4": "list",  # zero bytes
        "original_sequences/youtube/c23/videos/notes.txt": "parse",
        "original_sequences/youtube/c23/videos/abc.mp4": "parse",
        "manipulated_sequences/Unknown/c23/videos/000_001.mp4": "parse",
        "original_sequences/youtube/c23/videos/042.mp4": "split",
        "manipulated_sequences/Deepfakes/c23/videos/000_001.mp4": "landmarks",  # sidecar missing
        "manipulated_sequences/Deepfakes/c23/videos/001_000.mp4": "pair",  # source 001 missing
        "manipulated_sequences/Deepfakes/c23/videos/002_003.mp4": "pair",  # target 003 is zero-byte
        "manipulated_sequences/Deepfakes/c23/videos/003_002.mp4": "pair",  # source 003 is zero-byte
    }
    assert {r.video_id for r in rows} == {"original/c23/000", "original/c23/002"}


def test_manifest_filters_methods_and_compressions_and_reports_missing_splits(tmp_path):
    root, listing = _tree(tmp_path, {"train": [("000", "001")], "test": [("002", "003")]})
    rows, errors = manifest.build_manifest(root, listing + _videos(methods=("Deepfakes", "FaceSwap"),
                                                                   comps=("c23", "c40")),
                                           methods=["FaceSwap"], compressions=["c40"])
    assert {r.method for r in rows} == {"original", "FaceSwap"} and {r.compression for r in rows} == {"c40"}
    assert len(rows) == 8
    assert [(e["stage"], e["reason"]) for e in errors] == [("splits", "split file missing")]


def test_sample_indices_are_uniform_increasing_and_reject_short_videos():
    idx = decode.sample_indices(100, 4)
    assert idx.tolist() == [12, 37, 62, 87]
    assert decode.sample_indices(8, 8).tolist() == list(range(8))
    assert (np.diff(decode.sample_indices(301, 32)) > 0).all()
    with pytest.raises(decode.DecodeError, match="fewer than"):
        decode.sample_indices(3, 4)


def test_cost_model_prefers_seeking_sparse_frames_in_short_gops_and_scanning_otherwise():
    n = 1000
    sparse = decode.sample_indices(n, 4)
    assert decode.choose_strategy(sparse, np.arange(0, n, 10), seek_price=20) == "seek"
    assert decode.choose_strategy(sparse, np.array([0]), seek_price=20) == "scan"  # one GOP: seeking = scanning
    dense = decode.sample_indices(n, 200)
    assert decode.choose_strategy(dense, np.arange(0, n, 10), seek_price=20) == "scan"
    # continuing forward inside a GOP costs no seek
    assert decode.seek_cost(np.array([2, 5]), np.array([0]), seek_price=100) == 100 + 3 + 3


def test_sidecar_reads_validates_and_locates(tmp_path):
    root = str(tmp_path / "ffpp")
    pts = np.tile(np.array([[10, 10], [20, 10], [15, 15], [11, 20], [19, 20]], float), (3, 1, 1))
    good, bad = (storage.join(root, ffpp.landmarks_path("original", v)) for v in ("000", "001"))
    storage.write_bytes(good, ffpp.landmarks_to_json("000", np.zeros((3, 4)), pts, (32, 24)).encode())
    storage.write_bytes(bad, b"{not json")
    locate = landmarks.read_sidecar(good)
    assert locate.frames is None  # a sidecar of every frame: the ingest samples K
    np.testing.assert_allclose(locate(2, np.zeros((24, 32, 3))), pts[2])
    with pytest.raises(landmarks.LandmarkError, match="3 frames"):
        locate(3, np.zeros((24, 32, 3)))
    with pytest.raises(landmarks.LandmarkError, match="32x24"):
        locate(0, np.zeros((32, 32, 3)))
    with pytest.raises(landmarks.LandmarkError, match="malformed"):
        landmarks.read_sidecar(bad)
    with pytest.raises(landmarks.LandmarkError, match="missing"):
        landmarks.read_sidecar(storage.join(root, ffpp.landmarks_path("original", "002")))
    with pytest.raises(ValueError, match="unknown face detector"):
        landmarks.face_detector("retinaface")


def test_a_detectors_sidecar_holds_the_sampled_frames_with_a_face(tmp_path):
    uri = str(tmp_path / "000.json")
    pts = np.tile(np.array([[10, 10], [20, 10], [15, 15], [11, 20], [19, 20]], float), (2, 1, 1))
    storage.write_bytes(uri, ffpp.landmarks_to_json("000", np.zeros((2, 4)), pts, (32, 24), frames=[5, 15],
                                                    sampled=[5, 10, 15], scores=[1.0, 0.5], detector="dlib").encode())
    locate = landmarks.read_sidecar(uri, min_face_share=0.6)
    assert locate.frames.tolist() == [5, 15]
    np.testing.assert_allclose(locate(15, np.zeros((24, 32, 3))), pts[1])
    with pytest.raises(landmarks.LandmarkError, match="frame 10"):
        locate(10, np.zeros((24, 32, 3)))
    with pytest.raises(landmarks.LandmarkError, match="2 of 3 sampled frames"):
        landmarks.read_sidecar(uri, min_face_share=0.9)


def test_five_points_from_68_and_a_consistent_face_across_frames():
    p68 = np.zeros((68, 2))
    p68[36:42], p68[42:48], p68[30], p68[48], p68[54] = [10, 20], [30, 20], [20, 30], [12, 40], [28, 40]
    p68[36, 0], p68[41, 0] = 8, 12  # the eye centre is the mean of its six points
    np.testing.assert_allclose(landmarks.five_from_68(p68), [[10, 20], [30, 20], [20, 30], [12, 40], [28, 40]])

    def face(x, score):
        return landmarks.Face(np.array([x, 0, x + 10, 10.0]), score, np.zeros((5, 2)))

    # frame 0: the clear best; frame 1: two faces within `close`, the one near frame 0's wins; frame 2: none;
    # frame 3: a clearly better face elsewhere wins
    picked = landmarks.pick_faces([[face(0, 2.0), face(100, 1.0)], [face(100, 1.55), face(2, 1.5)], [],
                                   [face(100, 3.0), face(3, 1.0)]], close=0.1)
    assert [None if f is None else f.box[0] for f in picked] == [0, 2, None, 100]


def test_exit_code_is_nonzero_only_without_frames_or_above_the_error_share():
    def summary(frames, bad, inputs=10):
        return IngestSummary(output="o", videos=inputs, videos_ok=inputs - bad, videos_skipped=0, frames=frames,
                             frames_this_run=frames, pairs=0, errors=bad, inputs=inputs, bad_inputs=bad,
                             seconds=1.0, pipeline_seconds=1.0)
    assert summary(40, 2).exit_code(0.2) == 0
    assert summary(40, 3).exit_code(0.2) == 1
    assert summary(40, 3).exit_code(0.5) == 0
    assert summary(0, 0).exit_code(1.0) == 1
    text = str(summary(40, 2))
    assert "frames/s" in text and "2 of 10 inputs unusable" in text


def test_config_rejects_unknown_keys_and_values(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("input: a\noutput: b\nframes_per_video: 4\n")
    cfg = PrepareConfig.load(str(cfg_file), size=64)
    assert (cfg.frames_per_video, cfg.size, cfg.decode) == (4, 64, "auto")
    cfg_file.write_text("input: a\noutput: b\nframes: 4\n")
    with pytest.raises(ValueError):
        PrepareConfig.load(str(cfg_file))
    with pytest.raises(ValueError):
        PrepareConfig(input="a", output="b", methods=["DeepFake"])


def test_watchdog_turns_a_hang_into_a_dead_process_and_lets_fast_work_finish():
    code = ("import time\nfrom fst_ray.data.ingest.video import watchdog\n"
            "with watchdog(5.0):\n    pass\nwith watchdog(0.3):\n    time.sleep(60)\n")
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], timeout=120)
    assert done.returncode == -signal.SIGKILL and time.perf_counter() - t0 < 30


def test_seek_and_scan_return_exactly_the_sampled_frames(tmp_path):
    from fst_ray import video

    rng = np.random.default_rng(0)
    frames = np.clip(rng.normal(128, 40, (30, 32, 32, 3)).cumsum(0) / 8 + 128, 0, 255).astype(np.uint8)
    path = tmp_path / "v.mp4"
    path.write_bytes(video.encode(frames, "raw", keyframe_interval=7))  # lossless: exact comparison
    idx = decode.sample_indices(30, 6)
    for strategy in ("seek", "scan"):
        v = decode.open_video(str(path))
        assert v.n_frames == 30 and 0 in v.keyframes.tolist()
        got = list(v.frames(idx, strategy))
        assert [i for i, _ in got] == idx.tolist()
        np.testing.assert_array_equal(np.stack([f for _, f in got]), frames[idx])


def test_unreadable_videos_raise_decode_errors(tmp_path):
    from fst_ray import video

    good = video.encode(np.zeros((12, 32, 32, 3), np.uint8), "c23")
    for name, data in (("text", b"not a video at all" * 20), ("truncated", good[: len(good) // 2])):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(decode.DecodeError, match="unreadable"):
            decode.open_video(str(tmp_path / name))


def test_manifest_without_sidecars_detects_on_each_source_at_its_best_compression(tmp_path):
    """FF++ as users have it: no sidecars, some videos at c23 only, FF++'s split files elsewhere."""
    splits, _ = _tree(tmp_path / "splits-from-github")
    root = str(tmp_path / "ffpp")
    listing = [(p, n) for p, n in _videos(comps=("c23", "c40")) + [(ffpp.video_path("original", "raw", "000"), 9)]
               if "/landmarks/" not in p and not p.startswith(ffpp.video_path("original", "c40", "001")[:-7] + "001")]
    rows, errors = manifest.build_manifest(root, listing, compressions=["c23", "c40"], landmarks="auto",
                                           cache="out", splits_uri=storage.join(splits, "splits"))
    by_id = {r.video_id: r for r in rows}
    # both c40 fakes lack an original at c40 (001 is at c23 alone): FF++'s pair rule, not a landmark error
    assert sorted(e["path"].rsplit("ffpp/", 1)[1] for e in errors) == [
        ffpp.video_path("Deepfakes", "c40", v) for v in ("000_001", "001_000")]
    for vid, source, best in (("original/c23/000", "000", "raw"), ("original/c40/000", "000", "raw"),
                              ("Deepfakes/c23/000_001", "000", "raw"),
                              ("original/c23/001", "001", "c23"), ("Deepfakes/c23/001_000", "001", "c23")):
        assert by_id[vid].landmarks_uri == storage.join("out", "landmarks", ffpp.landmarks_path("original", source))
        assert by_id[vid].detect_uri == storage.join(root, ffpp.video_path("original", best, source))
    per_video, _ = manifest.build_manifest(root, listing, compressions=["c23"], landmarks="detect", cache="out",
                                           detect_per="video", splits_uri=storage.join(splits, "splits"))
    fake = next(r for r in per_video if r.video == "000_001")
    assert fake.detect_uri == storage.join(root, ffpp.video_path("Deepfakes", "c23", "000_001"))


def test_a_malformed_or_conflicting_split_file_stops_at_once_naming_file_and_entry(tmp_path):
    """Not a quarantine of every video it fails to place: one clear error before anything runs."""
    from fst_ray.config import UserError

    root, listing = _tree(tmp_path)
    bad = storage.join(root, ffpp.split_path("val"))
    storage.write_bytes(bad, b'[["002", "003"], ["004"]]')
    with pytest.raises(UserError, match=r"malformed split file .*val\.json: entry 1 \(\[\"004\"\]\) is not a pair"):
        manifest.build_manifest(root, listing + _videos())
    storage.write_bytes(bad, b"{not json")
    with pytest.raises(UserError, match=r"val\.json: not JSON"):
        manifest.build_manifest(root, listing + _videos())
    storage.write_bytes(bad, b'[["002", "003"], ["001", "004"]]')  # 001 is also in train
    with pytest.raises(UserError, match="id 001 is in both the train and the val split"):
        manifest.build_manifest(root, listing + _videos())


def test_an_input_that_does_not_exist_is_one_line_not_an_empty_ingest(tmp_path):
    from fst_ray.config import UserError
    from fst_ray.data.ingest import run_ingest

    with pytest.raises(UserError, match="does not exist"):
        run_ingest(PrepareConfig(input=str(tmp_path / "no-such-tree"), output=str(tmp_path / "out")))
    assert not (tmp_path / "out" / "_SUCCESS.json").exists()


def test_a_storage_fault_without_detail_still_names_the_store(monkeypatch):
    """A connection dropped mid-copy can reach us as a bare "AWS Error": the line names the endpoint to check."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5999")
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    code, line = storage.describe_error(OSError("When copying key 'a' in bucket 'b': AWS Error "), ["s3://b/tables"])
    assert code == 3 and "storage unavailable at http://127.0.0.1:5999" in line and "re-run" in line
    code, line = storage.describe_error(OSError("disk went away"), ["/tmp/out"])
    assert code == 3 and "storage unavailable (" in line
