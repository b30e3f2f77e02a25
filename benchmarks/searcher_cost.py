"""The searcher's own cost per suggestion, and the driver's idle time between batches.

    python benchmarks/searcher_cost.py [--nodes 200] [--parallel 4] [--run runs/NAME]
        [--clock wall|cpu] [--dump proposals.json] [--profile out.prof]

(a) Drives a ``BlockSession`` + ``UCBTreeSearcher`` with the rule proposer through
``--nodes`` trials without Ray workers (results are synthetic), timing ``suggest`` (which
includes proposing a batch, validating it and fsync'ing the journal) and
``on_trial_complete`` (verdict, UCB, journal). (b) With ``--run``, reads a finished run's
journal and prints, per batch, the gap between its last result and the next batch being
proposed (the proposer's time), and the whole gap until the next trial reported anything.

Issue 14 §4 asks ≤ 50 ms per suggestion up to 500 nodes: ``--nodes 500``. The proposer's
own share (each ``RuleProposer.propose`` call) is printed apart from the session's. On a
shared machine ``--clock cpu`` times this process's CPU time, not other work's. ``--dump``
writes every node's proposal, so two versions of the searcher can be compared (``cmp``);
``--profile`` writes cProfile stats (``python -m pstats``).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def synthetic_r2(cfg: dict) -> float:
    m, t = cfg["model"], cfg["training"]
    score = (
        -abs(math.log10(t["lr"] / 3e-4))
        - 0.02 * abs(m["omega"] - 10)
        - 0.2 * abs(math.log2(m["hidden_dim"] / 256))
    )
    return float(1 - 10 ** (-3 + score))


def drive(n_nodes: int, parallel: int, dump: Path | None = None, clock: str = "wall") -> None:
    from inr_tune.journal import Journal
    from inr_tune.runner.searcher import UCBTreeSearcher
    from inr_tune.search.experiment import BlockSpec, load_experiment
    from inr_tune.search.proposers import RuleProposer
    from inr_tune.search.session import BlockSession, RunContext
    from inr_tune.search.tree import Tree

    now = time.perf_counter if clock == "wall" else time.process_time
    with tempfile.TemporaryDirectory() as tmp:
        exp = load_experiment("mpm")
        rule = RuleProposer(seed=0)
        propose_calls: list[float] = []  # the proposer's own share of a proposing suggest
        plain_propose = rule.propose

        def timed_propose(state, n_slots):
            t0 = now()
            try:
                return plain_propose(state, n_slots)
            finally:
                propose_calls.append(now() - t0)

        rule.propose = timed_propose  # type: ignore[method-assign]
        ctx = RunContext(
            run_dir=Path(tmp),
            journal=Journal(Path(tmp) / "journal.jsonl"),
            tree=Tree(),
            experiment=exp,
            proposer=rule,
            parallel=parallel,
            n_iter=n_nodes,
            reward="nines",
        )
        root = exp.root_config(BlockSpec("F", 400), gpu=True)
        session = BlockSession(
            ctx, block=1, spec=BlockSpec("F", 400), root_config=root, ucb_c=1.414
        )
        searcher = UCBTreeSearcher(session, lambda node: {"node_id": node.id, "cfg": node.config})
        gc.freeze()  # as python -m inr_tune.block does once it has started (driver.py)
        suggest_s, propose_s, complete_s = [], [], []
        running: list[tuple[str, dict]] = []
        n = 0
        while True:
            proposing = not session.queued() and not running
            t0 = now()
            cfg = searcher.suggest(f"t{n}")
            dt = now() - t0
            if cfg == "FINISHED" and not running:
                break
            if isinstance(cfg, dict):
                (propose_s if proposing else suggest_s).append(dt)
                running.append((f"t{n}", cfg))
                n += 1
                continue
            for tid, c in running:  # the batch finishes
                t0 = now()
                r2 = synthetic_r2(c["cfg"])
                searcher.on_trial_complete(
                    tid, {"metrics_json": json.dumps({"status": "ok", "final_r2": r2})}
                )
                complete_s.append(now() - t0)
            running = []
        drive.tree = session.tree  # type: ignore[attr-defined]  # for a caller to inspect
        best = session.tree.best(1)
        for name, xs in (
            ("suggest that proposes a batch", propose_s),
            ("of which each propose call", propose_calls),
            ("suggest from a queued batch", suggest_s),
            ("on_trial_complete", complete_s),
        ):
            if xs:
                a = np.array(xs) * 1e3
                print(
                    f"{name:>30}: median {np.median(a):7.2f} ms, p95 {np.percentile(a, 95):7.2f} ms, max {a.max():7.2f} ms (n={len(a)})"
                )
        print(f"{n} trials, tree of {len(session.tree)} nodes; best synthetic R² {best.r2:.6f}")
        if dump is not None:  # what was proposed, to compare two versions of the searcher
            keep = ("id", "parent", "block", "mutation", "strategy", "hypothesis", "expect")
            rows = [{k: node.to_dict()[k] for k in keep} for node in session.tree.nodes]
            dump.write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n")
            print(f"proposals written to {dump}")


def idle_gaps(run: Path) -> None:
    from inr_tune.journal import read_events

    events = read_events(run / "journal.jsonl")
    last_done = None
    batch = 0
    for e in events:
        if e["event"] == "node_completed":
            last_done = e["time"]
        elif e["event"] == "batch_added":
            batch += 1
            if last_done is not None and batch > 1:
                print(
                    f"batch {batch}: proposer took {e['time'] - last_done:6.2f} s after the last result"
                )
    trials = sorted((run / "trials").glob("iter_*/metrics.json"))
    pairs = [(p.parent.name, json.loads(p.read_text())) for p in trials]
    pairs = [(n, r) for n, r in pairs if r.get("wall_time") and r.get("training_time") is not None]
    records = [r for _, r in pairs]
    if not records:
        return
    walls = [r["wall_time"] for r in records]
    train = [r["training_time"] for r in records]
    print(
        f"per trial: wall {np.mean(walls):.1f} s, of which training {np.mean(train):.1f} s "
        f"({100 * np.sum(train) / np.sum(walls):.1f} % optimisation; the rest: data, model "
        "build, evaluations, plot, checkpoint)"
    )
    phases = sorted({k for r in records for k in r.get("overhead_s") or {}})
    if not phases:  # a run from before metrics.json split its overhead
        return
    print(
        f"{'trial':>10} {'wall':>7} {'train':>7} {'share':>6}  "
        + " ".join(f"{k:>10.10}" for k in phases)
    )
    for name, r in pairs:
        o = r.get("overhead_s") or {}
        share = 100 * r["training_time"] / r["wall_time"]
        cells = " ".join(f"{o.get(k, 0.0):10.2f}" for k in phases)
        print(f"{name:>10} {r['wall_time']:7.1f} {r['training_time']:7.1f} {share:5.1f}%  {cells}")
    means = " ".join(
        f"{np.mean([(r.get('overhead_s') or {}).get(k, 0.0) for r in records]):10.2f}"
        for k in phases
    )
    print(
        f"{'mean':>10} {np.mean(walls):7.1f} {np.mean(train):7.1f} {100 * np.sum(train) / np.sum(walls):5.1f}%  {means}"
    )
    # a fresh Ray worker imports torch and Lightning once (its first trial); a kept worker
    # does not (runner.actor_cache): the recurring overhead is the rest
    imports = [(r.get("overhead_s") or {}).get("imports", 0.0) for r in records]
    if any(imports):
        share = 100 * np.sum(train) / (np.sum(walls) - np.sum(imports))
        fresh = sum(1 for x in imports if x >= 1.0)
        print(
            f"without the one-off imports of a fresh worker ({fresh} trial(s) paid "
            f"{np.sum(imports):.1f} s): {share:.1f} % optimisation"
        )
        for label, group in (
            ("on a fresh worker", [r for r, x in zip(records, imports, strict=True) if x >= 1.0]),
            ("on a kept worker", [r for r, x in zip(records, imports, strict=True) if x < 1.0]),
        ):
            if group:
                shares = [100 * r["training_time"] / r["wall_time"] for r in group]
                whole = (
                    100
                    * sum(r["training_time"] for r in group)
                    / sum(r["wall_time"] for r in group)
                )
                print(
                    f"{len(group)} trial(s) {label}: {whole:.1f} % optimisation "
                    f"(per trial {min(shares):.1f}–{max(shares):.1f} %)"
                )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=200)
    p.add_argument("--parallel", type=int, default=4)
    p.add_argument("--run", type=Path, default=None, help="a finished run directory to analyse")
    p.add_argument(
        "--dump", type=Path, default=None, help="write every node's proposal (JSON) to this file"
    )
    p.add_argument(
        "--profile", type=Path, default=None, help="write cProfile stats of the drive here"
    )
    p.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="time with the wall clock or this process's CPU time (steadier on a shared machine)",
    )
    args = p.parse_args(argv)
    if args.profile is not None:
        import cProfile

        prof = cProfile.Profile(time.process_time if args.clock == "cpu" else time.perf_counter)
        prof.runcall(drive, args.nodes, args.parallel, args.dump, args.clock)
        prof.dump_stats(args.profile)
    else:
        drive(args.nodes, args.parallel, args.dump, args.clock)
    if args.run:
        idle_gaps(args.run)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
