"""The block runner: searcher contract, a real block on Ray, SIGKILL + --resume, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from inr_tune.config_files import load_config
from inr_tune.journal import Journal, read_events
from inr_tune.runner.searcher import UCBTreeSearcher
from inr_tune.search.session import FINISHED, BlockSession, replay_tree
from tests.helpers import TINY, block_args, completed, rule_session, run_block, write_synthetic_mpm


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_mpm(tmp_path_factory.mktemp("data") / "d.zarr", n_frames=40, n_points=50)


def _session(tmp_path: Path, n_iter: int = 6, parallel: int = 2) -> BlockSession:
    root = load_config(None, ["data.n_frames=24", *TINY])
    return rule_session(tmp_path, root, n_iter=n_iter, parallel=parallel)


def test_searcher_contract_without_a_cluster(tmp_path: Path) -> None:
    """Ray's contract, called directly: batches, None while a batch runs, errors, NaN, FINISHED."""
    session = _session(tmp_path)
    searcher = UCBTreeSearcher(session, lambda node: {"node_id": node.id, "cfg": node.config})
    a, b = searcher.suggest("t1"), searcher.suggest("t2")
    assert a["node_id"] == 1 and b["node_id"] == 2
    assert searcher.suggest("t3") is None  # batch of 2 still running
    searcher.on_trial_complete(
        "t1", {"metrics_json": json.dumps({"status": "ok", "final_r2": 0.9})}
    )
    assert searcher.suggest("t3") is None
    searcher.on_trial_complete("t2", None, error=True)  # the worker died
    assert session.tree[2].status == "failed" and "errored" in session.tree[2].error
    c, d = searcher.suggest("t3"), searcher.suggest("t4")
    assert {c["node_id"], d["node_id"]} == {3, 4}
    searcher.on_trial_complete(
        "t3", {"metrics_json": json.dumps({"status": "ok", "final_r2": float("nan")})}
    )
    assert session.tree[3].status == "failed" and "no finite final_r2" in session.tree[3].error
    searcher.on_trial_complete(
        "t4", {"final_r2": 0.5, "step": 10}
    )  # stopped before its final report
    assert session.tree[4].status == "early_stopped"
    path = tmp_path / "searcher.pkl"
    searcher.suggest("t5")
    searcher.save(str(path))
    fresh = UCBTreeSearcher(session, lambda node: {})
    fresh.restore(str(path))
    assert fresh.trials == {"t5": 5}
    searcher.suggest("t6")
    for tid in ("t5", "t6"):
        searcher.on_trial_complete(
            tid, {"metrics_json": json.dumps({"status": "ok", "final_r2": 0.95})}
        )
    assert searcher.suggest("t7") == FINISHED or searcher.suggest("t7") == "FINISHED"
    assert session.done
    # the journal alone rebuilds the same tree
    again = replay_tree(Journal(tmp_path / "journal.jsonl").events)
    assert [n.to_dict() for n in again.nodes] == [n.to_dict() for n in session.tree.nodes]


def _sets(dataset: Path) -> list[str]:
    return [a for s in [*TINY, f"data.path={dataset}"] for a in ("--set", s)]


def test_bad_input_exit_2(tmp_path: Path, dataset: Path) -> None:
    r = run_block("--experiment", "nope", "--out", str(tmp_path / "r"))
    assert (
        r.returncode == 2
        and "experiment 'nope' not found" in r.stderr
        and "Traceback" not in r.stderr
    )
    r = run_block("--frames", "400", "--field", "F", *_sets(dataset), "--out", str(tmp_path / "r"))
    assert r.returncode == 2 and "needs 400 frames" in r.stderr
    r = run_block("--resume", "--out", str(tmp_path / "none"))
    assert r.returncode == 2 and "nothing to resume" in r.stderr
    r = run_block("--set", "training.lrr=1", "--out", str(tmp_path / "r"))
    assert r.returncode == 2 and "unknown key 'lrr'" in r.stderr
    r = run_block(
        "--frames",
        "24",
        *_sets(dataset),
        "--storage",
        "nosuch://bucket/runs",
        "--out",
        str(tmp_path / "r"),
    )
    assert r.returncode == 2 and "--storage nosuch://bucket/runs: Protocol not known" in r.stderr
    r = run_block(
        "--frames", "24", *_sets(dataset), "--address", "127.0.0.1:1", "--out", str(tmp_path / "r")
    )
    assert r.returncode == 2 and "cannot join the Ray cluster at 127.0.0.1:1: " in r.stderr
    assert not (tmp_path / "r" / "journal.jsonl").exists()
    r = run_block(
        "--frames", "24", *_sets(dataset), "--min-ratio", "1e9", "--out", str(tmp_path / "b")
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "no config of the search space reaches the size budget min_ratio 1e9×" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "b").exists()
    r = run_block("--min-ratio", "-3", "--out", str(tmp_path / "b"))
    assert r.returncode == 2 and "search.min_ratio=-3.0 is out of range" in r.stderr


def _tree_signature(run: Path) -> list[tuple]:
    tree = replay_tree(read_events(run / "journal.jsonl"))
    return [
        (
            n.id,
            n.parent,
            json.dumps(n.mutation, sort_keys=True),
            n.strategy,
            n.status,
            round(n.r2, 9) if n.r2 is not None else None,
        )
        for n in tree.nodes
    ]


@pytest.mark.slow
def test_block_end_to_end_and_resume_after_sigkill(tmp_path: Path, dataset: Path) -> None:
    common = block_args("--seed", "3", *_sets(dataset), iterations=6, parallel=2)
    full = tmp_path / "full"
    r = run_block(*common, "--out", str(full))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "best config: node" in r.stdout and "tensorboard --logdir" in r.stdout
    for name in (
        "journal.jsonl",
        "analysis.md",
        "memory.md",
        "ucb_scores.txt",
        "tree.png",
        "options.json",
        "pareto.png",
        "baselines.csv",
    ):
        assert (full / name).is_file(), name
    assert "Pareto front" in r.stdout and "block 1: best INR at" in r.stdout
    for e in completed(full):
        m = e["metrics"]
        if e["status"] == "ok":
            assert m["compression_ratio"] >= 1 and m["holdout_r2"] is not None
            assert "baseline_r2" in m and "nines_over_baseline" in m
    analysis = (full / "analysis.md").read_text()
    assert (
        analysis.count("## Iter ") == 6
        and "Verdict:" in analysis
        and "## Block 1 summary" in analysis
    )
    assert len(list((full / "configs").glob("iter_*.yaml"))) == 6
    m = json.loads((full / "trials" / "iter_003" / "metrics.json").read_text())
    assert m["content_hash"] and m["version"] and m["status"] == "ok"
    assert (
        full / "trials" / "iter_003" / "b1_iter_003"
    ).is_dir()  # TensorBoard run named by block and iter
    assert len((full / "memory.md").read_text().splitlines()) <= 500
    _check_tensorboard(full)
    # the 2 workers of the first batch serve the later batches: torch is imported twice
    imports = [
        json.loads(p.read_text())["overhead_s"]["imports"]
        for p in sorted((full / "trials").glob("iter_*/metrics.json"))
    ]
    assert len(imports) == 6 and sum(s > 0.5 for s in imports) == 2, imports

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "inr_tune.block", *common, "--out", str(killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 300
    while time.time() < deadline:
        journal = killed / "journal.jsonl"
        if journal.exists() and journal.read_text().count('"node_completed"') >= 3:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = {e["node_id"] for e in completed(killed)}
    assert 3 <= len(done_before) < 6
    r = run_block("--resume", "--out", str(killed))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "resuming" in r.stdout
    completions = [e["node_id"] for e in completed(killed)]
    assert sorted(completions) == sorted(set(completions)), "a finished trial was run twice"
    assert _tree_signature(killed) == _tree_signature(full)


@pytest.mark.slow
def test_block_with_claude_survives_bad_answers_and_keeps_the_key_secret(
    tmp_path: Path, dataset: Path
) -> None:
    """The real SDK against a local Messages server: malformed JSON, overload, bad proposals."""
    from tests.messages_server import MessagesServer, malformed, overloaded, tool_use

    secret = "sk-ant-test-SECRET-0123456789"
    bad = {
        "observations": [],
        "acknowledgement": "",
        "proposals": [
            {
                "parent": None,
                "param": "dropout",
                "value": 0.5,
                "strategy": "explore",
                "hypothesis": "dropout helps",
                "expect": "improve",
            }
        ],
    }
    with MessagesServer(default=lambda body: tool_use("submit_batch", bad)) as server:
        server.push(malformed(), overloaded())
        (tmp_path / "run").mkdir()
        (tmp_path / "run" / "user_input.md").write_text(
            "Focus on omega.\nset training.optimizer=adam\n"
        )
        r = run_block(
            *block_args(
                "--proposer",
                "llm",
                *_sets(dataset),
                "--out",
                str(tmp_path / "run"),
                sets=["search.llm_max_retries=0", "search.llm_timeout_s=10"],
                parallel=2,
            ),
            env={"ANTHROPIC_API_KEY": secret, "ANTHROPIC_BASE_URL": server.url},
        )
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(server.requests) >= 2
    run = tmp_path / "run"
    journal = read_events(run / "journal.jsonl")
    assert sum(e["event"] == "node_completed" for e in journal) == 4
    calls = [e for e in journal if e["event"] == "llm_call"]
    assert calls and {"malformed", "api_error"} & {c["outcome"] for c in calls}
    assert any(e["event"] == "llm_fallback" for e in journal)
    assert any(
        e["event"] == "user_input" and e["pins"] == {"training.optimizer": "adam"} for e in journal
    )
    assert "Acknowledged: pinned training.optimizer=adam" in (run / "analysis.md").read_text()
    assert list((run / "llm").glob("call_*.json"))
    for f in run.rglob("*"):
        if f.is_file() and f.stat().st_size < 50_000_000:
            assert secret.encode() not in f.read_bytes(), f"API key leaked into {f}"


def _check_tensorboard(run: Path) -> None:
    """Every trial: scalars, the field panel, and an HParams entry with config and final metrics."""
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
    from tensorboard.plugins.hparams import plugin_data_pb2

    mux = EventMultiplexer()
    mux.AddRunsFromDirectory(str(run / "trials"))
    mux.Reload()
    runs = mux.Runs()
    names = {Path(r).name for r in runs}
    assert {f"b1_iter_{i:03d}" for i in range(1, 7)} <= names, names
    hparams_seen = 0
    for name, tags in runs.items():
        if "train/loss" in tags.get("scalars", []):
            assert "field_panel" in mux.GetAccumulator(name).Tags()["images"]
        content = mux.PluginRunToTagToContent("hparams").get(name, {})
        if "_hparams_/session_start_info" in content:
            info = plugin_data_pb2.HParamsPluginData.FromString(
                content["_hparams_/session_start_info"]
            )
            hp = info.session_start_info.hparams
            assert {
                "training.lr",
                "model.omega",
                "model.hidden_dim",
                "status",
                "node",
                "block",
            } <= set(hp)
            hparams_seen += 1
    assert hparams_seen >= 6
    scalars = {t for name in runs for t in mux.GetAccumulator(name).Tags()["scalars"]}
    assert {"hp/final_r2", "hp/kinograph_R2", "hp/kinograph_SSIM", "hp/training_time"} <= scalars


@pytest.mark.parametrize(
    ("cpus", "gpus", "parallel", "gpu_share"),
    [
        (4, 0, 4, None),
        (4, 1, 4, 0.25),
        (4, 2, 4, 0.5),
        (4, 3, 4, 0.5),
        (8, 4, 4, 1.0),
        (8, 8, 4, 1.0),
    ],
)
def test_trial_resources(cpus: int, gpus: int, parallel: int, gpu_share: float | None) -> None:
    from inr_tune.runner.cluster import trial_resources

    res = trial_resources(cpus, gpus, parallel)
    assert res["cpu"] == cpus / parallel
    assert res.get("gpu") == gpu_share
    if gpus:  # Ray packs fractions per GPU: `parallel` trials must fit whole on the GPUs
        assert gpus * int(1 / res["gpu"] + 1e-9) >= parallel


def test_gpu_memory_check_refuses_what_cannot_fit(dataset: Path) -> None:
    from inr_tune.data.store import open_dataset
    from inr_tune.runner.cluster import memory_check

    ds = open_dataset(dataset)
    small = load_config(None, ["data.n_frames=24"])
    huge = load_config(
        None, ["data.n_frames=24", "model.hidden_dim=8192", "training.batch_size=4096"]
    )
    check = memory_check(1, 4, ds, total_bytes=16 * 2**30)
    assert check(small) is None
    msg = check(huge)
    assert msg and "4 concurrent trials of" in msg and "do not fit a 16 GiB GPU" in msg
    assert memory_check(0, 4, ds, None)(huge) is None  # CPU runs: nothing to refuse
    assert memory_check(1, 4, ds, None)(huge) is None  # GPU memory unknown: nothing refused


def _sixteen_gib() -> int:
    return 16 * 2**30


@pytest.mark.slow
def test_gpu_memory_is_read_on_the_gpu_nodes() -> None:
    """The probe runs on each GPU node with a tiny GPU share (real Ray, one node declaring
    a GPU); here torch sees no CUDA device, so the real probe learns nothing."""
    import ray

    from inr_tune.runner.cluster import cluster_gpu_memory

    ray.init(num_cpus=1, num_gpus=1, include_dashboard=False, log_to_driver=False)
    try:
        assert cluster_gpu_memory(probe=_sixteen_gib) == 16 * 2**30
        assert cluster_gpu_memory(timeout_s=120) is None
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_asha_early_stopping_block(tmp_path: Path, dataset: Path) -> None:
    sets = [*TINY, "training.total_steps=640", "training.eval_every=40", f"data.path={dataset}"]
    r = run_block(*block_args("--early-stop", "asha", "--out", str(tmp_path / "run"), sets=sets))
    assert r.returncode == 0, r.stderr[-2000:]
    done = completed(tmp_path / "run")
    assert len(done) == 4 and all(e["status"] in ("ok", "early_stopped") for e in done)
    for e in done:
        if e["status"] == "early_stopped":
            m = e["metrics"]
            assert m["final_r2"] is not None and m["steps_done"] < 640
            # scored on the held-out frames (5 and 15 of F@24) like every node, after
            # fewer steps: the reward is marked partial
            assert m["partial"] is True and m["holdout_r2"] is not None
            assert m["compression_ratio"] > 0
