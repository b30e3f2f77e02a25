"""``analysis.md``: one entry per finished trial, user input, and block summaries.

Rendered from the journal (the source of truth) in journal order, so entries appear in
the order things happened and an entry, once written, never changes: the file only
grows. It is rewritten atomically (``fileio.write_durable``) after each event. Free text (hypotheses, observations,
errors, remarks, the review) is rendered as one line of plain text (``plain_text``), so
it cannot forge an entry or a heading, nor put control characters in the file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from inr_tune.journal import (
    BatchAdded,
    BlockEnd,
    BlockStart,
    Event,
    NodeCompleted,
    NodeNoted,
    ProposerRemarks,
    UserInput,
    as_records,
)
from inr_tune.metrics import quality_class
from inr_tune.search.proposers.text import one_line, plain_text
from inr_tune.search.space import MULTI_PARAM_STRATEGIES, fmt_value
from inr_tune.search.tree import Tree

__all__ = ["CONFIG_KEYS", "config_line", "render_analysis"]

CONFIG_KEYS = (
    ("model", "inr_type"),
    ("training", "lr"),
    ("training", "total_steps"),
    ("model", "hidden_dim"),
    ("model", "n_layers"),
    ("model", "omega"),
    ("training", "batch_size"),
    ("training", "points_per_step"),
    ("model", "t_period"),
    ("model", "xy_period"),
    ("model", "rank"),
    ("model", "basis"),
    ("model", "basis_hidden_dim"),
)
PARENT_RULES = {
    "baseline": "the block's starting config, unchanged",
    "exploit": "highest UCB node",
    "explore": "a node outside the recent chain",
    "failure-probe": "push a parameter to its boundary after a run of successes",
    "recombine": "higher of two good distant nodes, adopting the other's best value",
    "forced-branch": "second-best UCB node, another dimension",
    "switch-param": "the same parameter was mutated too often",
    "robustness-test": "re-run a good config with a new seed",
    "stochastic-field": "seed spread > 0.1: try stabilising the training",
    "variant-sweep": "best node, a model family the block has not tried yet",
    "random": "the block's root config; every free parameter drawn at random from the space",
    "tpe": "the block's root config; every free parameter suggested by Optuna's TPE",
}


def _num(value: Any, digits: int = 5) -> str:
    if value is None:
        return "nan"
    if isinstance(value, float):
        if abs(value) >= 1e4 or (0 < abs(value) < 1e-3):
            return f"{value:.2E}"
        return f"{value:.{digits}g}"
    return str(value)


def _signed(value: Any) -> str:
    return f"{value:+.2f}" if isinstance(value, (int, float)) else "nan"


FACTORIZED_KEYS = {"rank", "basis", "basis_hidden_dim"}


def config_line(config: Mapping[str, Any]) -> str:
    parts = []
    factorized = config.get("model", {}).get("inr_type") == "factorized"
    for section, key in CONFIG_KEYS:
        if key in FACTORIZED_KEYS and not factorized:
            continue
        if key == "basis_hidden_dim" and config.get("model", {}).get("basis") != "siren":
            continue
        value = config.get(section, {}).get(key)
        if value is not None:
            parts.append(f"{key}={fmt_value(value)}")
    return ", ".join(parts)


def _entry(tree: Tree, node_id: int, classes: Mapping[str, float], next_parent: Any) -> list[str]:
    n = tree[node_id]
    m = n.metrics or {}
    r2 = n.r2
    label = (
        n.status
        if n.status != "ok"
        else quality_class(r2 if r2 is not None else float("nan"), classes)
    )
    ref = tree.reference(n.id)
    good = min(classes.values()) if classes else 0.9
    mode = "success-exploit" if ref is not None and (ref.r2 or 0) >= good else "failure-probe"
    if n.strategy == "baseline":
        mode = "baseline"
    elif n.strategy in MULTI_PARAM_STRATEGIES:  # a whole config drawn by --searcher random|tpe
        mode = "drawn"
    lines = [
        f"## Iter {n.id}: {label}",
        f"Node: id={n.id}, parent={n.parent if n.parent is not None else 'root'}",
        f"Mode/Strategy: {mode}/{n.strategy}",
        f"Config: {config_line(n.config)}",
    ]
    if n.status in ("ok", "early_stopped"):
        t = m.get("training_time")
        lines.append(
            "Metrics: "
            + ", ".join(
                [
                    f"holdout_r2={_num(m.get('holdout_r2'), 6)}",
                    f"final_r2={_num(m.get('final_r2'), 6)}",
                    f"final_mse={_num(m.get('final_mse'))}",
                    f"slope={_num(m.get('slope'), 4)}",
                    f"kinograph_R2={_num(m.get('kinograph_R2'), 5)}",
                    f"kinograph_SSIM={_num(m.get('kinograph_SSIM'), 4)}",
                    f"total_params={m.get('total_params')}",
                    f"compression_ratio={_num(m.get('compression_ratio'), 4)}",
                    f"training_time={t / 60:.2f}min"
                    if isinstance(t, (int, float))
                    else "training_time=nan",
                ]
            )
        )
        if m.get("compression_ratio") is not None:
            lines.append(
                f"Size: compression_ratio={_num(m.get('compression_ratio'), 4)}, "
                f"bits_per_value={_num(m.get('bits_per_value'), 3)}, "
                f"baseline_r2={_num(m.get('baseline_r2'), 6)} ({m.get('baseline_method') or '-'}), "
                f"nines_over_baseline={_signed(m.get('nines_over_baseline'))}"
            )
        budget = []
        if m.get("schedule_shortened"):
            budget.append(
                f"schedule shortened to {m.get('steps_planned')} of {m.get('total_steps')} "
                "steps to fit training.max_minutes"
            )
        if m.get("budget_cut"):
            budget.append(f"cut by training.max_minutes after {m.get('steps_done')} steps")
        if budget:
            lines.append("Budget: " + "; ".join(budget))
        if m.get("partial"):
            lines.append(
                f"Partial: stopped early by ASHA after {m.get('steps_done')} steps"
                + (f"; {m['partial_reason']}" if m.get("partial_reason") else "")
            )
    else:
        lines.append(f"Error: {plain_text(n.error)}")
    data = n.config.get("data", {})
    lines.append(
        f"Field: field_name={data.get('field')}, inr_type={n.config.get('model', {}).get('inr_type')}, "
        f"n_frames={data.get('n_frames')}"
    )
    if n.mutation:
        lines.append(
            "Mutation: "
            + (
                f"{len(n.mutation)} params from the "
                f"{'root config' if n.parent is None else f'parent (node {n.parent})'}: "
                if len(n.mutation) > 1
                else ""
            )
            + "; ".join(
                f"{k}: {fmt_value(a)} -> {fmt_value(b)}" for k, (a, b) in n.mutation.items()
            )
        )
    else:
        lines.append("Mutation: none (baseline)")
    lines.append(f"Parent rule: {PARENT_RULES.get(n.strategy, n.strategy)}")
    lines.append(f"Hypothesis: {plain_text(n.hypothesis) or '-'}")
    if n.verdict is None:
        lines.append("Verdict: pending (computed once, when the block ends)")
    else:
        lines.append(f"Verdict: {n.verdict}" + (f" ({n.verdict_basis})" if n.verdict_basis else ""))
    if plain_text(n.visual):
        lines.append(f"Visual: {plain_text(n.visual)}")
    if plain_text(n.observation):
        lines.append(f"Observation: {plain_text(n.observation)}")
    lines.append(f"Next: parent={next_parent if next_parent is not None else 'root'}")
    return lines


def render_analysis(
    events: Iterable[Event | Mapping[str, Any]],
    tree: Tree,
    classes: Mapping[str, float],
    title: str,
) -> str:
    """The whole analysis.md from the journal events (records, or lines as read) and the
    (final) tree."""
    records = as_records(events)
    out = [f"# Analysis log: {title}", ""]
    next_parent: dict[int, Any] = {}
    for e in records:
        if isinstance(e, NodeNoted) and e.next_parent is not None:
            next_parent[e.node_id] = e.next_parent
    # A finished trial's entry is written once its notes are final: at the next batch or
    # at the block's end (the proposer comments on a batch when it plans the next one).
    waiting: list[int] = []

    def flush() -> None:
        # Entries in node order, each with the UCB choice once the whole group is in: the
        # order in which parallel trials finish varies from run to run (and between a
        # killed-and-resumed run and an uninterrupted one) and changes neither.
        chosen = next_parent.get(waiting[-1]) if waiting else None
        for node_id in sorted(waiting):
            out.extend([*_entry(tree, node_id, classes, chosen), ""])
        waiting.clear()

    for e in records:
        if isinstance(e, (BatchAdded, BlockEnd)):
            flush()
        if isinstance(e, BlockStart):
            out += [
                f"# Block {e.block}: {e.field} @ {e.n_frames} frames",
                "",
                f"Root config: {config_line(e.root_config)}",
                f"ucb_c: {e.ucb_c}",
                "",
            ]
        elif isinstance(e, NodeCompleted) and e.node_id in tree:
            waiting.append(e.node_id)
        elif isinstance(e, UserInput):
            quoted = [f"> {one_line(line)}" for line in str(e.text).splitlines()]
            out += ["## User input", "", *quoted, ""]
            if e.pins:
                out.append(
                    "Acknowledged: pinned "
                    + ", ".join(f"{k}={fmt_value(v)}" for k, v in e.pins.items())
                    + " for all later proposals."
                )
            else:
                out.append("Acknowledged: passed to the proposer before the next batch.")
            for problem in e.problems:
                out.append(f"Not applied: {plain_text(problem)}")
            out.append("")
        elif isinstance(e, ProposerRemarks) and e.remarks:
            out += [f"Proposer: {plain_text(r)}" for r in e.remarks] + [""]
        elif isinstance(e, BlockEnd):
            out += [
                f"## Block {e.block} summary ({e.field} @ {e.n_frames} frames)",
                "",
                f"Best node: {e.best}",
                "",
                plain_text(e.summary),
                "",
            ]
            if e.principles:
                out += ["Principles:", *[f"- {plain_text(p)}" for p in e.principles], ""]
            if e.open_questions:
                out += ["Open questions:", *[f"- {plain_text(q)}" for q in e.open_questions], ""]
            out.append(f"Next ucb_c: {e.next_ucb_c}")
            if e.new_rules:
                out += [
                    "Rules added for this run:",
                    *[f"- {plain_text(r)}" for r in e.new_rules],
                ]
            out.append("")
    return "\n".join(out).rstrip() + "\n"
