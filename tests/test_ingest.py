"""The ingest end to end on a tiny synthetic corpus: local and s3:// runs, pair integrity, exact alignment
of lossless frames, re-runs, an interrupted run resumed, and every kind of bad input."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from fst_ray import ffpp, frames, storage, video
from fst_ray.config import UserError
from fst_ray.data import align, views
from fst_ray.data.config import PrepareConfig
from fst_ray.data.ingest import run_ingest
from fst_ray.data.records import SUCCESS_FILE, finished_ingest
from fst_ray.synth import corpus
from fst_ray.synth.config import SynthConfig

REPO = Path(__file__).resolve().parent.parent
K, S = 4, 48
SYNTH = dict(identities=6, frames=8, size=64, methods=["Deepfakes", "FaceSwap"], contact_sheet=False, seed=0)


@pytest.fixture(scope="session")
def synth(tmp_path_factory):
    """The corpus (6 originals, 12 fakes, 3 compressions = 54 videos of 8 frames), written in-process."""
    cfg = SynthConfig(output=str(tmp_path_factory.mktemp("ingest") / "ffpp"), **SYNTH)
    plan = corpus.plan_corpus(cfg)
    corpus.write_metadata(cfg, plan, [corpus.write_group(cfg, plan, s) for s in plan.ids])
    return cfg, plan


def _config(input: str, output: str, **kw) -> PrepareConfig:
    return PrepareConfig(input=input, output=output, frames_per_video=K, size=S, **kw)


@pytest.fixture(scope="session")
def clean_run(synth, ray_session, tmp_path_factory):
    cfg, _ = synth
    ingest = _config(cfg.output, str(tmp_path_factory.mktemp("ingest") / "out"))
    return ingest, run_ingest(ingest)


def _frames(output: str, columns=None):
    return views.read_table(output, "frames", columns).sort_by("key")


def _digest(output: str) -> dict[str, str]:
    t = _frames(output, ["key", "image", "mask"]).to_pydict()
    return {k: hashlib.sha1(i + (m or b"")).hexdigest() for k, i, m in zip(t["key"], t["image"], t["mask"])}


def test_local_ingest_writes_every_frame_with_labels_and_valid_pairs(synth, clean_run):
    cfg, plan = synth
    ingest, summary = clean_run
    n_videos = len(plan.ids) * (1 + len(cfg.methods)) * 3
    assert (summary.videos, summary.videos_ok, summary.errors) == (n_videos, n_videos, 0)
    assert summary.frames == n_videos * K and summary.pairs == len(plan.ids) * len(cfg.methods) * 3 * K
    assert summary.exit_code(ingest.max_error_share) == 0
    marker = storage.read_bytes(storage.join(ingest.output, SUCCESS_FILE))
    assert b'"frames": %d' % summary.frames in marker

    table = _frames(ingest.output)
    assert table.schema.equals(frames.SCHEMA, check_metadata=False)
    assert pq.read_schema(next(Path(ingest.output, "frames").glob("*.parquet"))).field("image").metadata
    rows = {k: r for k, r in zip(table["key"].to_pylist(), table.drop_columns(["image", "mask"]).to_pylist())}
    manifest = pq.read_table(os.path.join(ingest.output, "manifest.parquet")).to_pylist()
    for m in manifest:
        mine = [r for r in rows.values() if (r["method"], r["compression"], r["video"]) ==
                (m["method"], m["compression"], m["video"])]
        assert len(mine) == K
        assert all((r["det_label"], r["source_id"], r["target_id"], r["split"], r["size"]) ==
                   (m["det_label"], m["source_id"], m["target_id"], m["split"], S) for r in mine)

    pairs = views.read_table(ingest.output, "fst_pairs").to_pylist()
    assert len(pairs) == summary.pairs
    for p in pairs:
        fake, src, tgt = rows[p["fake_key"]], rows[p["source_key"]], rows[p["target_key"]]
        assert fake["det_label"] == 1 and src["det_label"] == tgt["det_label"] == 0
        assert src["video"] == fake["source_id"] and tgt["video"] == fake["target_id"]
        assert src["frame_index"] == fake["frame_index"]
        assert fake["compression"] == src["compression"] == tgt["compression"] == p["compression"]
        assert fake["split"] == src["split"] == tgt["split"] == p["split"] and fake["method"] == p["method"]


def test_lossless_frames_are_exactly_the_aligned_decoded_frames_and_masks(synth, clean_run):
    """raw is lossless RGB: each stored crop equals aligning the PyAV-decoded frame with its source original's
    sidecar (a fake is cropped with its source's landmarks, so it lines up with its source pixel for pixel)."""
    cfg, plan = synth
    ingest, _ = clean_run
    fake = ffpp.video_name(plan.ids[0], plan.partner[plan.ids[0]])
    for method, name in [(ffpp.ORIGINAL, plan.ids[0]), ("FaceSwap", fake)]:
        decoded = video.decode(storage.read_bytes(storage.join(cfg.output, ffpp.video_path(method, "raw", name))))
        points = ffpp.landmarks_from_json(storage.read_bytes(storage.join(
            cfg.output, ffpp.landmarks_path(ffpp.ORIGINAL, plan.ids[0])))).landmarks
        masks = None
        if method != ffpp.ORIGINAL:
            masks = video.decode(storage.read_bytes(storage.join(cfg.output, ffpp.mask_path(method, name))))
        got = views.read_table(ingest.output, "frames", filter=views.where(method=method, compression="raw")
                               & (views.pc.field("video") == name)).sort_by("key").to_pylist()
        assert [r["frame_index"] for r in got] == [1, 3, 5, 7]  # K=4 uniform of 8
        for r in got:
            i = r["frame_index"]
            want, want_mask = align.align_face(decoded[i], points[i], S, ingest.margin,
                                               None if masks is None else np.where(masks[i, ..., 0] > 127, 255, 0)
                                               .astype(np.uint8))
            np.testing.assert_array_equal(np.frombuffer(r["image"], np.uint8).reshape(S, S, 3), want)
            if masks is None:
                assert r["mask"] is None
            else:
                got_mask = np.frombuffer(r["mask"], np.uint8).reshape(S, S)
                np.testing.assert_array_equal(got_mask, want_mask)
                assert 0 < (got_mask == 255).mean() < 1


def test_rerun_adds_no_rows_and_changes_nothing(clean_run):
    ingest, first = clean_run
    before = sorted(p.name for p in Path(ingest.output, "frames").iterdir())
    digest = _digest(ingest.output)
    again = run_ingest(ingest)
    assert again.videos_skipped == again.videos == first.videos and again.frames_this_run == 0
    assert (again.frames, again.pairs, again.errors) == (first.frames, first.pairs, first.errors)
    assert sorted(p.name for p in Path(ingest.output, "frames").iterdir()) == before
    assert _digest(ingest.output) == digest
    assert len(views.read_table(ingest.output, "fst_pairs")) == first.pairs
    with pytest.raises(UserError, match="overwrite"):
        run_ingest(ingest.model_copy(update={"size": S + 16}))


@pytest.mark.slow
def test_interrupted_run_resumes_where_it_stopped(synth, clean_run, ray_session, tmp_path):
    """The job, killed mid-run (SIGKILL of its driver), then re-run: finished videos are skipped and the
    tables equal a clean run's."""
    cfg, _ = synth
    out = str(tmp_path / "out")
    conf = tmp_path / "prepare.yaml"
    conf.write_text(f"input: {cfg.output}\noutput: {out}\nframes_per_video: {K}\nsize: {S}\ncpus_per_video: 2\n")
    env = {**os.environ, "RAY_ADDRESS": ray_session.get_runtime_context().gcs_address}
    job = subprocess.Popen([sys.executable, str(REPO / "jobs/prepare_data.py"), "--config", str(conf)], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    frames_dir = Path(out, "frames")
    deadline = time.time() + 90
    def finished_files() -> int:  # not the .tmp-* file a killed writer leaves behind
        return sum(1 for f in frames_dir.glob("*.parquet") if not f.name.startswith(".tmp-"))

    while time.time() < deadline and finished_files() < 3 and job.poll() is None:
        time.sleep(0.02)
    job.send_signal(signal.SIGKILL)
    job.wait()
    time.sleep(1.0)  # let Ray reap the dead driver's tasks
    done = finished_files()
    assert not Path(out, SUCCESS_FILE).exists(), "the job finished before it could be interrupted"
    assert 3 <= done < clean_run[1].videos

    resumed = run_ingest(_config(cfg.output, out))
    assert done <= resumed.videos_skipped < resumed.videos
    assert resumed.frames_this_run == (resumed.videos - resumed.videos_skipped) * K
    assert Path(out, SUCCESS_FILE).exists()
    assert _digest(out) == _digest(clean_run[0].output)
    assert len(views.read_table(out, "fst_pairs")) == clean_run[1].pairs


def _upload(local_root: str, uri: str, keep) -> None:
    fs, path = storage.resolve(uri)
    for rel, _ in [(p[len(local_root) + 1:], n) for p, n in storage.list_files(local_root)]:
        if keep(rel):
            with fs.open_output_stream(f"{path}/{rel}") as f:
                f.write(Path(local_root, rel).read_bytes())


def test_s3_ingest_matches_the_local_one(synth, clean_run, s3_bucket, ray_session):
    cfg, plan = synth
    src, out = f"{s3_bucket}/ffpp", f"{s3_bucket}/tables"
    _upload(cfg.output, src, lambda rel: "/c23/" in rel or "/masks/" in rel or rel.endswith(".json"))
    summary = run_ingest(_config(src, out, compressions=["c23"]))
    n_videos = len(plan.ids) * (1 + len(cfg.methods))
    assert (summary.videos_ok, summary.frames, summary.errors) == (n_videos, n_videos * K, 0)
    assert summary.pairs == len(plan.ids) * len(cfg.methods) * K
    fs, path = storage.resolve(out)
    assert fs.get_file_info(f"{path}/{SUCCESS_FILE}").type == pafs.FileType.File
    local = {k: v for k, v in _digest(clean_run[0].output).items() if "/c23/" in k}
    assert _digest(out) == local


def _crash_decoder(data: bytes) -> bytes:
    """An MP4 whose decoding aborts the process: the first stts entry claims 2^31-1 samples, and
    decord's index allocation dies with std::bad_alloc (SIGABRT), not a Python exception."""
    d = bytearray(data)
    i = d.find(b"stts")
    d[i + 12:i + 16] = struct.pack(">I", 0x7FFFFFFF)
    return bytes(d)


@pytest.mark.slow
def test_bad_inputs_land_in_errors_and_every_good_video_is_kept(synth, ray_session, tmp_path):
    cfg, plan = synth
    root = str(tmp_path / "ffpp")
    pafs.copy_files(cfg.output, root)
    (a, b), (c, d), (x, y) = (pair for split in ffpp.SPLITS for pair in plan.splits[split])
    p = lambda *parts: Path(root, ffpp.video_path(*parts))  # noqa: E731
    rng = np.random.default_rng(0)
    damage = {  # path -> expected stage
        p("original", "c40", a): "decode",  # not a video at all
        p("Deepfakes", "raw", f"{c}_{d}"): "decode",  # truncated
        p("FaceSwap", "c23", f"{d}_{c}"): "list",  # zero bytes
        p("original", "c23", x): "decode",  # 2 frames, fewer than K
        p("Deepfakes", "c23", f"{a}_{b}"): "decode",  # crashes the decoder process
        Path(root, "original_sequences/youtube/c23/videos/README.txt"): "parse",  # non-video file
        Path(root, "manipulated_sequences/Deepfakes/c23/videos/xyz.mp4"): "parse",  # name does not parse
    }
    p("original", "c40", a).write_bytes(rng.bytes(5000))
    p("Deepfakes", "raw", f"{c}_{d}").write_bytes(p("Deepfakes", "raw", f"{c}_{d}").read_bytes()[:3000])
    p("FaceSwap", "c23", f"{d}_{c}").write_bytes(b"")
    p("original", "c23", x).write_bytes(video.encode(np.zeros((2, 64, 64, 3), np.uint8), "c23"))
    p("Deepfakes", "c23", f"{a}_{b}").write_bytes(_crash_decoder(p("Deepfakes", "c23", f"{a}_{b}").read_bytes()))
    Path(root, "original_sequences/youtube/c23/videos/README.txt").write_text("not a video")
    Path(root, "manipulated_sequences/Deepfakes/c23/videos/xyz.mp4").write_bytes(p("original", "c23", c).read_bytes())
    p("original", "raw", y).unlink()  # fakes x_y, y_x at raw lose their target/source
    damage.update({p(m, "raw", n): "pair" for m in cfg.methods for n in (f"{x}_{y}", f"{y}_{x}")})
    Path(root, ffpp.landmarks_path("FaceSwap", f"{b}_{a}")).unlink()  # missing sidecar
    Path(root, ffpp.landmarks_path("Deepfakes", f"{d}_{c}")).write_text("{broken")  # malformed sidecar
    damage.update({p(m, comp, n): "landmarks" for m, n in (("FaceSwap", f"{b}_{a}"), ("Deepfakes", f"{d}_{c}"))
                   for comp in ffpp.COMPRESSIONS})
    mask = Path(root, ffpp.mask_path("FaceSwap", f"{c}_{d}"))
    mask.write_bytes(rng.bytes(3000))  # a bad mask loses the mask only

    out = str(tmp_path / "out")
    # a missing or malformed sidecar is an error; detect_per=video, so each fake needs its own
    summary = run_ingest(_config(root, out, max_retries=1, landmarks="sidecar", detect_per="video"))
    errors = views.read_table(out, "errors").to_pylist()
    stages = {}
    for err in errors:
        stages.setdefault(err["path"], set()).add(err["stage"])
    for path, stage in damage.items():
        assert stage in stages.get(str(path), set()), (path, stage, stages.get(str(path)))
    reason = {err["path"]: err["reason"] for err in errors}
    crash = reason[str(p("Deepfakes", "c23", f"{a}_{b}"))]
    assert "died on each of 3 attempts" in crash and "quarantined" in crash
    assert "fewer than" in reason[str(p("original", "c23", x))]
    assert "malformed" in reason[str(p("Deepfakes", "raw", f"{d}_{c}"))]
    assert stages[str(mask)] == {"mask"}
    # fakes whose original failed to decode: frames kept, pairs reported
    for m, n in (("Deepfakes", f"{b}_{a}"), ("FaceSwap", f"{a}_{b}")):
        assert stages[str(p(m, "c40", n))] == {"pair"}
    for m in cfg.methods:
        assert stages[str(p(m, "c23", f"{x}_{y}"))] == {"pair"}

    # every video without a video-level error has all K frames
    video_level = {path for path, st in stages.items() if st & {"list", "parse", "landmarks", "decode"}}
    video_level |= {str(path) for path, st in damage.items() if st == "pair"}  # dropped from the manifest
    table = _frames(out, ["key", "method", "compression", "video"])
    counts = {}
    for m, comp, v in zip(table["method"].to_pylist(), table["compression"].to_pylist(), table["video"].to_pylist()):
        counts[(m, comp, v)] = counts.get((m, comp, v), 0) + 1
    expected = 0
    for m in [ffpp.ORIGINAL, *cfg.methods]:
        for comp in ffpp.COMPRESSIONS:
            for sid in plan.ids:
                name = sid if m == ffpp.ORIGINAL else ffpp.video_name(sid, plan.partner[sid])
                path = p(m, comp, name)
                if not path.exists() or str(path) in video_level:
                    assert (m, comp, name) not in counts
                else:
                    assert counts.get((m, comp, name)) == K, (m, comp, name)
                    expected += 1
    assert summary.videos_ok == expected == len(counts)
    masked = views.read_table(out, "frames", filter=(views.pc.field("video") == f"{c}_{d}")
                              & (views.pc.field("method") == "FaceSwap"))
    assert masked.num_rows == 3 * K and masked["mask"].null_count == 3 * K
    assert summary.exit_code(1.0) == 0 and summary.exit_code(0.0) == 1
    assert 0 < summary.error_share < 1
    text = str(summary)
    assert "decode: decoder process died" in text and "landmarks:" in text and "parse:" in text


def test_nothing_usable_exits_nonzero(tmp_path):
    root = tmp_path / "empty"
    (root / "original_sequences/youtube/c23/videos").mkdir(parents=True)
    (root / "original_sequences/youtube/c23/videos/000.mp4").write_bytes(b"")
    summary = run_ingest(_config(str(root), str(tmp_path / "out")))
    assert summary.frames == 0 and summary.exit_code(1.0) == 1
    assert summary.errors == 4  # three missing split files and one zero-byte video
    assert finished_ingest(str(tmp_path / "out")) is None and not (tmp_path / "out" / SUCCESS_FILE).exists()


def test_completion_marker_carries_a_verdict_that_consumers_check(clean_run, tmp_path):
    """A succeeded ingest's marker says so and names its parameters; a marker without that verdict (a failed
    or older run) is not a finished ingest, and the hypothesis jobs ingest again instead of trusting it."""
    ingest, summary = clean_run
    marker = finished_ingest(ingest.output)
    assert marker["verdict"] == "succeeded" and marker["params"]["size"] == S and marker["frames"] == summary.frames
    fake = tmp_path / "tables"
    fake.mkdir()
    (fake / SUCCESS_FILE).write_text('{"videos": 0, "frames": 0}')
    assert finished_ingest(str(fake)) is None
    from fst_ray.config import UserError
    from fst_ray.hypotheses.config import HypothesisConfig
    from fst_ray.hypotheses.pipeline import ensure_tables

    cfg = HypothesisConfig(input=str(tmp_path / "missing"), tables=str(fake), work=str(tmp_path / "w"),
                           output=str(tmp_path / "o"))
    with pytest.raises(UserError, match="does not exist"):  # it tried to ingest: the marker was not trusted
        ensure_tables(cfg)
    other = HypothesisConfig(input=ingest.input, tables=ingest.output, work=str(tmp_path / "w"),
                             output=str(tmp_path / "o"), prepare={"frames_per_video": K, "size": 2 * S})
    with pytest.raises(UserError, match="was ingested with"):
        ensure_tables(other)


def test_views_on_ingested_tables(clean_run):
    ingest, _ = clean_run
    index = frames.read_index(ingest.output)
    h2 = views.paired_unpaired(index, seed=0, split=None, compression="c23")
    assert h2.paired.num_rows == h2.unpaired.num_rows > 0
    fakes = views.select(h2.paired, det_label=1)
    ids = set(fakes["source_id"].to_pylist()) | set(fakes["target_id"].to_pylist())
    assert set(h2.paired_reals) == ids and not (set(h2.unpaired_reals) & ids)
    train, held = views.frame_holdout(index, seed=0, fraction=0.25)
    assert train.num_rows + held.num_rows == index.num_rows and held.num_rows > 0
    picked = views.read_table(ingest.output, "frames", ["key", "image"], frames.keys_filter(held["key"].to_pylist()[:5]))
    assert picked.num_rows == 5 and all(len(b) == S * S * 3 for b in picked["image"].to_pylist())


def test_job_prints_summary_and_exit_code(clean_run, ray_session, capsys):
    sys.path.insert(0, str(REPO / "jobs"))
    try:
        import prepare_data
    finally:
        sys.path.pop(0)
    ingest, _ = clean_run
    rc = prepare_data.main(["--input", ingest.input, "--output", ingest.output, "--frames-per-video", str(K),
                            "--size", str(S)])
    text = capsys.readouterr().out
    assert rc == 0 and "ingest summary" in text and ingest.output in text and "frames/s" in text
    assert io.StringIO(text).read().count("\n") < 25  # one screen


def test_frames_are_compacted_into_shards_and_a_video_leaving_the_manifest_is_cut_out(clean_run, tmp_path):
    ingest, first = clean_run
    names = [p.name for p in Path(ingest.output, "frames").iterdir()]
    assert names and all(n.startswith("part-") for n in names), names  # no per-video file left
    held = [v for n in names for v in __import__("json").loads(
        pq.read_metadata(Path(ingest.output, "frames", n)).metadata[b"fst_ray.videos"])]
    assert len(held) == len(set(held)) == first.videos_ok
    out = str(tmp_path / "copy")
    pafs.copy_files(ingest.output, out)
    fewer = run_ingest(ingest.model_copy(update={"output": out, "methods": ["Deepfakes"]}))
    assert fewer.videos_skipped == fewer.videos < first.videos and fewer.frames_this_run == 0
    want = {k: v for k, v in _digest(ingest.output).items() if not k.startswith("FaceSwap/")}
    assert _digest(out) == want


def test_nothing_usable_is_one_line_and_exit_code_2(tmp_path, capsys):
    import importlib

    root = tmp_path / "empty"
    (root / "original_sequences/youtube/c23/videos").mkdir(parents=True)
    (root / "original_sequences/youtube/c23/videos/000.mp4").write_bytes(b"")
    prepare_data = importlib.import_module("jobs.prepare_data")
    assert prepare_data.main(["--input", str(root), "--output", str(tmp_path / "out"), "--size", "32"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: nothing usable in {root}: 1 of 1 inputs unusable"), err
    assert "ingest summary" not in captured.out and not (tmp_path / "out" / SUCCESS_FILE).exists()


def _shard(output: str) -> Path:
    shards = sorted(Path(output, "frames").glob("part-*.parquet"))
    assert shards
    return shards[0]


@pytest.mark.parametrize("damage", ["truncated", "partial upload"])
def test_a_damaged_shard_is_one_line_for_readers_and_rebuilt_by_the_ingest(clean_run, tmp_path, capsys, damage):
    """A frames shard cut to half its bytes, or written as an interrupted upload of an older fst-ray left it (its
    footer names every video, its rows are those of the first): a reader's job ends with one line naming the file
    (truncated; the partial one reads as what it holds), and the ingest's re-run rebuilds the videos it lost,
    without ``overwrite``: frames equal a clean run's."""
    import importlib
    import shutil

    import pyarrow.parquet as pq

    ingest, summary = clean_run
    output = str(tmp_path / "out")
    shutil.copytree(ingest.output, output)
    shard = _shard(output)
    if damage == "truncated":
        data = shard.read_bytes()
        shard.write_bytes(data[: len(data) // 2])
        shapley = importlib.import_module("jobs.shapley")
        assert shapley.main(["--input", output, "--models", str(tmp_path / "none.pt"),
                             "--output", str(tmp_path / "maps")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"{shard} is damaged" in err[0] and "re-run" in err[0], err
    else:
        table = pq.ParquetFile(shard)
        first = table.read_row_group(0)
        with pq.ParquetWriter(shard, first.schema) as writer:  # the footer keeps the schema's list of videos
            writer.write_table(first)
        assert len(views.read_table(output, "frames", ["key"])) < summary.frames
    again = run_ingest(ingest.model_copy(update={"output": output}))
    assert again.frames == summary.frames and again.frames_this_run > 0
    assert _frames(output).equals(_frames(ingest.output))
    assert finished_ingest(output)["frames"] == summary.frames


@pytest.mark.slow
def test_a_full_disk_is_one_line_naming_the_output(synth, tmp_path):
    """The output on a file system with no room left: one line naming the output and what to do, exit code 3, no
    traceback, and the input is not blamed."""
    cfg, _ = synth
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("mounting a small file system needs root")
    try:
        output = str(disk / "out")
        done = subprocess.run([sys.executable, "jobs/prepare_data.py", "--input", cfg.output, "--output", output,
                               "--frames-per-video", "2", "--size", "64", "--compressions", "raw"], cwd=REPO,
                              capture_output=True, text=True, timeout=300)
    finally:
        subprocess.run(["umount", str(disk)], check=True)
    err = done.stderr.strip().splitlines()
    assert done.returncode == 3 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert err[-1] == (f"error: no space left on the device holding {output}: free space, then re-run the same "
                       "command to resume"), err
