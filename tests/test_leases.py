"""One writer per output, and Ctrl-C: leases on local disk and S3 (moto on 127.0.0.1), two jobs started at once on
one output, and jobs interrupted with SIGINT as a terminal's Ctrl-C sends it.

The jobs run as their own driver processes with their own local Ray (RAY_TMPDIR of their own), so that the Ray
processes an interrupted job leaves behind can be counted.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.dataset as pads
import pytest

from fst_ray import lease, storage, tables
from fst_ray.config import UserError
from fst_ray.data import views
from fst_ray.data.records import SUCCESS_FILE

from conftest import small_corpus as write_small_corpus, toy_shapley_inputs

REPO = Path(__file__).resolve().parent.parent
INTERRUPTED = "interrupted; re-run the same command to resume"


def _foreign(output: str, **fields) -> None:
    """A lease of another run, written as that run would have."""
    now = time.time()
    doc = {"owner": "other", "host": socket.gethostname(), "pid": os.getpid(), "job": "other.py", "start": now,
           "heartbeat": now, **fields}
    storage.write_bytes(storage.join(output, lease.LEASE_FILE), json.dumps(doc).encode())


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_lease_refuses_a_live_owner_and_takes_over_a_dead_or_silent_one(where, tmp_path, s3_bucket):
    output = str(tmp_path / "out") if where == "local" else f"{s3_bucket}/out"
    with lease.hold(output, "first"):
        held = lease.read(output)
        assert held["job"] == "first" and held["pid"] == os.getpid()
        with lease.hold(output):  # re-entrant in one process
            pass
        assert lease.read(output) == held
    assert lease.read(output) is None  # released

    _foreign(output)  # alive: this very process, under another owner
    with pytest.raises(lease.Busy, match=r"being written by other\.py \(pid \d+ on "):
        with lease.hold(output):
            pass
    _foreign(output, host="elsewhere", heartbeat=time.time() - 5)  # another host, a fresh heartbeat
    with pytest.raises(lease.Busy):
        with lease.hold(output):
            pass
    for stale in ({"pid": _dead_pid()}, {"host": "elsewhere", "heartbeat": time.time() - 3600}):
        _foreign(output, **stale)  # its process gone; another host's heartbeat an hour old
        with lease.hold(output, "taker"):
            assert lease.read(output)["job"] == "taker"
        assert lease.read(output) is None


def test_the_heartbeat_keeps_a_long_run_alive(tmp_path, monkeypatch):
    monkeypatch.setenv("FST_RAY_LEASE_TTL_S", "0.4")
    output = str(tmp_path / "out")
    with lease.hold(output):
        first = lease.read(output)["heartbeat"]
        time.sleep(1.0)  # more than the time to live: only the heartbeat keeps it fresh
        assert lease.read(output)["heartbeat"] > first
        doc = lease.read(output)
        other = subprocess.run([sys.executable, "-c", "from fst_ray import lease\nwith lease.hold(%r): pass" % output],
                               capture_output=True, text=True, env={**os.environ, "FST_RAY_LEASE_TTL_S": "0.4"})
        assert other.returncode != 0 and "Busy" in other.stderr
        assert lease.read(output)["owner"] == doc["owner"]


def test_an_output_that_cannot_be_written_is_a_users_mistake(tmp_path, s3_server):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="a part of that path is a file"):
        with lease.hold(str(tmp_path / "file" / "out")):
            pass
    with pytest.raises(UserError, match="bucket 'no-such-bucket' does not exist"):
        with lease.hold("s3://no-such-bucket/out"):
            pass


# -- jobs ------------------------------------------------------------------------------------------------------

@pytest.fixture
def ray_tmp():
    path = tempfile.mkdtemp(prefix="fl", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _as_a_terminal_starts_it() -> None:
    """In the child before exec: SIGINT neither ignored nor blocked, as a shell starts a command (both are inherited
    from the process that starts it, and a test process may hold either: a CI run once saw both Ctrl-C tests' jobs
    run to the end and exit 0)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _job(args: list[str], ray_tmp: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], cwd=REPO, env={**os.environ, "RAY_TMPDIR": ray_tmp},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=_as_a_terminal_starts_it)


def _signal_state(pid: int) -> str:
    """The blocked, ignored and caught signal masks of a process (Linux /proc)."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return " ".join(line.replace("\t", "") for line in lines if line.startswith(("SigBlk", "SigIgn", "SigCgt")))


def _ray_processes(ray_tmp: str) -> list[str]:
    """Command lines of the live processes that belong to the Ray whose temp folder is ``ray_tmp``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if ray_tmp in cmdline or f"RAY_TMPDIR={ray_tmp}".encode() in environ:
            found.append(f"{pid} {cmdline[:120]}")
    return found


def _interrupt(job: subprocess.Popen, ray_tmp: str) -> None:
    """Ctrl-C: SIGINT to the job; it ends with one line and exit code 130, and no Ray process outlives it."""
    state = _signal_state(job.pid)
    job.send_signal(signal.SIGINT)
    out, err = job.communicate(timeout=120)
    assert job.returncode == 130, f"{state}\n{err[-3000:]}"
    assert "Traceback" not in err and err.strip().splitlines()[-1] == INTERRUPTED, err[-3000:]
    deadline = time.time() + 5
    while _ray_processes(ray_tmp) and time.time() < deadline:
        time.sleep(0.2)
    assert not _ray_processes(ray_tmp), _ray_processes(ray_tmp)


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    return write_small_corpus(str(tmp_path_factory.mktemp("leases") / "ffpp"), seed=2)


def _ingest_args(data: str, output: str) -> list[str]:
    return ["jobs/prepare_data.py", "--input", data, "--output", output, "--frames-per-video", "4", "--size", "48",
            "--groups-per-task", "1"]


def _frames(output: str) -> dict[str, bytes]:
    t = views.read_table(output, "frames", ["key", "image"]).to_pydict()
    return dict(zip(t["key"], t["image"]))


def _raw_rows(folder: str, schema) -> int:
    """Rows in the Parquet files of a folder, duplicates included (what a reader that trusted them would see)."""
    fs, path = storage.resolve(folder)
    return pads.dataset(path, filesystem=fs, format="parquet", schema=schema).count_rows()


@pytest.mark.slow
def test_two_ingests_at_once_one_runs_the_other_is_refused(small_corpus, tmp_path, ray_tmp):
    output = str(tmp_path / "prep")
    jobs = [_job(_ingest_args(small_corpus, output), ray_tmp) for _ in range(2)]
    ends = [j.communicate(timeout=300) + (j.returncode,) for j in jobs]
    assert sorted(rc for *_, rc in ends) == [0, 2], [err[-2000:] for _, err, _ in ends]
    _, err, _ = next(e for e in ends if e[2] == 2)
    assert err.strip().splitlines() == [f"error: {output} is being written by prepare_data.py "
                                        + err.split("prepare_data.py ", 1)[1].strip()], err
    assert "Traceback" not in err and "wait for it to end" in err
    marker = json.loads(Path(output, SUCCESS_FILE).read_text())
    keys = list(_frames(output))
    assert marker["verdict"] == "succeeded" and marker["frames"] == len(keys) == len(set(keys)) > 0
    assert _raw_rows(str(Path(output, "frames")), views.tables.TABLES["frames"]) == len(keys)
    assert not Path(output, lease.LEASE_FILE).exists()


@pytest.mark.slow
def test_an_ingest_interrupted_by_ctrl_c_resumes_to_the_uninterrupted_result(small_corpus, tmp_path, ray_tmp,
                                                                              ray_session):
    from jobs import prepare_data

    clean, resumed = str(tmp_path / "clean"), str(tmp_path / "resumed")
    assert prepare_data.main(_ingest_args(small_corpus, clean)[1:]) == 0  # the reference, run here
    job = _job(_ingest_args(small_corpus, resumed), ray_tmp)
    deadline = time.time() + 120
    while not list(Path(resumed, "frames").glob("*.parquet")) and time.time() < deadline and job.poll() is None:
        time.sleep(0.05)  # the first videos written: Ctrl-C mid-pass
    assert job.poll() is None, job.stderr.read()[-2000:]
    _interrupt(job, ray_tmp)
    assert not Path(resumed, SUCCESS_FILE).exists()
    again = _job(_ingest_args(small_corpus, resumed), ray_tmp)
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err[-2000:]
    assert _frames(resumed) == _frames(clean)
    assert json.loads(Path(resumed, SUCCESS_FILE).read_text())["frames"] == len(_frames(clean))


@pytest.fixture(scope="module")
def toy_models(tmp_path_factory):
    data, models = toy_shapley_inputs(tmp_path_factory.mktemp("leases_shapley"), image_size=32)
    return data, ",".join(models)


def _shapley_args(data: str, models: str, output: str) -> list[str]:
    return ["jobs/shapley.py", "--input", data, "--models", models, "--output", output, "--split", "test",
            "--grid", "4", "--budget", "400", "--estimator", "permutation", "--actors", "1", "--flush-images", "1",
            "--curve-steps", "0"]


def _maps(output: str) -> dict[tuple[str, str], list[float]]:
    t = tables.read(output, "shapley", ["key", "model_sha256", "phi"]).to_pydict()
    return {(k, m): p for k, m, p in zip(t["key"], t["model_sha256"], t["phi"])}


@pytest.mark.slow
def test_two_shapley_jobs_at_once_never_write_a_map_twice(toy_models, tmp_path, ray_tmp):
    data, models = toy_models
    output = str(tmp_path / "maps")
    jobs = [_job(_shapley_args(data, models, output), ray_tmp) for _ in range(2)]
    ends = [j.communicate(timeout=300) + (j.returncode,) for j in jobs]
    assert sorted(rc for *_, rc in ends) == [0, 2], [err[-2000:] for _, err, _ in ends]
    refused = next(err for _, err, rc in ends if rc == 2)
    assert len(refused.strip().splitlines()) == 1 and "is being written by shapley.py" in refused
    maps = _maps(output)
    assert maps and _raw_rows(output, tables.SHAPLEY) == len(maps)


@pytest.mark.slow
def test_a_shapley_job_interrupted_by_ctrl_c_resumes_to_the_uninterrupted_result(toy_models, tmp_path, ray_tmp,
                                                                                  ray_session):
    from jobs import shapley

    data, models = toy_models
    clean, resumed = str(tmp_path / "clean"), str(tmp_path / "resumed")
    assert shapley.main(_shapley_args(data, models, clean)[1:]) == 0  # the reference, run here
    job = _job(_shapley_args(data, models, resumed), ray_tmp)
    deadline = time.time() + 120
    while not list(Path(resumed).glob("part-*.parquet")) and time.time() < deadline and job.poll() is None:
        time.sleep(0.05)  # the first maps written: Ctrl-C while the actors work
    assert job.poll() is None, job.stderr.read()[-2000:]
    _interrupt(job, ray_tmp)
    interrupted = len(_maps(resumed))
    again = _job(_shapley_args(data, models, resumed), ray_tmp)
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err[-2000:]
    assert 0 < interrupted < len(_maps(clean))
    assert _maps(resumed) == _maps(clean) and _raw_rows(resumed, tables.SHAPLEY) == len(_maps(clean))
