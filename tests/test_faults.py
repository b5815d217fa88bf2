"""Faults of the object store, with a real S3 endpoint in its own process (moto on 127.0.0.1) that the test
pauses (SIGSTOP) or kills mid-ingest, and a secret key that must appear nowhere.

Each job runs as its own driver process with its own local Ray (so its workers see this endpoint and these
credentials, and its Ray session logs are this run's alone).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from fst_ray import storage
from fst_ray.data import views
from fst_ray.data.config import PrepareConfig
from fst_ray.data.ingest import run_ingest
from fst_ray.data.records import SUCCESS_FILE

from conftest import small_corpus

REPO = Path(__file__).resolve().parent.parent
K, S = 4, 48
SECRET = "fstRaySecret" + uuid.uuid4().hex  # recognisable, and in no file before this test


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Endpoint:
    """A moto S3 server in its own process group on 127.0.0.1."""

    def __init__(self, check_credentials: bool = False):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, **({"INITIAL_NO_AUTH_ACTION_COUNT": "0"} if check_credentials else {})}
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.time() + 30
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError("moto did not start")

    def env(self, secret: str = "testing") -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RAY_ADDRESS"))}
        return {**env, "AWS_ENDPOINT_URL": self.url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": secret,
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
                "FST_RAY_S3_TIMEOUT_S": "2", "FST_RAY_S3_ATTEMPTS": "2"}

    def fs(self) -> pafs.S3FileSystem:
        return pafs.S3FileSystem(endpoint_override=f"127.0.0.1:{self.port}", scheme="http", region="us-east-1",
                                 access_key="testing", secret_key="testing", allow_bucket_creation=True)

    def signal(self, sig: int) -> None:
        os.killpg(self.proc.pid, sig)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGKILL)
            self.proc.wait()


@pytest.fixture
def endpoint():
    e = Endpoint()
    yield e
    e.stop()


@pytest.fixture(scope="module")
def corpus_c23(tmp_path_factory):
    """A small synthetic corpus (4 originals, 8 fakes) and its clean local ingest at c23 (the reference)."""
    return small_corpus(str(tmp_path_factory.mktemp("faults") / "ffpp"), seed=1)


@pytest.fixture(scope="module")
def clean(corpus_c23, ray_session, tmp_path_factory):
    """The corpus's uninterrupted local ingest at c23: what every interrupted and resumed one must equal."""
    return run_ingest(PrepareConfig(input=corpus_c23, output=str(tmp_path_factory.mktemp("clean")), frames_per_video=K,
                                    size=S, compressions=["c23"]))


def _upload(fs: pafs.S3FileSystem, local_root: str, bucket: str) -> None:
    fs.create_dir(bucket)
    for uri, _ in storage.list_files(local_root):
        rel = uri[len(local_root) + 1:]
        if "/c23/" in rel or "/masks/" in rel or rel.endswith(".json"):
            with fs.open_output_stream(f"{bucket}/ffpp/{rel}") as f:
                f.write(Path(uri).read_bytes())


def _ingest(endpoint: Endpoint, bucket: str, ray_tmp: str, secret: str = "testing") -> subprocess.Popen:
    cmd = [sys.executable, str(REPO / "jobs/prepare_data.py"), "--input", f"s3://{bucket}/ffpp",
           "--output", f"s3://{bucket}/tables", "--frames-per-video", str(K), "--size", str(S),
           "--compressions", "c23", "--cpus-per-video", "2", "--groups-per-task", "1"]
    return subprocess.Popen(cmd, env={**endpoint.env(secret), "RAY_TMPDIR": ray_tmp}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _frames_written(fs: pafs.S3FileSystem, bucket: str) -> int:
    try:
        infos = fs.get_file_info(pafs.FileSelector(f"{bucket}/tables/frames", allow_not_found=True))
    except OSError:
        return 0
    return sum(1 for i in infos if i.base_name.endswith(".parquet") and not i.base_name.startswith(".tmp-"))


def _digest(output: str) -> dict[str, str]:
    t = views.read_table(output, "frames", ["key", "image", "mask"]).to_pydict()
    return {k: hashlib.sha1(i + (m or b"")).hexdigest() for k, i, m in zip(t["key"], t["image"], t["mask"])}


@pytest.fixture
def ray_tmp():
    path = tempfile.mkdtemp(prefix="fr", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _interrupt(endpoint: Endpoint, corpus_root: str, ray_tmp: str, sig: int) -> tuple[subprocess.Popen, float, str]:
    """Start an s3:// ingest, send the endpoint ``sig`` once two videos are written, wait for the job's end;
    returns the job, the seconds from the signal to its end, and the bucket."""
    bucket = f"b{uuid.uuid4().hex[:10]}"
    fs = endpoint.fs()
    _upload(fs, corpus_root, bucket)
    job = _ingest(endpoint, bucket, ray_tmp)
    deadline = time.time() + 180
    while time.time() < deadline and job.poll() is None and _frames_written(fs, bucket) < 2:
        time.sleep(0.05)
    assert job.poll() is None, "the ingest ended before the store failed: " + job.stderr.read()[-2000:]
    endpoint.signal(sig)
    t0 = time.time()
    try:
        job.wait(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        pytest.fail("the ingest did not end within 240 s of the store's failure")
    return job, time.time() - t0, bucket


def _one_line_storage_error(returncode: int, err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert returncode == 3, err[-3000:]
    assert "Traceback" not in err and len([line for line in lines if line.startswith("error:")]) == 1, err[-3000:]
    line = next(line for line in lines if line.startswith("error:"))
    assert "storage unavailable" in line and "re-run" in line
    return line


@pytest.mark.slow
def test_a_paused_store_ends_the_ingest_clearly_and_a_rerun_completes_it(endpoint, corpus_c23, ray_tmp, clean,
                                                                          monkeypatch):
    """The store stops answering mid-ingest: the job ends within a bounded time with one line and exit code 3,
    writes no completion marker and records no input as bad; once the store is back the same command
    completes, with every frame of a clean run's and nothing twice."""
    job, seconds, bucket = _interrupt(endpoint, corpus_c23, ray_tmp, signal.SIGSTOP)
    _one_line_storage_error(job.returncode, job.stderr.read())
    assert seconds < 120  # timeouts 2 s x 2 attempts per call, and Ray's shutdown
    endpoint.signal(signal.SIGCONT)
    fs = endpoint.fs()
    assert fs.get_file_info(f"{bucket}/tables/{SUCCESS_FILE}").type == pafs.FileType.NotFound
    errors = fs.get_file_info(pafs.FileSelector(f"{bucket}/tables/errors", allow_not_found=True))
    assert not [i.path for i in errors if i.base_name.startswith("video.")], "a storage fault became bad input"

    again = _ingest(endpoint, bucket, ray_tmp)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err[-3000:]
    assert "finished earlier, skipped" in out
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint.url)
    resumed = _digest(f"s3://{bucket}/tables")
    keys = views.read_table(f"s3://{bucket}/tables", "frames", ["key"])["key"].to_pylist()
    assert len(keys) == len(set(keys)) == clean.frames
    assert resumed == _digest(clean.output)


@pytest.mark.slow
def test_a_killed_store_ends_the_ingest_clearly(endpoint, corpus_c23, ray_tmp):
    """The endpoint's process killed mid-ingest: one line naming the fault, exit code 3, no traceback, in a
    bounded time (moto keeps its objects in memory, so there is nothing to resume from)."""
    job, seconds, _ = _interrupt(endpoint, corpus_c23, ray_tmp, signal.SIGKILL)
    line = _one_line_storage_error(job.returncode, job.stderr.read())
    assert seconds < 120
    assert "127.0.0.1" in line or "connect" in line.lower(), line


@pytest.mark.slow
def test_the_secret_key_appears_in_no_output_console_line_or_ray_log(endpoint, corpus_c23, ray_tmp):
    """An s3:// ingest run with a recognisable secret key: the key is in none of the console output, the
    objects and files the job wrote, or the Ray session's logs of that run."""
    bucket = f"b{uuid.uuid4().hex[:10]}"
    fs = endpoint.fs()
    _upload(fs, corpus_c23, bucket)
    job = _ingest(endpoint, bucket, ray_tmp, secret=SECRET)
    out, err = job.communicate(timeout=300)
    assert job.returncode == 0, err[-3000:]
    assert SECRET not in out + err
    written = fs.get_file_info(pafs.FileSelector(f"{bucket}/tables", recursive=True))
    objects = [i.path for i in written if i.type == pafs.FileType.File]
    assert any(p.endswith(SUCCESS_FILE) for p in objects) and any("/frames/" in p for p in objects)
    for path in objects:
        with fs.open_input_stream(path) as f:
            assert SECRET.encode() not in f.read(), path
    logs = [p for p in Path(ray_tmp).rglob("*") if p.is_file() and not p.is_socket()]
    assert any(p.suffix in (".out", ".err", ".log") for p in logs)
    for p in logs:
        assert SECRET.encode() not in p.read_bytes(), p


@pytest.mark.slow
def test_refused_credentials_and_a_missing_endpoint_are_one_line_each(ray_tmp):
    """An endpoint that checks credentials refuses unknown ones: one line saying so, exit code 2 (the user's to
    fix); an endpoint with nothing listening: one line, storage unavailable, exit code 3."""
    strict = Endpoint(check_credentials=True)
    try:
        job = _ingest(strict, "nobucket", ray_tmp, secret="wrong")
        out, err = job.communicate(timeout=120)
    finally:
        strict.stop()
    assert job.returncode == 2 and "Traceback" not in err, err[-2000:]
    assert [line for line in err.splitlines() if line.startswith("error:")] == [err.strip().splitlines()[-1]]
    assert "access refused" in err and "AWS_SECRET_ACCESS_KEY" in err and "wrong" not in err

    gone = Endpoint()
    gone.stop()  # the port is closed now
    job = _ingest(gone, "nobucket", ray_tmp)
    out, err = job.communicate(timeout=120)
    assert job.returncode == 3 and "Traceback" not in err, err[-2000:]
    assert "storage unavailable" in err.strip().splitlines()[-1]


def _shard_counts(fs: pafs.S3FileSystem, bucket: str) -> tuple[int, int]:
    """(per-video frames files, compacted shards) under the ingest's output."""
    try:
        names = [i.base_name for i in fs.get_file_info(pafs.FileSelector(f"{bucket}/tables/frames",
                                                                         allow_not_found=True))]
    except OSError:
        return 0, 0
    return sum(not n.startswith(("part-", ".tmp-")) for n in names), sum(n.startswith("part-") for n in names)


def _compacting_ingest(endpoint: Endpoint, bucket: str, ray_tmp: str) -> subprocess.Popen:
    """The ingest with one shard per video, so that its compaction writes many shards one after another."""
    cmd = [sys.executable, str(REPO / "jobs/prepare_data.py"), "--input", f"s3://{bucket}/ffpp",
           "--output", f"s3://{bucket}/tables", "--frames-per-video", str(K), "--size", str(S),
           "--compressions", "c23", "--shard-mib", "0.0001"]
    return subprocess.Popen(cmd, env={**endpoint.env(), "RAY_TMPDIR": ray_tmp}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


@pytest.mark.parametrize("moment, shards, fault", [
    ("the first shard uploaded", 1, "SIGINT"),
    ("half the shards uploaded", 6, "SIGINT"),
    ("the store paused mid-compaction", 3, "SIGSTOP"),
])
@pytest.mark.slow
def test_an_ingest_interrupted_while_it_compacts_on_s3_loses_no_frame(endpoint, corpus_c23, ray_tmp, clean,
                                                                       monkeypatch, moment, shards, fault):
    """Ctrl-C (or a store that stops answering) while the shards are uploaded: no partial shard is trusted, no
    per-video file is deleted for a shard that was not verified, and the re-run's frames equal a clean run's, with a
    marker that counts them. (Before: a partial shard whose footer listed all its videos lost their frames.)"""
    bucket = f"b{uuid.uuid4().hex[:10]}"
    fs = endpoint.fs()
    _upload(fs, corpus_c23, bucket)
    job = _compacting_ingest(endpoint, bucket, ray_tmp)
    deadline = time.time() + 180
    while time.time() < deadline and job.poll() is None and _shard_counts(fs, bucket)[1] < shards:
        time.sleep(0.01)
    assert job.poll() is None, f"the ingest ended before {moment}: " + job.stderr.read()[-2000:]
    if fault == "SIGINT":
        job.send_signal(signal.SIGINT)
    else:
        endpoint.signal(signal.SIGSTOP)
    out, err = job.communicate(timeout=240)
    if fault == "SIGINT":
        assert job.returncode == 130 and "Traceback" not in err, err[-3000:]
        assert err.strip().splitlines()[-1] == "interrupted; re-run the same command to resume"
    else:
        _one_line_storage_error(job.returncode, err)
        endpoint.signal(signal.SIGCONT)
    assert fs.get_file_info(f"{bucket}/tables/{SUCCESS_FILE}").type == pafs.FileType.NotFound

    again = _compacting_ingest(endpoint, bucket, ray_tmp)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err[-3000:]
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint.url)
    assert _digest(f"s3://{bucket}/tables") == _digest(clean.output)
    keys = views.read_table(f"s3://{bucket}/tables", "frames", ["key"])["key"].to_pylist()
    assert len(keys) == len(set(keys)) == clean.frames
    marker = json.loads(storage.read_bytes(f"s3://{bucket}/tables/{SUCCESS_FILE}"))
    assert marker["verdict"] == "succeeded" and marker["frames"] == clean.frames
    assert _shard_counts(fs, bucket) == (0, len(views.read_table(clean.output, "frames", ["video", "method"])
                                               .group_by(["video", "method"]).aggregate([])))


def test_an_interrupted_upload_leaves_nothing_under_its_name(s3_bucket):
    """A table file whose writer is interrupted midway (Ctrl-C between row groups): no object takes its name, and
    no temporary one is left (pyarrow completes an interrupted upload when its stream closes)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    uri = f"{s3_bucket}/t/part-00000.parquet"

    def parts():
        yield pa.table({"key": ["a/1"]})
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        with storage.atomic_path(uri) as (fs, tmp), pq.ParquetWriter(tmp, pa.schema([("key", pa.string())]),
                                                                     filesystem=fs) as writer:
            for part in parts():
                writer.write_table(part)
    assert storage.list_files(f"{s3_bucket}/t", temporary=True) == []
    storage.write_bytes(uri, b"whole")
    assert storage.read_bytes(uri) == b"whole" and storage.list_files(f"{s3_bucket}/t", temporary=True) == [
        (uri, 5)]
