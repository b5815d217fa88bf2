"""`ray job submit --working-dir .` end to end, the way a cluster is used: a Ray head started here with
`ray start --head` (dashboard on 127.0.0.1, token authentication on), two real jobs submitted from the repository root
(jobs/make_synthetic.py, then jobs/h2_paired.py on that corpus with a tiny config: ingest, training, Ray
actors, reports, all inside the cluster's job), their status and output checked, then only that head stopped.

Other Ray instances may run on the same machine, so nothing here is machine-wide: the head gets its own
ports and --temp-dir, it is started in its own process group, and stopping it signals that group (then
any process still naming its temp dir), never `ray stop`, which stops every Ray on the machine.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the environment the head (and so the job) runs in
RAY = str(BIN / "ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pids_naming(text: str) -> list[int]:
    """Processes whose command line contains ``text`` (Linux /proc; empty elsewhere)."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if text in proc.joinpath("cmdline").read_bytes().decode(errors="replace"):
                pids.append(int(proc.name))
        except OSError:
            continue
    return [p for p in pids if p != os.getpid()]


def stop_head(pgid: int, temp_dir: str, grace_s: float = 5.0) -> list[int]:
    """SIGTERM the head's process group, then SIGKILL the group and anything still naming its temp dir (Ray
    may give workers process groups of their own); returns the pids still alive after that."""
    def wait_gone(timeout_s: float) -> list[int]:
        deadline = time.monotonic() + timeout_s
        while (left := pids_naming(temp_dir)) and time.monotonic() < deadline:
            time.sleep(0.25)
        return left

    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass
        if sig == signal.SIGKILL:
            for pid in pids_naming(temp_dir):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        if not wait_gone(grace_s):
            return []
    return pids_naming(temp_dir)


def ray_cli(args: list[str], env: dict, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([RAY, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_job_submit_to_a_token_protected_head(tmp_path):
    # Short: Ray's unix socket paths (temp_dir/session_*/sockets/...) must fit in 107 bytes.
    temp_dir = tempfile.mkdtemp(prefix="fstray-", dir="/tmp")
    token = secrets.token_hex(32)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",  # the job's `python` is this environment's
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=token,  # beats ~/.ray/auth_token, which other Ray users on this machine share
        RAY_USAGE_STATS_ENABLED="0",
    )
    dashboard = f"http://127.0.0.1:{free_port()}"
    start = [
        "start", "--head", f"--port={free_port()}", "--num-cpus=2", f"--temp-dir={temp_dir}",
        "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard.rsplit(':', 1)[1]}",
        f"--ray-client-server-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}",
        "--disable-usage-stats",
    ]
    out = tmp_path / "synthetic"
    log = Path(temp_dir) / "ray-start.log"
    with log.open("w") as f:
        head = subprocess.Popen([RAY, *start], cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        assert head.wait(timeout=180) == 0, log.read_text()

        # Token authentication is on: a wrong token is refused before anything runs.
        wrong = ray_cli(["job", "submit", "--address", dashboard, "--", "python", "-c", "pass"],
                        {**env, "RAY_AUTH_TOKEN": secrets.token_hex(32)}, timeout=120)
        assert wrong.returncode != 0
        assert "Invalid authentication token" in wrong.stdout + wrong.stderr

        submit = ray_cli(
            ["job", "submit", "--address", dashboard, "--working-dir", ".", "--",
             "python", "jobs/make_synthetic.py", "--output", str(out), "--identities", "8", "--frames", "4",
             "--size", "32", "--methods", "Deepfakes,FaceSwap"],
            env, timeout=600)
        logs = submit.stdout + submit.stderr
        assert submit.returncode == 0, logs
        job_id = re.search(r"Job '(raysubmit_\w+)' submitted successfully", logs).group(1)
        # The Jobs REST API, authenticated as any HTTP client would be.
        request = urllib.request.Request(f"{dashboard}/api/jobs/{job_id}",
                                         headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=60) as response:
            assert json.load(response)["status"] == "SUCCEEDED", logs

        # What the job wrote: the corpus of 8 originals and their fakes, in every compression.
        for comp in ("raw", "c23", "c40"):
            assert len(list((out / "original_sequences/youtube" / comp / "videos").glob("*.mp4"))) == 8
            assert len(list((out / "manipulated_sequences/Deepfakes" / comp / "videos").glob("*.mp4"))) >= 4
        assert (out / "synthetic.json").is_file()

        # A hypothesis job, unchanged: plain ray.init() inside joins this cluster.
        config = tmp_path / "h2.yaml"
        config.write_text(json.dumps(dict(  # JSON is YAML
            input=str(out), tables=str(tmp_path / "prepared"), work=str(tmp_path / "work"),
            methods=["Deepfakes", "FaceSwap"], archs=["test_resnet"], prepare=dict(frames_per_video=2, size=32),
            train=dict(epochs=1, pretrained=False, workers=1, batch_size=16, image_size=32), detector_epochs=1,
            h2_epochs=1,
            explain=dict(images_per_method=1, grid=2, budget=32, baseline="zero", actors=1), n_boot=200)))
        h2 = ray_cli(["job", "submit", "--address", dashboard, "--working-dir", ".", "--",
                      "python", "jobs/h2_paired.py", "--config", str(config), "--output", str(tmp_path / "h2")],
                     env, timeout=900)
        assert h2.returncode == 0, h2.stdout + h2.stderr
        assert "H2Result" in h2.stdout
        result = json.loads((tmp_path / "h2" / "result.json").read_text())
        assert set(result["auc_paired"]) == {"Deepfakes", "FaceSwap"}
        assert (tmp_path / "h2" / "h2_q_curves.png").stat().st_size > 5000

        # What was uploaded: the sources, not the virtual environment, git history or runs.
        unpacked = Path(temp_dir, "session_latest", "runtime_resources", "working_dir_files")
        packages = [p for p in unpacked.glob("_ray_pkg_*") if p.is_dir()]
        assert len(packages) == 1, packages
        shipped = {p.name for p in packages[0].iterdir()}
        assert {"fst_ray", "jobs", "pyproject.toml"} <= shipped
        assert not shipped & {".venv", ".git", "runs"}, shipped
    finally:
        left = stop_head(head.pid, temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert left == [], f"processes of the test's Ray head still running: {left}"
