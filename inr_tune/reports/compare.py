"""Do two run directories hold the same run? What a resumed run must share with an
uninterrupted one of the same options (``benchmarks/kill_resume.py``, tests).

Compared, timings aside: the tree (each node's config, mutation, strategy, status,
metrics, observation and verdict), the block reviews, the number of ``run_end`` lines,
options.json, analysis.md, memory.md, ucb_scores.txt and the file inventory (a config
per node, one TensorBoard run per trial and one Pareto record per block, no temp file).

Left out as timings: ``training_time``, ``wall_time``, ``overhead_s``, ``steps_per_second`` and the
minutes built from them; as places and versions: the run's own name and path, the Ray
node id and the version stamp. Trials that run side by side finish in either order, so
two uninterrupted runs differ in that order too: analysis.md entries of one batch are
compared as a set, and an entry's "Next: parent=" line (the UCB choice right after that
result, which depends on which of its batch had finished) only where the batch finished
in the same order in both runs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from inr_tune.journal import (
    BatchAdded,
    BlockEnd,
    Event,
    NodeCompleted,
    RunEnd,
    as_records,
    read_records,
)
from inr_tune.search.tree import Tree

__all__ = ["VOLATILE_METRICS", "compare_runs", "completion_groups", "inventory", "tree_signature"]

#: Metrics that change from run to run of the same config: timings, places, versions.
VOLATILE_METRICS = frozenset(
    {
        "training_time",
        "wall_time",
        "overhead_s",
        "steps_per_second",
        "field_png",
        "ray_node_id",
        "ray_resources",
        "version",
        "peak_memory_gb",
    }
)


def tree_signature(events: list[Event] | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every node of the journal's tree as a dict, volatile metrics left out."""
    out = []
    for node in Tree.replay(events).nodes:
        d = node.to_dict()
        d["metrics"] = {k: v for k, v in d["metrics"].items() if k not in VOLATILE_METRICS}
        out.append(d)
    return out


def completion_groups(events: list[Event] | list[dict[str, Any]]) -> list[list[int]]:
    """Node ids in the order they finished, one list per stretch between proposals (the
    entries analysis.md writes together)."""
    groups: list[list[int]] = [[]]
    for e in as_records(events):
        if isinstance(e, NodeCompleted):
            groups[-1].append(e.node_id)
        elif isinstance(e, (BatchAdded, BlockEnd)) and groups[-1]:
            groups.append([])
    return [g for g in groups if g]


def _entries(text: str) -> list[Any]:
    """analysis.md as a list of chunks: text, or a set-like sorted tuple of the entries
    ``## Iter N`` that were written together (id, lines)."""
    chunks: list[Any] = []
    for part in re.split(r"(?m)^(?=#{1,2} )", text):
        m = re.match(r"## Iter (\d+):", part)
        if m is None:
            chunks.append(part)
        elif chunks and isinstance(chunks[-1], list):
            chunks[-1].append((int(m.group(1)), part))
        else:
            chunks.append([(int(m.group(1)), part)])
    return [tuple(sorted(c)) if isinstance(c, list) else c for c in chunks]


def _untitled(text: str) -> str:
    """``text`` without its title line (it names the run directory)."""
    return text.split("\n", 1)[1] if "\n" in text else ""


def _analysis(run: Path, loose_next: set[int]) -> list[Any]:
    text = _untitled((run / "analysis.md").read_text(encoding="utf-8"))
    text = re.sub(r"training_time=[^,\n]*", "training_time=…", text)
    out = []
    for chunk in _entries(text):
        if isinstance(chunk, tuple):
            chunk = tuple(
                (i, re.sub(r"(?m)^Next: .*$", "Next: …", part) if i in loose_next else part)
                for i, part in chunk
            )
        out.append(chunk)
    return out


def _memory(run: Path) -> str:
    """memory.md with the Minutes column of its tables blanked."""
    lines = []
    minutes = None
    for line in (run / "memory.md").read_text(encoding="utf-8").splitlines():
        cells = line.split("|")
        if "Minutes" in (c.strip() for c in cells):
            minutes = [c.strip() for c in cells].index("Minutes")
        elif line.startswith("|") and minutes is not None and len(cells) > minutes:
            cells[minutes] = " … "
            line = "|".join(cells)
        elif not line.startswith("|"):
            minutes = None
        lines.append(line)
    return _untitled("\n".join(lines))


def inventory(run: Path) -> dict[str, Any]:
    """What a finished run directory holds, as names and counts (not contents)."""
    trials = run / "trials"
    tb = {}
    for d in sorted(trials.glob("iter_*")):
        tb[d.name] = {
            "files": sorted(p.name for p in d.iterdir() if p.is_file()),
            "tensorboard_event_files": len(list(d.rglob("events.out.tfevents.*"))),
        }
    return {
        "files": sorted(p.name for p in run.iterdir() if p.is_file()),
        "configs": sorted(p.name for p in (run / "configs").iterdir()),
        "trials": tb,
        "pareto_records": len(list((trials / "pareto").glob("events.out.tfevents.*"))),
        "temp_files": sorted(str(p.relative_to(run)) for p in run.rglob(".*.tmp*")),
    }


def compare_runs(reference: Path, other: Path) -> tuple[list[str], list[str]]:
    """(differences, notes) of ``other`` against ``reference``: an empty list of
    differences means the same run, timings aside; notes say what was compared loosely."""
    ref_events = read_records(reference / "journal.jsonl")
    events = read_records(other / "journal.jsonl")
    diffs: list[str] = []
    notes: list[str] = []

    a, b = tree_signature(ref_events), tree_signature(events)
    if len(a) != len(b):
        diffs.append(f"tree: {len(b)} nodes, not {len(a)}")
    for x, y in zip(a, b, strict=False):
        keys = sorted(k for k in x.keys() | y.keys() if x.get(k) != y.get(k))
        if keys:
            diffs.append(f"tree: node {x['id']} differs in {', '.join(keys)}")

    def reviews(evs: list[Event]) -> list[BlockEnd]:
        return [e for e in evs if isinstance(e, BlockEnd)]  # seq and time not compared

    if reviews(ref_events) != reviews(events):
        diffs.append("block reviews (block_end) differ")
    ends = sum(isinstance(e, RunEnd) for e in events)
    if ends != 1:
        diffs.append(f"journal: {ends} run_end lines")
    for name in ("options.json",):
        if json.loads((reference / name).read_text()) != json.loads((other / name).read_text()):
            diffs.append(f"{name} differs")

    groups_a, groups_b = completion_groups(ref_events), completion_groups(events)
    loose = {
        i
        for ga, gb in zip(groups_a, groups_b, strict=False)
        if ga != gb and sorted(ga) == sorted(gb)
        for i in ga
    }
    if loose:
        notes.append(f"finished in another order: nodes {sorted(loose)} (Next lines not compared)")
    if _analysis(reference, loose) != _analysis(other, loose):
        diffs.append("analysis.md differs")
    if _memory(reference) != _memory(other):
        diffs.append("memory.md differs")
    if (reference / "ucb_scores.txt").read_text() != (other / "ucb_scores.txt").read_text():
        diffs.append("ucb_scores.txt differs")
    inv_a, inv_b = inventory(reference), inventory(other)
    for key in inv_a:
        x, y = inv_a[key], inv_b[key]
        if x == y:
            continue
        if isinstance(x, dict) and isinstance(y, dict):  # per trial: say which, and how
            for name in sorted(x.keys() | y.keys()):
                if x.get(name) != y.get(name):
                    diffs.append(f"files: {key}/{name}: {y.get(name)} instead of {x.get(name)}")
        else:
            diffs.append(f"files: {key}: {y} instead of {x}")
    return diffs, notes
