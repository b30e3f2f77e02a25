"""A block on a simulated 2-node Ray cluster (ray.cluster_utils.Cluster): spread and node loss."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import block_args, completed, run_block, write_synthetic_mpm

pytestmark = pytest.mark.slow

TINY = ["training.eval_every=1000", "model.hidden_dim=16", "model.n_layers=1"]


@pytest.fixture
def cluster():
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 2})
    worker = c.add_node(num_cpus=2)
    c.wait_for_nodes()
    yield c, worker
    c.shutdown()


def _start(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "inr_tune.block", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )


def _args(
    dataset: Path, out: Path, address: str, steps: int, minutes: float | None = None
) -> list[str]:
    sets = [*TINY, f"data.path={dataset}", f"training.total_steps={steps}"]
    if minutes:
        sets.append(f"training.max_minutes={minutes}")
    return block_args("--address", address, "--out", str(out), sets=sets)


def test_block_spreads_over_two_nodes(s3, cluster, tmp_path: Path) -> None:
    """Results go to an object store (a local S3 server), as on hosts without a shared disk;
    the nodes get the credentials from their own environment (``s3`` starts first)."""
    import boto3

    c, _ = cluster
    dataset = write_synthetic_mpm(tmp_path / "d.zarr", n_frames=40, n_points=50)
    out = tmp_path / "run"
    proc = _start(
        [
            *_args(dataset, out, c.address, steps=400),
            "--set",
            "training.max_minutes=null",
            "--storage",
            "s3://results/cluster",
        ]
    )
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-2000:]
    assert "on 4 CPUs" in stdout
    metrics = [e["metrics"] for e in completed(out)]  # with the Ray node ids
    nodes = {m["ray_node_id"] for m in metrics}
    assert len(nodes) == 2, nodes
    for name in ("journal.jsonl", "analysis.md", "memory.md", "ucb_scores.txt", "tree.png"):
        assert (out / name).is_file()
    assert (out / "analysis.md").read_text().count("## Iter ") == 4
    listing = boto3.client("s3").list_objects_v2(Bucket="results", Prefix="cluster/run/")
    keys = {o["Key"].removeprefix("cluster/run/") for o in listing["Contents"]}
    for i in range(1, 5):
        for name in ("config.yaml", "metrics.json", "field.png"):
            assert f"trials/iter_{i:03d}/{name}" in keys, (i, name)
    assert {"journal.jsonl", "analysis.md", "tree.png"} <= keys


def test_node_lost_mid_trial_is_a_failed_node(cluster, tmp_path: Path) -> None:
    c, worker = cluster
    dataset = write_synthetic_mpm(tmp_path / "d.zarr", n_frames=40, n_points=50)
    out = tmp_path / "run"
    proc = _start(_args(dataset, out, c.address, steps=10_000_000, minutes=1.0))
    deadline = time.time() + 300
    while time.time() < deadline:  # wait until the 4 trials are training
        if (
            len(list((out / "trials").glob("iter_*/config.yaml"))) >= 4
            if (out / "trials").exists()
            else False
        ):
            break
        time.sleep(0.5)
    time.sleep(3)
    c.remove_node(worker)
    proc.communicate(timeout=600)
    assert proc.returncode == 0, "the block must finish after losing a node"
    done = completed(out)
    failed = [e for e in done if e["status"] == "failed"]
    assert failed, f"no trial failed after its node was removed: {[e['status'] for e in done]}"
    assert all(e["error"] for e in failed)
    assert not any(e["status"] == "ok" and not e["metrics"].get("final_r2") for e in done)


@pytest.fixture
def one_gpu_node():
    """A node declaring one GPU to Ray. Ray schedules fractional GPUs on it exactly as on
    a real one (it hands each trial CUDA_VISIBLE_DEVICES=0); the trials train on the CPU,
    since torch finds no CUDA device here."""
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 4, "num_gpus": 1})
    c.wait_for_nodes()
    yield c
    c.shutdown()


def test_four_trials_share_one_gpu(one_gpu_node, tmp_path: Path) -> None:
    """4 concurrent trials on a 1-GPU cluster: each holds a quarter of the GPU and a CPU,
    and all four run at the same time (with a whole GPU each they would run one by one)."""
    dataset = write_synthetic_mpm(tmp_path / "d.zarr", n_frames=40, n_points=50)
    out = tmp_path / "run"
    r = run_block(
        *_args(dataset, out, one_gpu_node.address, steps=3000),
        "--set",
        "training.max_minutes=null",
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "4 at a time on 4 CPUs and 1 GPU(s) (1 CPU + 0.25 GPU each)" in r.stdout
    starts = [line for line in r.stdout.splitlines() if line.startswith("start")]
    assert len(starts) == 4 and all(re.search(r"expects \d+\.\d GiB$", s) for s in starts)
    done = completed(out)
    assert len(done) == 4 and all(e["status"] == "ok" for e in done), done
    for e in done:
        assert e["metrics"]["ray_resources"] == {"CPU": 1.0, "GPU": 0.25}
    # trial i trained from (completion time − its wall time) to its completion time
    spans = [(e["time"] - e["metrics"]["wall_time"], e["time"]) for e in done]
    assert max(s for s, _ in spans) < min(t for _, t in spans), spans


HEAD_WITH_TOKEN = """
import sys
from ray.cluster_utils import Cluster
c = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 1})
print(c.address, flush=True)
sys.stdin.read()  # until the test closes stdin
c.shutdown()
"""


def test_a_driver_with_the_wrong_token_is_refused_in_one_line(tmp_path: Path) -> None:
    """A token-authenticated cluster (RAY_AUTH_MODE=token on the head, in its own process:
    Ray reads the auth mode once per process) and a driver whose RAY_AUTH_TOKEN differs:
    exit 2, one line, no run directory."""
    env = dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN="the-cluster-token-0123456789")
    head = subprocess.Popen(
        [sys.executable, "-c", HEAD_WITH_TOKEN],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        address = head.stdout.readline().strip()
        assert address, "the head did not start"
        dataset = write_synthetic_mpm(tmp_path / "d.zarr", n_frames=40, n_points=50)
        out = tmp_path / "run"
        r = run_block(
            *_args(dataset, out, address, steps=10),
            env={"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "not-the-cluster-token"},
            timeout=300,
        )
    finally:
        head.communicate(timeout=120)
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.strip().splitlines() == [
        f"error: the Ray cluster at {address} refused this driver's token: set "
        "RAY_AUTH_MODE=token and the cluster's RAY_AUTH_TOKEN (see docker/README.md)"
    ]
    assert not out.exists()


def test_block_without_address_ignores_a_cluster_on_the_machine(cluster, tmp_path: Path) -> None:
    """A cluster started on this machine for something else (its address file is where
    ray.init() auto-detection looks) must not be joined: without --address the block
    starts its own local instance. It used to crash in ray.init with a ValueError."""
    dataset = write_synthetic_mpm(tmp_path / "d.zarr", n_frames=40, n_points=50)
    sets = [*TINY, f"data.path={dataset}", "training.total_steps=48"]
    out = tmp_path / "run"
    r = run_block(*block_args("--out", str(out), sets=sets, iterations=2, parallel=2))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    cpus = os.cpu_count() or 1
    assert f"on {cpus} CPU" in r.stdout  # the local instance, not the 4-CPU cluster
    assert len(completed(out)) == 2
