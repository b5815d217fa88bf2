"""Where users outgrow one machine: a simulated multi-node cluster (``ray.cluster_utils.Cluster``: a head and
two worker nodes in this machine, the workers declaring one GPU each — a resource, not a device; everything
runs on CPU). Shapley actors land one per GPU across the nodes, Train workers on different nodes, and a node
removed mid-Shapley-job or mid-ingest costs nothing: each job completes with every row once.

The session's local Ray is shut down for this module and started again after it.
"""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import pytest

from fst_ray import storage, tables
from fst_ray.data import views
from fst_ray.data.config import PrepareConfig
from fst_ray.data.ingest import run_ingest
from fst_ray.models import create_model
from fst_ray.shapley import pool as pool_module
from fst_ray.shapley.config import ShapleyConfig
from fst_ray.shapley.run import run_shapley
from fst_ray.train.toy import write_toy_frames

from conftest import small_corpus, start_local_ray, toy_shapley_inputs

STORE = 150 * 2**20  # object store per node


@pytest.fixture(scope="module")
def no_session_ray(s3_server):
    """This module runs its own clusters; the session's local Ray is stopped first and restarted after."""
    import ray

    ray.shutdown()
    yield
    ray.shutdown()
    start_local_ray()


@pytest.fixture
def cluster(no_session_ray):
    """A head (1 CPU) and two worker nodes (1 CPU and 1 GPU each), joined by this driver."""
    import ray
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": STORE,
                                                      "include_dashboard": False})
    workers = [c.add_node(num_cpus=1, num_gpus=1, object_store_memory=STORE) for _ in range(2)]
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False)
    yield c, workers
    ray.shutdown()
    c.shutdown()


def _remove_when(c, node, ready, done: threading.Event, log: dict) -> threading.Thread:
    """Remove ``node`` from the cluster as soon as ``ready()`` holds; records when, and what had been done."""
    def run():
        while not done.is_set() and not ready():
            time.sleep(0.05)
        if not done.is_set():
            log["progress"] = ready()
            c.remove_node(node)
            log["removed_at"] = time.time()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("cluster")
    return (root, *toy_shapley_inputs(root, image_size=24))


def _maps(output: str) -> dict:
    t = tables.read(output, "shapley", ["key", "model_sha256", "phi"])
    rows = list(zip(t["key"].to_pylist(), t["model_sha256"].to_pylist()))
    assert len(rows) == len(set(rows)), "a map written twice"
    return dict(zip(rows, t["phi"].to_pylist()))


@pytest.mark.slow
def test_shapley_actors_one_per_gpu_across_nodes_and_a_lost_node_costs_nothing(cluster, workspace, tmp_path,
                                                                               monkeypatch):
    import ray

    c, workers = cluster
    root, data, models = workspace
    pool = pool_module.ShapleyPool(create_model("det", "test_resnet", 2))
    nodes = ray.get([a.__ray_call__.remote(lambda self: ray.get_runtime_context().get_node_id())
                     for a in pool.actors])
    pool.shutdown()
    assert sorted(nodes) == sorted(w.node_id for w in workers)  # one actor per GPU, on each GPU node

    base = dict(input=data, models=models, split=None, grid=4, budget=400, estimator="leverage", max_images=12,
                chunk_size=16, flush_images=1, curve_steps=0)
    run_shapley(ShapleyConfig(output=str(tmp_path / "full"), **base), progress=False)
    full = _maps(str(tmp_path / "full"))
    monkeypatch.setattr(pool_module, "REPLACE_TIMEOUT_S", 5.0)  # no room for a GPU actor once its node is gone
    out, done, log = tmp_path / "lost", threading.Event(), {}
    files = lambda: len(list(out.glob("part-*.parquet")))  # noqa: E731
    thread = _remove_when(c, workers[1], lambda: files() >= 2 and files(), done, log)
    summary = run_shapley(ShapleyConfig(output=str(out), **base), progress=False)
    done.set()
    thread.join()
    assert "removed_at" in log and log["progress"] < 12, "the job ended before the node was removed"
    assert summary.images == 12
    assert _maps(str(out)) == full  # every map, once, bit-identical to the run that lost no node


@pytest.mark.slow
def test_train_workers_run_on_different_nodes(cluster, tmp_path):
    """Two Train workers of one CPU each on nodes of one CPU each: each on its own node (the run reports the
    nodes its workers ran on), the third CPU feeding them data."""
    from fst_ray.train.config import TrainConfig
    from fst_ray.train.trainer import train_encoders

    data = str(tmp_path / "toy")
    write_toy_frames(data, identities=6, frames=4, size=32)
    summary = train_encoders(TrainConfig(input=data, output=str(tmp_path / "runs"), arch="test_resnet", roles=["det"],
                                         epochs=1, workers=2, cpus_per_worker=1, image_size=32, batch_size=8,
                                         holdout_fraction=0.25))
    assert summary.last_epoch["nodes"] == 2
    assert all(storage.exists(u) for u in summary.models.values())


def _digest(output: str) -> dict[str, str]:
    t = views.read_table(output, "frames", ["key", "image", "mask"]).to_pydict()
    return {k: hashlib.sha1(i + (m or b"")).hexdigest() for k, i, m in zip(t["key"], t["image"], t["mask"])}


@pytest.mark.slow
def test_a_node_removed_mid_ingest_loses_nothing(cluster, tmp_path):
    c, workers = cluster
    prepare = dict(input=small_corpus(str(tmp_path / "ffpp"), seed=2), frames_per_video=4, size=48, groups_per_task=1, compact=False)
    clean = run_ingest(PrepareConfig(output=str(tmp_path / "clean"), **prepare))
    out, done, log = tmp_path / "lost", threading.Event(), {}
    files = lambda: len([f for f in Path(out, "frames").glob("*.parquet") if not f.name.startswith(".tmp-")])  # noqa
    thread = _remove_when(c, workers[0], lambda: files() >= 3 and files(), done, log)
    summary = run_ingest(PrepareConfig(output=str(out), **prepare))
    done.set()
    thread.join()
    assert "removed_at" in log and log["progress"] < clean.videos, "the ingest ended before the node was removed"
    assert (summary.videos_ok, summary.errors, summary.frames) == (clean.videos, 0, clean.frames)
    assert _digest(str(out)) == _digest(clean.output)
