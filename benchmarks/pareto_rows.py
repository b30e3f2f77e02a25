"""The rows of ``benchmarks/pareto.py``: a finished run's best INR in its budget beside
PCA, ZFP and SZ3 at its ratio (``read_row``), and the table, markdown and CSV made of them.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import math
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

METHODS = ("pca", "zfp", "sz3")

CSV_FIELDS = (
    "window",
    "field",
    "n_frames",
    "experiment",
    "budget",
    "status",
    "error",
    "trials_ok",
    "trials_total",
    "node",
    "variant",
    "ratio",
    "inr_r2",
    "inr_final_r2",
    "training_time_s",
    *(f"{m}_{k}" for m in METHODS for k in ("r2", "setting")),
    "best_baseline",
    "best_baseline_r2",
    "delta_nines",
    "holdout_every",
    "baselines_unavailable",
    "block_wall_s",
    "run_dir",
)


def finished_run(out: Path) -> bool:
    """True when ``out`` holds a run whose journal has its ``run_end`` event."""
    from inr_tune.journal import read_events

    try:
        return any(e["event"] == "run_end" for e in read_events(out / "journal.jsonl"))
    except Exception:
        return False


# ----------------------------------------------------------------------------- one row
def read_row(out: Path, field: str, frames: int, budget: float) -> dict[str, Any]:
    """The row of a finished run: best INR in the budget and the baselines at its ratio."""
    from inr_tune.baselines import load_or_compute, nines
    from inr_tune.journal import read_events
    from inr_tune.reports.pareto import baseline_at, best_in_budget, reads_positions
    from inr_tune.search.session import replay_tree

    events = read_events(out / "journal.jsonl")
    tree = replay_tree(events)
    nodes = tree.nodes
    done = [n for n in nodes if n.r2 is not None]
    row: dict[str, Any] = {"trials_ok": len(done), "trials_total": len(nodes)}
    end = next((e for e in events if e["event"] == "run_end"), {})
    if isinstance(end.get("seconds"), (int, float)):
        row["run_seconds"] = float(end["seconds"])  # the block's own time (for --reuse)
    best = best_in_budget(nodes, budget)
    if best is None:
        failed = [n.error for n in nodes if n.error]
        why = f"; e.g. {failed[-1]}" if failed else ""
        return {**row, "status": "no INR", "error": f"no trial finished at ≥ {budget:g}×{why}"}
    m = best.metrics
    ratio, r2 = float(best.ratio), float(best.r2)  # type: ignore[arg-type]
    row.update(
        status="ok",
        node=best.id,
        variant=best.config["model"]["inr_type"],
        basis=best.config["model"].get("basis"),
        reads_positions=reads_positions(best.config),
        ratio=ratio,
        inr_r2=r2,
        inr_final_r2=m.get("final_r2"),
        training_time_s=m.get("training_time"),
    )
    # the baselines of exactly the window the block trained on: its dataset, offset, holdout
    start = next((e for e in events if e["event"] == "run_start"), {})
    block = next((e for e in events if e["event"] == "block_start"), {})
    data = (block.get("root_config") or {}).get("data") or {}
    holdout = int(data.get("holdout", 10) or 0)
    row["holdout_every"] = holdout
    try:
        baselines = load_or_compute(
            start.get("dataset"),
            data.get("field", field),
            int(data.get("n_frames", frames)),
            offset=data.get("offset", "center"),
            holdout_every=holdout,
        )
    except Exception as err:  # a missing baseline leaves the INR's numbers standing
        row["baselines_unavailable"] = f"all: {type(err).__name__}: {err}"[:300]
        return row
    row["baselines_unavailable"] = "; ".join(f"{k}: {v}" for k, v in baselines.unavailable.items())
    for method in METHODS:
        got = baseline_at(baselines, ratio, method)
        row[f"{method}_r2"], row[f"{method}_setting"] = got if got else (None, None)
    top = baseline_at(baselines, ratio)
    if top is not None:
        row["best_baseline"], row["best_baseline_r2"] = top[1], top[0]
        row["delta_nines"] = nines(r2) - nines(top[0])
    return row


# ----------------------------------------------------------------------------- table
def fmt_r2(x: Any) -> str:
    """R² with two digits past its nines (6 to 10 decimals); – when missing."""
    if not isinstance(x, (int, float)) or math.isnan(x):
        return "–"
    from inr_tune.baselines import nines

    n = nines(x)
    return f"{x:.{min(10, max(6, int(n) + 2)) if math.isfinite(n) else 6}f}"


def fmt(x: Any, spec: str, suffix: str = "") -> str:
    return format(x, spec) + suffix if isinstance(x, (int, float)) else "–"


def verdict(delta: Any) -> str:
    if not isinstance(delta, (int, float)):
        return "–"
    if abs(delta) < 0.005:
        return "level"
    return f"{delta:+.2f} ({'ahead' if delta > 0 else 'behind'})"


def table(rows: list[dict[str, Any]]) -> str:
    head = [
        "window",
        "budget",
        "best INR",
        "ratio",
        "INR held-out R²",
        "train (s)",
        "PCA R²",
        "ZFP R²",
        "SZ3 R²",
        "best baseline",
        "Δ nines vs best",
        "trials ok",
        "block (min)",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        cells = [r["window"], f"≥ {r['budget']:g}×"]
        if r["status"] != "ok":
            error = str(r.get("error") or r["status"]).replace("|", "\\|")
            cells += [f"**{r['status']}**: {error}", *["–"] * 8]
        else:
            variant = r["variant"] + (
                f" ({r['basis']} basis)" if r.get("basis") and r["variant"] == "factorized" else ""
            )
            variant += "†" if r.get("reads_positions") else ""
            best = "–"
            if r.get("best_baseline"):
                best = f"{r['best_baseline']} ({fmt_r2(r.get('best_baseline_r2'))})"
            cells += [
                f"{variant} (node {r['node']})",
                fmt(r["ratio"], ".1f", "×"),
                fmt_r2(r["inr_r2"]),
                fmt(r.get("training_time_s"), ".0f"),
                *(fmt_r2(r.get(f"{m}_r2")) for m in METHODS),
                best,
                verdict(r.get("delta_nines")),
            ]
        cells += [
            f"{r.get('trials_ok', '–')}/{r.get('trials_total', '–')}",
            fmt(r.get("block_wall_s", 0) / 60, ".1f"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> str:
    try:
        torch = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch = "not installed"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (
        f"{platform.platform()} ({platform.machine()}), {os.cpu_count()} CPUs (load average "
        f"{load} at the end), Python {platform.python_version()}, torch {torch}"
    )


def markdown(
    rows: list[dict[str, Any]], cmd: str, args: argparse.Namespace, wall_s: float, runs: Path
) -> str:
    sets = ", ".join(f"`{s}`" for s in args.sets) or "none"
    unavailable = sorted(
        {r["baselines_unavailable"] for r in rows if r.get("baselines_unavailable")}
    )
    holdouts = sorted({r["holdout_every"] for r in rows if r.get("holdout_every") is not None})
    held = (
        "every 10th frame, k % 10 == 5, never trained on"
        if holdouts in ([10], [])
        else f"every {'/'.join(map(str, holdouts))}th frame (0 = none: R² over all frames)"
    )
    counts = {"ahead": 0, "behind": 0, "level": 0}
    for r in rows:
        d = r.get("delta_nines")
        if isinstance(d, (int, float)):
            counts["level" if abs(d) < 0.005 else "ahead" if d > 0 else "behind"] += 1
    scored = sum(counts.values())
    lines = [
        "# Fidelity per byte on a CPU: best INR in a size budget vs PCA / ZFP / SZ3"
        + (" (quick smoke run)" if args.quick else ""),
        "",
        f"Command: `{cmd}`  ",
        f"Date: {dt.datetime.now():%Y-%m-%d %H:%M}; total wall time {wall_s / 60:.1f} min.  ",
        f"Machine: {machine()}.  ",
        f"Each row: one block of `python -m inr_tune.block --proposer rule --iterations "
        f"{args.iterations} --parallel {args.parallel} --min-ratio BUDGET`, CPU profile of the "
        f"experiment; extra `--set`: {sets}. Run directories: `{runs}`.",
        "",
        "**Rows where the INR is behind the classical baselines are reported as they are**: "
        "nothing is dropped or re-run to look better. The INR is the best trial at ratio ≥ "
        "the budget (highest held-out R²); PCA / ZFP / SZ3 are scored at that same ratio on "
        f"the same held-out frames ({held}), interpolated along each method's front in "
        "(log ratio, nines); – where a method does not reach the ratio. Δ nines = "
        "nines(INR) − nines(best baseline), nines(x) = −log10(1 − x) (capped at 9); "
        "negative = the INR is behind. The ratio counts trainable parameters against the "
        "window's values (T·N·C).",
        "",
        table(rows),
        "",
        f"INR ahead of the best baseline in {counts['ahead']}/{scored} compared rows, "
        f"behind in {counts['behind']}, level in {counts['level']}; "
        f"{len(rows) - scored} row(s) without a comparison.",
    ]
    if any(r.get("reads_positions") for r in rows):
        lines.append(
            "\n† this variant also reads the particle positions stored with the data to decode; "
            "the ratio does not count them, the baselines need nothing else."
        )
    if unavailable:
        lines.append("\nBaselines unavailable: " + " | ".join(unavailable))
    return "\n".join(lines) + "\n"


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows({k: ("" if r.get(k) is None else r.get(k)) for k in CSV_FIELDS} for r in rows)
