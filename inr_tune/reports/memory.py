"""``memory.md``: the bounded working memory carried across blocks (≤ 500 lines).

Rebuilt from the journal and the tree after every event: a regime table with one row
per finished block (with its window's effective ranks, ``reports.ranks``), principles and
open questions from the block reviews, the run's own rules, the previous block's summary,
and the current block's iterations (under the window's ranks). Free text is rendered as
one line of plain text (``plain_text``), so it cannot forge a heading or a table row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from inr_tune.journal import BlockEnd, BlockStart, Event, as_records
from inr_tune.metrics import quality_class
from inr_tune.reports.ranks import format_ranks
from inr_tune.search.proposers.text import plain_text
from inr_tune.search.seeds import decades, runs_of
from inr_tune.search.space import fmt_value
from inr_tune.search.tree import Tree

__all__ = ["MAX_LINES", "render_memory"]

MAX_LINES = 500
MAX_PRINCIPLES = 40
MAX_QUESTIONS = 20


def _ratio(value: Any) -> str:
    return f"{value:.1f}×" if isinstance(value, (int, float)) else "-"


def _signed(value: Any) -> str:
    return f"{value:+.2f}" if isinstance(value, (int, float)) else "-"


def _ranks_cell(start: BlockStart | None) -> str:
    """``3/7 (5/12)``: the window's rank_90/rank_99, uncentred (centred); ``-`` if unknown."""
    r = start.ranks if start is not None else None
    if not format_ranks(r):
        return "-"
    return f"{r['rank_90']}/{r['rank_99']} ({r['centred_rank_90']}/{r['centred_rank_99']})"


def _best_row(tree: Tree, e: BlockEnd, start: BlockStart | None) -> str:
    best = tree.get(e.best)
    ranks = _ranks_cell(start)
    if best is None:
        return f"| {e.block} | {e.field} | {e.n_frames} | {ranks} | - | failed | - | - | - | - | - | - | - | - | - |"
    m, cfg = best.metrics or {}, best.config
    model, train = cfg.get("model", {}), cfg.get("training", {})
    minutes = (m.get("training_time") or 0) / 60
    runs = runs_of(tree, best.id)
    gap = m.get("nines_over_baseline")  # of the mean over the seeds, as the closing sentence
    if runs.n and isinstance(m.get("baseline_r2"), (int, float)):
        gap = runs.mean - decades(m["baseline_r2"])
    r2 = runs.r2_text(short=True) if runs.n else "-"
    key = plain_text(e.summary).split(". ")[0][:80].replace("|", "/")
    return (
        f"| {e.block} | {e.field} | {e.n_frames} | {ranks} | {model.get('inr_type')} | {r2} | "
        f"{_ratio(m.get('compression_ratio'))} | {_signed(gap)} | "
        f"{best.id} | {model.get('hidden_dim')}×{model.get('n_layers')} | {fmt_value(model.get('omega'))} | "
        f"{fmt_value(train.get('lr'))} | {train.get('total_steps')} | {minutes:.1f} | {key} |"
    )


def render_memory(
    events: Iterable[Event | Mapping[str, Any]],
    tree: Tree,
    classes: Mapping[str, float],
    title: str,
) -> str:
    """The whole memory.md from the journal events (records, or lines as read) and the
    tree."""
    records = as_records(events)
    ends = [e for e in records if isinstance(e, BlockEnd)]
    starts = [e for e in records if isinstance(e, BlockStart)]
    principles: list[str] = []
    questions: list[str] = []
    rules: list[str] = []
    for e in ends:
        for p in map(plain_text, e.principles or []):
            if p not in principles:
                principles.append(p)
        questions = [plain_text(q) for q in e.open_questions or []]
        for r in map(plain_text, e.new_rules or []):
            if r not in rules:
                rules.append(r)
    lines = [
        f"# Working memory: {title}",
        "",
        "## Regime comparison",
        "",
        "| Block | Field | Frames | Rank 90/99 (centred) | Variant | Best config: held-out R² mean ± SD | Ratio | Nines vs baseline | Node | Width×layers | ω | lr | Steps | Minutes | Key finding |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    start_of = {e.block: e for e in starts}
    lines += [_best_row(tree, e, start_of.get(e.block)) for e in ends] or [
        "| - | - | - | - | - | - | - | - | - | - | - | - | - | - | no block finished yet |"
    ]
    lines += (
        ["", "## Principles", ""]
        + [f"- {p}" for p in principles[-MAX_PRINCIPLES:]]
        + ["", "## Open questions", ""]
    )
    lines += [f"- {q}" for q in questions[:MAX_QUESTIONS]] + ["", "## Rules added by this run", ""]
    lines += [f"- {r}" for r in rules] + ["", "## Previous block summary", ""]
    if ends:
        e = ends[-1]
        lines.append(f"Block {e.block} ({e.field} @ {e.n_frames}): {plain_text(e.summary)}")
    current = starts[-1] if starts and (not ends or starts[-1].block != ends[-1].block) else None
    lines += [""]
    if current is not None:
        b = current.block
        lines += [
            f"## Current block (Block {b}: {current.field} @ {current.n_frames} frames)",
            "",
        ]
        if format_ranks(current.ranks):
            lines += [f"Window {format_ranks(current.ranks)} of the [T, N·C] matrix", ""]
        lines += [
            "### Iterations this block",
            "",
        ]
        nodes = [n for n in tree.block_nodes(b) if not n.pending]
        for n in nodes:
            change = (
                "; ".join(f"{k} {fmt_value(a)}→{fmt_value(c)}" for k, (a, c) in n.mutation.items())
                or "baseline"
            )
            r2 = n.r2
            cls = quality_class(r2, classes) if r2 is not None else n.status
            lines.append(
                f"- iter {n.id} (parent {n.parent or 'root'}, {n.strategy}): {change} → "
                f"R² {r2 if r2 is None else f'{r2:.6f}'} [{cls}], {n.verdict or 'verdict at block end'}"
            )
        lines += ["", "### Emerging observations", ""]
        lines += [f"- iter {n.id}: {plain_text(n.observation)}" for n in nodes if n.observation][
            -10:
        ]
    text_lines = lines
    if len(text_lines) > MAX_LINES:  # keep the head (knowledge) and the latest iterations
        text_lines = [*text_lines[: MAX_LINES - 1], "(truncated to 500 lines)"]
    return "\n".join(text_lines).rstrip() + "\n"
