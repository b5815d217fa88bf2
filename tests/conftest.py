"""Session fixtures: a local S3 endpoint (moto on 127.0.0.1) and a local Ray, both real, both started here.

The S3 server starts before Ray so that Ray's workers inherit the AWS environment pointing at it. Under
pytest-xdist (``make test`` runs two workers) each worker's Rays, and those of the jobs it starts, keep to a temp
folder of their own: a plain ``ray.init()`` joins the cluster named in its temp folder's ``ray_current_cluster``
(which ``ray.cluster_utils.Cluster`` writes), so a shared folder would let one worker's job join another's cluster.
"""

from __future__ import annotations

import os
import socket
import uuid

import pytest

# Ray Train's cluster services that no test needs, off for every Ray the tests start (inherited by the jobs they
# run): the spot-preemption watcher and state reconciliation actors, Train's metrics; and its controller polls its
# workers every 0.5 s instead of 2 s, so that a short test run ends when its workers do.
for _knob, _value in {"RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0", "RAY_TRAIN_ENABLE_STATE_ACTOR_RECONCILIATION": "0",
                      "RAY_TRAIN_METRICS_ENABLED": "0", "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5"}.items():
    os.environ.setdefault(_knob, _value)

if os.environ.get("PYTEST_XDIST_WORKER"):  # before Ray is imported: short, as Ray's socket paths must be
    os.environ["RAY_TMPDIR"] = f"/tmp/fstray-{os.environ['PYTEST_XDIST_WORKER']}"
    os.makedirs(os.environ["RAY_TMPDIR"], exist_ok=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server():
    """A moto S3 server on 127.0.0.1; sets the AWS_* environment for this process and its children."""
    import logging

    from moto.server import ThreadedMotoServer

    # its request log (werkzeug, INFO) is the test endpoint's, not the product's output the tests read
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield env["AWS_ENDPOINT_URL"]
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def s3_bucket(s3_server) -> str:
    """A fresh, empty bucket; returns its ``s3://`` URI."""
    import pyarrow.fs as pafs

    from fst_ray import storage

    name = f"test-{uuid.uuid4().hex[:12]}"
    pafs.S3FileSystem(endpoint_override=s3_server.split("://")[1], scheme="http", region="us-east-1",
                      allow_bucket_creation=True).create_dir(name)
    fs = storage.s3_filesystem()
    assert fs.get_file_info(name).type == pafs.FileType.Directory
    return f"s3://{name}"


def start_local_ray() -> None:
    """The test session's local Ray (2 CPUs, no dashboard), unless one is running."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)


@pytest.fixture(scope="session")
def ray_session(s3_server):
    """A local Ray shared by the whole test session."""
    import ray

    start_local_ray()
    yield ray
    ray.shutdown()


def small_corpus(output: str, seed: int) -> str:
    """A small synthetic FF++ tree (4 identities, Deepfakes and FaceSwap, 8 frames at 64 px) written in this process,
    without Ray; returns ``output``."""
    from fst_ray.synth import corpus
    from fst_ray.synth.config import SynthConfig

    cfg = SynthConfig(output=output, identities=4, frames=8, size=64, methods=["Deepfakes", "FaceSwap"],
                      contact_sheet=False, seed=seed)
    plan = corpus.plan_corpus(cfg)
    corpus.write_metadata(cfg, plan, [corpus.write_group(cfg, plan, s) for s in plan.ids])
    return output


def toy_shapley_inputs(root, image_size: int) -> tuple[str, list[str]]:
    """Toy frames (4 identities x 4 frames at 32 px, raw) under ``root/prepared`` and two untrained model files
    to explain them with, a detector and a source encoder (``test_resnet`` at ``image_size``) under
    ``root/models``."""
    from fst_ray.models import create_model, save_model
    from fst_ray.train.toy import write_toy_frames

    data = str(root / "prepared")
    write_toy_frames(data, identities=4, frames=4, size=32, compressions=("raw",))
    models = []
    for role in ("det", "source"):
        n = 2 if role == "det" else 4
        uri = str(root / "models" / f"{role}.pt")
        save_model(uri, create_model(role, "test_resnet", n), role=role, arch="test_resnet", num_classes=n,
                   classes=None if role == "det" else ["000", "001", "002", "003"],
                   metadata={"image_size": image_size})
        models.append(uri)
    return data, models


ELSEWHERE_MEAN, ELSEWHERE_STD, ELSEWHERE_SIDE = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 40


def train_elsewhere(path, images, labels, outputs: int = 1, arch: str = "test_resnet"):
    """A model as a researcher's own PyTorch loop makes it, saved where fst-ray never was: timm ``arch`` with
    ``outputs`` logits (1: binary cross-entropy on ``labels`` in {0, 1}; more: cross-entropy on class indices),
    ImageNet normalisation, 40 px inputs (``images [N, 3, H, W]`` in 0..1 are resized), 5 SGD steps, its state
    dict written with DDP's ``module.`` prefix to ``path``. Returns the network in eval mode."""
    import timm
    import torch

    from fst_ray import frames

    torch.manual_seed(0)
    net = timm.create_model(arch, pretrained=False, num_classes=outputs)
    x = frames.resize(images, ELSEWHERE_SIDE)
    x = (x - torch.tensor(ELSEWHERE_MEAN).view(1, 3, 1, 1)) / torch.tensor(ELSEWHERE_STD).view(1, 3, 1, 1)
    y = torch.as_tensor(labels)
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    for _ in range(5):
        out = net(x)
        loss = (torch.nn.functional.binary_cross_entropy_with_logits(out[:, 0], y.float()) if outputs == 1
                else torch.nn.functional.cross_entropy(out, y.long()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.save({f"module.{k}": v for k, v in net.state_dict().items()}, path)
    return net.eval()
