"""Kill a block at random moments and resume it: does it end as an uninterrupted run does?

    python benchmarks/kill_resume.py                         # 10 runs, one kill each
    python benchmarks/kill_resume.py --runs 12 --kills-per-run 2 --seed 1 --out /tmp/kr

First one uninterrupted tiny block (rule proposer, seed 3, 6 trials 2 at a time on a
synthetic MPM dataset: 2 + 2 proposals and 2 seed reruns). Then ``--runs`` runs of the
same options, each SIGKILLed, whole process group as ``kill -9 -PGID`` does, at a random
moment of its first ``--kills-per-run`` attempts and started again until one finishes:
``--resume``, or the first command again when the kill came before options.json existed
(nothing to resume yet). The kill moments come from ``--seed``; their phases take turns,
so that each is hit: Ray start-up (before the journal's first line, or before a resumed
run's first trial), trials (a batch journaled, the block not ended) and the block's end
(the block_end line written: verdicts, reports, figures, run_end). Within a phase the
moment is uniform over that phase's length in the uninterrupted run.

After each kill: the seconds until no process of the run is left (every process the run
starts carries a mark in its environment; at most 15 s are waited). After each run: its
directory against the uninterrupted one (``inr_tune.reports.compare.compare_runs``: the
tree with each node's config, status, metrics, observation and verdict, the block
review, one run_end, options.json, analysis.md, memory.md, ucb_scores.txt and the file
inventory, timings aside). Prints one line per attempt, then a table, and writes
``results.json`` (and the table as ``kill_resume.md``) into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from inr_tune.journal import read_events  # noqa: E402
from inr_tune.reports.compare import compare_runs  # noqa: E402
from tests.helpers import TINY  # noqa: E402  (the tests' tiny trial)

MARK = "INR_TUNE_KILL_BENCH"
PHASES = ("start-up", "trials", "block end")


def block_args(dataset: Path, iterations: int, parallel: int) -> list[str]:
    sets = [*TINY, f"data.path={dataset}"]
    return [
        *("--frames", "24", "--field", "F", "--seed", "3"),
        *("--iterations", str(iterations), "--parallel", str(parallel)),
        *[a for s in sets for a in ("--set", s)],
    ]


def events_of(run: Path) -> list[dict[str, Any]]:
    try:
        return read_events(run / "journal.jsonl")
    except Exception:  # a line being written
        return []


class Attempt:
    """Where one attempt (a process started on the run directory) has got to."""

    def __init__(self, run: Path, log: Path, n_iter: int) -> None:
        self.run, self.log, self.n_iter = run, log, n_iter
        self.offset = log.stat().st_size if log.exists() else 0

    def phase(self) -> str:
        """start-up until its first trial starts (Ray, the dataset, the baselines, the
        proposal); trials until the block's last trial finished; then block end (seed
        noise verdicts, the review, reports, figures, run_end)."""
        done = sum(e["event"] == "node_completed" for e in events_of(self.run))
        if done >= self.n_iter:
            return "block end"
        with open(self.log, "rb") as fh:
            fh.seek(self.offset)
            if b"\nstart " in b"\n" + fh.read():
                return "trials"
        return "start-up"


def alive(mark: str) -> list[int]:
    """Live processes (zombies aside) whose environment carries ``MARK=mark``."""
    needle = f"{MARK}={mark}".encode()
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            if needle not in (d / "environ").read_bytes().split(b"\0"):
                continue
            if (d / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                pids.append(int(d.name))
        except OSError:
            continue
    return pids


def start(cmd: list[str], mark: str, log: Path) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as fh:
        return subprocess.Popen(
            cmd,
            stdout=fh,
            stderr=subprocess.STDOUT,
            env={**os.environ, MARK: mark},
            start_new_session=True,
        )


def reference_run(out: Path, args: list[str], n_iter: int) -> tuple[float, dict[str, float]]:
    """The uninterrupted run; returns its wall time and each phase's seconds."""
    log = out.with_suffix(".log")
    t0 = time.perf_counter()
    proc = start([sys.executable, "-m", "inr_tune.block", *args, "--out", str(out)], "", log)
    attempt = Attempt(out, log, n_iter)
    seen: dict[str, float] = {}
    while proc.poll() is None:
        seen.setdefault(attempt.phase(), time.perf_counter() - t0)
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"the uninterrupted run failed (exit {proc.returncode}); see {log}")
    bounds = [seen.get(p, wall) for p in PHASES] + [wall]
    return wall, {p: max(0.1, bounds[i + 1] - bounds[i]) for i, p in enumerate(PHASES)}


def killed_run(
    out: Path,
    args: list[str],
    n_iter: int,
    plan: list[tuple[str, float]],
    lengths: dict[str, float],
) -> dict[str, Any]:
    """One run: attempts killed as ``plan`` says ((phase, fraction of its length) each),
    then started again until one finishes."""
    t0 = time.perf_counter()
    log = out.with_suffix(".log")
    kills: list[dict[str, Any]] = []
    attempts = 0
    while True:
        attempts += 1
        resume = (out / "options.json").is_file()
        cmd = [sys.executable, "-m", "inr_tune.block"]
        cmd += ["--resume", "--out", str(out)] if resume else [*args, "--out", str(out)]
        attempt = Attempt(out, log, n_iter)
        mark = uuid.uuid4().hex
        t_start = time.perf_counter()
        proc = start(cmd, mark, log)
        if len(kills) >= len(plan):  # no kill left: let it finish
            proc.wait()
            if proc.returncode != 0:
                return {"error": f"attempt {attempts} exited {proc.returncode}", "kills": kills}
            break
        phase, fraction = plan[len(kills)]
        while proc.poll() is None and PHASES.index(attempt.phase()) < PHASES.index(phase):
            time.sleep(0.02)
        t_phase = time.perf_counter()
        while proc.poll() is None and time.perf_counter() - t_phase < fraction * lengths[phase]:
            time.sleep(0.01)
        if proc.poll() is not None:  # it ended before the moment came
            kills.append({"phase": phase, "missed": True, "exit": proc.returncode})
            print(
                f"    kill {len(kills)}: missed, the attempt ended first (exit {proc.returncode})"
            )
            if proc.returncode == 0:
                break
            continue
        at = time.perf_counter() - t_start
        landed = attempt.phase()
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        t_kill = time.perf_counter()
        while alive(mark) and time.perf_counter() - t_kill < 15:
            time.sleep(0.1)
        left = alive(mark)
        kill = {
            "phase": landed,
            "at_s": round(at, 2),
            "resumed": resume,
            "journal_lines": len(events_of(out)),
            "options_json": (out / "options.json").is_file(),
            "cleared_s": round(time.perf_counter() - t_kill, 1),
            "left_after_15s": len(left),
        }
        kills.append(kill)
        print(
            f"    kill {len(kills)} ({'resumed' if resume else 'first'} attempt): {landed} at "
            f"{at:.1f} s, journal {kill['journal_lines']} lines, options.json "
            f"{'yes' if kill['options_json'] else 'no'}; no process left after "
            f"{kill['cleared_s']} s" + (f" ({len(left)} STILL ALIVE)" if left else ""),
            flush=True,
        )
        for pid in left:
            os.kill(pid, signal.SIGKILL)
    return {"kills": kills, "attempts": attempts, "wall_s": round(time.perf_counter() - t0, 1)}


def render(results: list[dict[str, Any]], wall: float, elapsed: float) -> tuple[str, str]:
    """The table (one row per run) and the summary line."""
    rows = [
        "| run | kills: phase, seconds into the attempt, journal lines then | processes "
        "left after each kill | attempts | wall | result |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    kills = [k for r in results for k in r["kills"] if not k.get("missed")]
    for r in results:
        ks = [k for k in r["kills"] if not k.get("missed")]
        what = "; ".join(
            f"{k['phase']}{' (resumed)' if k['resumed'] else ''} {k['at_s']:.1f} s, "
            f"{k['journal_lines']} lines{'' if k['options_json'] else ', no options.json yet'}"
            for k in ks
        ) + "".join(
            "; a 2nd kill missed: the attempt ended first" for k in r["kills"] if k.get("missed")
        )
        left = ", ".join(
            f"none after {k['cleared_s']} s"
            if not k["left_after_15s"]
            else f"{k['left_after_15s']} after 15 s"
            for k in ks
        )
        if "error" in r:
            result = "error: " + r["error"]
        else:
            result = "same" if r["same"] else "differs: " + "; ".join(r["diffs"])
        if r.get("notes"):
            result += " (" + "; ".join(r["notes"]) + ")"
        rows.append(
            f"| {r['run']} | {what} | {left} | {r.get('attempts', '-')} | "
            f"{r.get('wall_s', '-')} s | {result} |"
        )
    same = sum(bool(r.get("same")) for r in results)
    by_phase = {p: sum(k["phase"] == p for k in kills) for p in PHASES}
    summary = (
        f"{len(kills)} kills ({', '.join(f'{v} in {p}' for p, v in by_phase.items())}) over "
        f"{len(results)} runs: {same}/{len(results)} ended with the uninterrupted run's tree "
        f"and reports; processes left 15 s after a kill: "
        f"{sum(k['left_after_15s'] for k in kills)}; slowest clean-up "
        f"{max((k['cleared_s'] for k in kills), default=0):.1f} s; uninterrupted run "
        f"{wall:.1f} s, all {elapsed:.0f} s"
    )
    return "\n".join(rows), summary


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--runs", type=int, default=10, help="killed runs (default 10)")
    p.add_argument("--kills-per-run", type=int, default=1, help="attempts killed per run (1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the kill moments (0)")
    p.add_argument("--iterations", type=int, default=6, help="trials of the block (6)")
    p.add_argument("--parallel", type=int, default=2, help="trials at a time (2)")
    p.add_argument("--out", default=None, help="where runs and results go (a temp dir)")
    p.add_argument("--render", default=None, help="print the table of an earlier results.json")
    a = p.parse_args()
    if a.render:
        saved = json.loads(Path(a.render).read_text())
        table, summary = render(saved["runs"], saved["reference_s"], saved.get("elapsed_s", 0))
        print(table + "\n\n" + summary)
        return 0
    if not Path("/proc/self/environ").exists():
        sys.exit("needs Linux (/proc): the runs' processes are found through it")
    from tests.helpers import write_synthetic_mpm

    out = Path(a.out or tempfile.mkdtemp(prefix="kill_resume-"))
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("INR_TUNE_DATA", str(out / "cache"))
    dataset = out / "data.zarr"
    if not dataset.exists():
        write_synthetic_mpm(dataset, n_frames=40, n_points=50)
    args = block_args(dataset, a.iterations, a.parallel)
    rng = random.Random(a.seed)
    t0 = time.perf_counter()

    reference = out / "reference"
    print(f"uninterrupted run: {reference}", flush=True)
    wall, lengths = reference_run(reference, args, a.iterations)
    print(
        f"  {wall:.1f} s: "
        + ", ".join(f"{p} {lengths[p]:.1f} s" for p in PHASES)
        + " (kill moments are drawn over these lengths)",
        flush=True,
    )
    results = []
    n = 0
    for i in range(1, a.runs + 1):
        plan = []
        for _ in range(a.kills_per_run):
            plan.append((PHASES[n % len(PHASES)], rng.random()))
            n += 1
        run = out / f"run_{i:02d}"
        print(
            f"run {i}/{a.runs}: {run} (kills planned: "
            + ", ".join(f"{ph} +{f * lengths[ph]:.1f} s" for ph, f in plan)
            + ")",
            flush=True,
        )
        res = killed_run(run, args, a.iterations, plan, lengths)
        if "error" not in res:
            diffs, notes = compare_runs(reference, run)
            res.update(same=not diffs, diffs=diffs, notes=notes)
        res["run"] = run.name
        results.append(res)
        verdict = (
            "ERROR " + res["error"]
            if "error" in res
            else ("same as uninterrupted" if res["same"] else "DIFFERS: " + "; ".join(res["diffs"]))
        )
        print(
            f"  → {res.get('attempts')} attempts, {res.get('wall_s')} s: {verdict}"
            + (f" ({'; '.join(res['notes'])})" if res.get("notes") else ""),
            flush=True,
        )

    table, summary = render(results, wall, time.perf_counter() - t0)
    print("\n" + table + "\n\n" + summary)
    (out / "kill_resume.md").write_text(table + "\n\n" + summary + "\n")
    saved = {
        "seed": a.seed,
        "command": " ".join(sys.argv),
        "reference_s": wall,
        "phases_s": lengths,
        "elapsed_s": time.perf_counter() - t0,
        "runs": results,
    }
    (out / "results.json").write_text(json.dumps(saved, indent=2))
    print(f"wrote {out / 'kill_resume.md'} and {out / 'results.json'}")
    kills = [k for r in results for k in r["kills"] if not k.get("missed")]
    same = all(r.get("same") for r in results)
    return 0 if same and not any(k["left_after_15s"] for k in kills) else 1


if __name__ == "__main__":
    sys.exit(main())
