"""Kills and signals at awkward moments (issue 12 §3): ``--resume`` rebuilds the run as if
nothing had happened, Ctrl-C and SIGTERM stop cleanly, and nothing of a killed run keeps
running. Each scenario is compared with one uninterrupted run of the same options
(``inr_tune.reports.compare``: tree, reports and files, timings aside)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from inr_tune.journal import BatchAdded, NodeCompleted, NodeNoted, RunEnd, read_records
from inr_tune.reports.compare import compare_runs
from tests.helpers import TINY, block_args, completed, run_block, write_synthetic_mpm

MARK = "INR_TUNE_TEST_MARK"  # every process of a test's run inherits it
linux_only = pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_mpm(tmp_path_factory.mktemp("data") / "d.zarr", n_frames=40, n_points=50)


def _args(dataset: Path, *sets: str, iterations: int = 6) -> list[str]:
    flags = [a for s in [*TINY, f"data.path={dataset}", *sets] for a in ("--set", s)]
    return block_args("--seed", "3", *flags, iterations=iterations, parallel=2)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, dataset: Path) -> Path:
    """An uninterrupted run: 2 + 2 proposals, then 2 seed reruns."""
    out = tmp_path_factory.mktemp("reference") / "run"
    r = run_block(*_args(dataset), "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    return out


def _as_killed(reference: Path, dest: Path, lines: int) -> list:
    """``dest``: ``reference`` as a SIGKILL right after its journal line ``lines`` left
    it: later lines gone, and the files only written later (reports of the block's end,
    configs of later batches, results of trials that had not finished)."""
    shutil.copytree(reference, dest)
    journal = dest / "journal.jsonl"
    kept = journal.read_text().splitlines(keepends=True)[:lines]
    journal.write_text("".join(kept))
    events = read_records(journal)
    added = {n["id"] for e in events if isinstance(e, BatchAdded) for n in e.nodes}
    done = {e.node_id for e in events if isinstance(e, NodeCompleted)}
    for cfg in (dest / "configs").glob("iter_*.yaml"):
        if int(cfg.stem[5:]) not in added:
            cfg.unlink()
    for trial in (dest / "trials").glob("iter_*"):
        if int(trial.name[5:]) not in done:
            shutil.rmtree(trial)
    for name in ("analysis.md", "memory.md", "tree.png", "pareto.png", "rules.md"):
        (dest / name).unlink(missing_ok=True)
    shutil.rmtree(dest / "trials" / "pareto", ignore_errors=True)
    return events


def _line_of(reference: Path, test) -> int:
    """The number of the first journal line of ``reference`` for which ``test`` holds."""
    for n, e in enumerate(read_records(reference / "journal.jsonl"), 1):
        if test(e):
            return n
    raise AssertionError("no such journal line")


def _resume(run: Path) -> subprocess.CompletedProcess[str]:
    r = run_block("--resume", "--out", str(run))
    assert r.returncode == 0, r.stderr[-2000:]
    return r


def _same(reference: Path, run: Path) -> None:
    diffs, _ = compare_runs(reference, run)
    assert diffs == [], diffs


@pytest.mark.slow
def test_resume_writes_the_configs_of_a_batch_journaled_just_before_the_kill(
    tmp_path: Path, reference: Path
) -> None:
    """Killed between a batch's journal line and its config files (one half-written)."""
    second_batch = _line_of(
        reference, lambda e: isinstance(e, BatchAdded) and e.nodes[0]["id"] == 3
    )
    run = tmp_path / "run"
    _as_killed(reference, run, second_batch)
    for i in (3, 4):
        (run / "configs" / f"iter_{i:03d}.yaml").unlink()
    (run / "configs" / ".iter_003.yaml.tmp").write_text("")
    r = _resume(run)
    best = next(line for line in r.stdout.splitlines() if "/configs/iter_" in line)
    assert Path(best.split(",")[0].strip()).is_file(), best  # the summary points to a file
    assert not list(run.rglob(".*.tmp"))
    _same(reference, run)


@pytest.mark.slow
def test_resume_after_a_kill_mid_trial_keeps_observations_and_one_tensorboard_run(
    tmp_path: Path, reference: Path
) -> None:
    """Killed while one trial of the second batch (nodes 3, 4) trained and the other had
    finished but was not yet seen by the proposer: the finished one still gets its
    observation, and the killed attempt leaves no second TensorBoard run beside the new
    one. Which of the two finished first varies run to run (parallel trials)."""
    done = [
        e.node_id for e in read_records(reference / "journal.jsonl") if isinstance(e, NodeNoted)
    ]
    first = next(i for i in done if i in (3, 4))
    other = 7 - first
    cut = _line_of(reference, lambda e: isinstance(e, NodeNoted) and e.node_id == first)
    run = tmp_path / "run"
    _as_killed(reference, run, cut)
    assert {e["node_id"] for e in completed(run)} == {1, 2, first}
    name = f"iter_{other:03d}"  # what the killed attempt had written: TensorBoard
    shutil.copytree(
        reference / "trials" / name / f"b1_{name}", run / "trials" / name / f"b1_{name}"
    )
    _resume(run)
    tb = [len(list((r / "trials" / name).rglob("events.out.tfevents.*"))) for r in (run, reference)]
    assert tb[0] == tb[1], f"{tb[0]} TensorBoard files for node {other}, not {tb[1]}"
    analysis = (run / "analysis.md").read_text()
    assert analysis.count("Observation:") == 6, analysis
    _same(reference, run)


@pytest.mark.slow
def test_resume_of_a_finished_run_rebuilds_its_files_and_ends_once(
    tmp_path: Path, reference: Path
) -> None:
    """Killed after run_end, before the last reports were written: --resume writes them,
    and appends no second run_end."""
    run = tmp_path / "run"
    _as_killed(reference, run, len(read_records(reference / "journal.jsonl")))
    r = _resume(run)
    assert "finished already" in r.stdout and "best config: node" in r.stdout
    _same(reference, run)
    _resume(run)
    assert sum(isinstance(e, RunEnd) for e in read_records(run / "journal.jsonl")) == 1


def test_resume_with_a_broken_options_json_is_one_line(tmp_path: Path) -> None:
    """A 0-byte options.json (the old non-atomic write, killed) or a wrong one: exit 2, one
    line, no traceback."""
    for text in ("", "{not json", "[1, 2]"):
        (tmp_path / "options.json").write_text(text)
        r = run_block("--resume", "--out", str(tmp_path))
        assert r.returncode == 2, (text, r.stderr)
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
        assert "options.json" in r.stderr


def test_finished_nodes_the_proposer_has_not_seen_survive_a_restart(tmp_path: Path) -> None:
    """The nodes that finished since the last proposal come from the journal: a session
    rebuilt after a kill still shows them to the next proposal, which writes their
    observations (without Ray)."""
    from inr_tune.config_files import load_config
    from inr_tune.journal import Journal
    from inr_tune.search.session import BlockSession, replay_tree
    from tests.helpers import rule_session

    root = load_config(None, ["data.n_frames=24", *TINY])
    session = rule_session(tmp_path, root, n_iter=6, parallel=2)
    first = [session.next_trial(), session.next_trial()]
    for node in first:
        session.complete(node.id, "ok", {"final_r2": 0.9, "holdout_r2": 0.9}, None)
    session.ctx.journal.close()  # the kill

    ctx = session.ctx
    ctx.journal = Journal(tmp_path / "journal.jsonl")
    ctx.tree = replay_tree(ctx.journal.records)
    again = BlockSession(ctx, block=1, spec=session.spec, root_config=root, ucb_c=1.414)
    assert again._finished_since == [1, 2]
    again.next_trial()  # the second batch: the proposer sees nodes 1 and 2
    noted = {e.node_id for e in ctx.journal.select(NodeNoted) if e.observation}
    assert noted == {1, 2}
    batch = ctx.journal.latest(BatchAdded)
    assert batch is not None
    assert batch.reviewed == [1, 2] and [n["id"] for n in batch.nodes] == [3, 4]
    assert (
        BlockSession(ctx, block=1, spec=session.spec, root_config=root, ucb_c=1.4)._finished_since
        == []
    )


def test_a_trial_run_again_starts_from_an_empty_directory(tmp_path: Path) -> None:
    """The killed attempt's files (TensorBoard events among them) go before a trial runs
    again: in the run directory, Ray's own trial directory, and an object store."""
    from inr_tune.runner.storage import resolve_storage

    local = resolve_storage(None, tmp_path / "run")
    events = Path(local.trial_dir(3)) / "b1_iter_003" / "events.out.tfevents.1.host.1.0"
    ray_dir = tmp_path / "run" / "ray" / "block_1" / "b1_iter_003"
    for f in (events, ray_dir / "result.json"):
        f.parent.mkdir(parents=True)
        f.write_text("killed attempt")
    local.clear_trial(3, ray_name="block_1/b1_iter_003")
    assert not Path(local.trial_dir(3)).exists() and not ray_dir.exists()
    local.clear_trial(4)  # nothing there: nothing to do

    store = resolve_storage(f"file://{tmp_path / 'store'}", tmp_path / "run2")
    stale = tmp_path / "store" / "run2" / "trials" / "iter_003" / "events.out.tfevents.1"
    stale.parent.mkdir(parents=True)
    stale.write_text("killed attempt")
    store.clear_trial(3)
    assert not stale.parent.exists() and (tmp_path / "store" / "run2" / "trials").is_dir()


# ----------------------------------------------------------------------------- processes
def _alive(mark: str, but: tuple[int, ...] = ()) -> list[str]:
    """Live processes (not zombies) whose environment holds ``MARK=mark``, as
    ``pid cmdline``."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) in (os.getpid(), *but):
            continue
        try:
            if f"{MARK}={mark}".encode() not in (d / "environ").read_bytes().split(b"\0"):
                continue
            if (d / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            found.append(f"{d.name} {(d / 'cmdline').read_bytes()[:300].decode(errors='replace')}")
        except OSError:
            continue
    return found


def _kill_all(mark: str) -> None:
    for line in _alive(mark):
        with contextlib.suppress(OSError):
            os.kill(int(line.split()[0]), signal.SIGKILL)


class _Run:
    """``python -m inr_tune.block ARGS`` in its own process group (as a shell starts a
    command), its stdout read as it comes; every process of it carries a mark."""

    def __init__(self, args: list[str], prefix: list[str] = ()) -> None:
        self.mark = uuid.uuid4().hex
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "inr_tune.block", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, MARK: self.mark},
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for(self, test, timeout: float = 300) -> None:
        deadline = time.time() + timeout
        while not test():
            assert self.proc.poll() is None or test(), "".join(self.lines)[-2000:]
            assert time.time() < deadline, "".join(self.lines)[-2000:]
            time.sleep(0.1)

    def started(self, n: int = 1) -> bool:
        return sum(line.startswith("start") for line in self.lines) >= n


@pytest.mark.slow
@linux_only
def test_nothing_of_the_run_survives_a_sigkill(tmp_path: Path, dataset: Path) -> None:
    """SIGKILL of the driver's process group while trials train: 10 s later no process of
    the run is alive. Run under a parent that never reaps orphans (a subreaper, as some
    supervisors are): the raylet, killed with the driver, stays a zombie, and Ray's
    workers, which poll the raylet's pid, would train on."""
    launcher = (
        "import ctypes, subprocess, sys\n"
        "ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER\n"
        "p = subprocess.Popen(sys.argv[1:], start_new_session=True)\n"
        "print('driver', p.pid, flush=True)\n"
        "sys.stdin.read()\n"
    )
    long = _args(dataset, "training.total_steps=200000", iterations=2)
    run = _Run([*long, "--out", str(tmp_path / "run")], prefix=[sys.executable, "-c", launcher])
    try:
        run.wait_for(lambda: run.started(2))
        run.wait_for(lambda: sum("ray::" in p for p in _alive(run.mark)) >= 2)
        time.sleep(2)  # the trials are training
        driver = int(next(x for x in run.lines if x.startswith("driver ")).split()[1])
        os.killpg(driver, signal.SIGKILL)
        time.sleep(10)
        assert _alive(run.mark, but=(run.proc.pid,)) == []
    finally:
        _kill_all(run.mark)
        run.proc.kill()
        run.proc.wait()


@pytest.mark.slow
@linux_only
def test_a_kill_while_ray_starts_is_resumable(tmp_path: Path, dataset: Path) -> None:
    """Killed while Ray starts (its GCS server is up): options.json is there, whole, and
    --resume runs the block."""
    out = tmp_path / "run"
    run = _Run([*_args(dataset, iterations=2), "--out", str(out)])
    try:
        run.wait_for(lambda: any("gcs_server" in p for p in _alive(run.mark)), timeout=120)
        os.killpg(run.proc.pid, signal.SIGKILL)
        run.proc.wait()
    finally:
        _kill_all(run.mark)
    assert not (out / "journal.jsonl").exists()  # Ray was still starting
    assert "block.iterations=2" in json.loads((out / "options.json").read_text())["sets"]
    _resume(out)
    assert sorted(e["node_id"] for e in completed(out)) == [1, 2]


@pytest.mark.slow
@linux_only
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_and_sigterm_stop_cleanly_and_the_run_resumes(
    tmp_path: Path, dataset: Path, reference: Path, signum: int, code: int
) -> None:
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) and SIGTERM (to the
    driver) while trials train: exit 130 / 143 with the resume command, no traceback,
    nothing left running; --resume then ends with the uninterrupted run's tree and
    reports."""
    out = tmp_path / "run"
    run = _Run([*_args(dataset), "--out", str(out)])
    try:
        run.wait_for(lambda: run.started(2))
        time.sleep(1)
        if signum == signal.SIGINT:
            os.killpg(run.proc.pid, signum)
        else:
            os.kill(run.proc.pid, signum)
        assert run.proc.wait(timeout=60) == code
        assert run.proc.stderr is not None
        err = run.proc.stderr.read()
        assert "Traceback" not in err, err
        assert f"python -m inr_tune.block --out {out} --resume" in err, err
        deadline = time.time() + 10
        while _alive(run.mark) and time.time() < deadline:
            time.sleep(0.5)
        assert _alive(run.mark) == []
    finally:
        _kill_all(run.mark)
    _resume(out)
    _same(reference, out)
