"""The prompts of ``LLMProposer``: the system prompt (``prompts/system.md``), the batch
prompt (``prompts/batch.md``) with the finished batch's table, comparisons, configs, pending
trials, UCB scores and strategy triggers, the field panels attached to it as PNG images
(``batch_messages``), the retry turn (``retry_messages``) and the review prompt. Rendering
only: no call, no parsing (``llm_client``, ``llm_parse``).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from importlib import resources
from string import Template
from typing import Any

from inr_tune.fileio import open_bytes
from inr_tune.search import strategies
from inr_tune.search.proposers.base import SearchState
from inr_tune.search.proposers.llm_client import Message, ToolCall
from inr_tune.search.proposers.llm_tools import BATCH_TOOL, REVIEW_TOOL
from inr_tune.search.space import SearchSpace, as_config, fmt_value
from inr_tune.search.tree import Node, Tree, format_ucb_scores
from inr_tune.search.verdict import describe_change

__all__ = [
    "MAX_IMAGES",
    "MAX_IMAGE_BYTES",
    "PNG_MAGIC",
    "RETRY_PROMPT",
    "batch_messages",
    "field_images",
    "finished_nodes",
    "mutation_text",
    "render_batch",
    "render_retry",
    "render_review",
    "render_system",
    "retry_messages",
]

MAX_IMAGES = 4
MAX_IMAGE_BYTES = 3_750_000  # 5 MB once base64-encoded: the API's per-image limit
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------- prompts


def _template(name: str) -> Template:
    return Template((resources.files("inr_tune.search") / "prompts" / name).read_text("utf-8"))


RETRY_PROMPT = Template(
    "$n_bad of your proposals were rejected. The errors, verbatim:\n$errors\n\n"
    "$accepted\n"
    "Call $tool again with exactly $n_bad new proposal(s) to replace the rejected ones; "
    "observations may be empty (those of your first answer are kept)."
)

_REVIEW = Template(
    """# Block $block has ended: review it

Field: $field; frames: $n_frames; ucb_c this block: $ucb_c

## Memory (memory.md)

$memory

## This block's nodes

$table

## Block statistics (computed in code)

$stats

## Suggested by the block-end checklist (computed in code)

next ucb_c: $next_c
new rules:
$rules

## Your task

Call $tool with: a summary of the block for memory.md (what was tried and what worked, with numbers); principles learned (short, general, each citing node ids); open questions for the next blocks; next_ucb_c (0.5 to 3.0; the checklist's value unless you have a reason to differ); new rules for this run (only ones not listed already; may be empty).
"""
)


def _lines(items: list[str], empty: str = "(none)", numbered: bool = False) -> str:
    if not items:
        return empty
    if numbered:
        return "\n".join(f"{i}. {s}" for i, s in enumerate(items, 1))
    return "\n".join(f"- {s}" for s in items)


def _cell(text: Any, limit: int = 120) -> str:
    s = " ".join(str(text).split()).replace("|", "/")
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _metric(metrics: Mapping[str, Any], key: str, fmt: str) -> str:
    v = metrics.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return "-"
    return format(v, fmt)


def mutation_text(node: Node) -> str:
    if not node.mutation:
        return "(baseline)"
    return ", ".join(
        f"{k}: {fmt_value(o)} -> {fmt_value(n)}" for k, (o, n) in node.mutation.items()
    )


def _node_table(nodes: list[Node]) -> str:
    """The finished-batch table: one row per node, metrics from ``node.metrics``."""
    if not nodes:
        return "(none: no trial has finished since the last call)"
    head = (
        "| node | parent | mutation | strategy | status | holdout_r2 | final_r2 "
        "| compression_ratio | baseline_r2 | nines_over_baseline | kinograph_R2 "
        "| kinograph_SSIM | training_time | verdict | error |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    )
    rows = []
    for n in nodes:
        m = n.metrics
        secs = _metric(m, "training_time", ".1f")
        rows.append(
            f"| {n.id} | {'root' if n.parent is None else n.parent} | {_cell(mutation_text(n))} "
            f"| {n.strategy} | {n.status} | {_metric(m, 'holdout_r2', '.6f')} "
            f"| {_metric(m, 'final_r2', '.6f')} | {_metric(m, 'compression_ratio', '.1f')} "
            f"| {_metric(m, 'baseline_r2', '.6f')} | {_metric(m, 'nines_over_baseline', '+.2f')} "
            f"| {_metric(m, 'kinograph_R2', '.6f')} | {_metric(m, 'kinograph_SSIM', '.4f')} "
            f"| {secs if secs == '-' else secs + ' s'} "
            f"| {n.verdict or '-'} | {_cell(n.error or '')} |"
        )
    return head + "\n" + "\n".join(rows)


def _comparisons(tree: Tree, nodes: list[Node]) -> str:
    out = []
    for n in nodes:
        ref = tree.reference(n.id)
        if ref is None:
            text = f"baseline R² {n.r2:.6f}" if n.r2 is not None else f"baseline {n.status}"
        else:
            label = "parent" if n.parent is not None else "baseline"
            text = describe_change(n.r2, ref.r2, label)
            if n.r2 is None:
                text = f"{n.status} (no R²); {label} node {ref.id}"
        out.append(f"node {n.id}: {text}")
    return _lines(out)


def _space_values(space: SearchSpace, cfg: Any) -> dict[str, Any]:
    return {name: cfg.get(space.key_of(name)) for name in space.params}


def _config_diffs(state: SearchState) -> str:
    space = state.space
    root = _space_values(space, state.root_config)
    out = []
    for n in sorted(state.tree.block_nodes(state.block), key=lambda n: n.id):
        vals = _space_values(space, as_config(n.config))
        diff = [
            f"{k}={fmt_value(v)}" for k, v in vals.items() if not space.param(k).same(v, root[k])
        ]
        out.append(f"node {n.id}: {', '.join(diff) if diff else '(the root config)'}")
    return _lines(out)


def _classes(classes: Mapping[str, float]) -> str:
    if not classes:
        return "(not given)"
    parts = [
        f"{name} {'>' if i == 0 else '≥'} {fmt_value(bound)}"
        for i, (name, bound) in enumerate(classes.items())
    ]
    return ", ".join(parts) + ", poor below"


def finished_nodes(state: SearchState) -> list[Node]:
    nodes = [state.tree.get(i) for i in state.finished]
    return sorted((n for n in nodes if n is not None and n.finished), key=lambda n: n.id)


def render_system(state: SearchState) -> str:
    """The system prompt: brief, rules, strategy table, space, pins, the run's rules."""
    pinned = [f"{k} = {fmt_value(v)}" for k, v in state.pinned.items()]
    return _template("system.md").substitute(
        brief=state.brief.strip() or "(no brief given)",
        space=state.space.describe(),
        pinned=_lines(pinned),
        rules=_lines(list(state.rules), numbered=True),
    )


def render_batch(state: SearchState, n_slots: int, image_nodes: list[int] | None = None) -> str:
    """The user message of a ``propose`` call (the images follow it as separate blocks)."""
    tree = state.tree
    finished = finished_nodes(state)
    ucb = format_ucb_scores(tree.ucb_scores(state.block, state.ucb_c, state.reward)).strip()
    if not ucb:
        ucb = (
            "(empty: block start. Propose the baseline first (strategy baseline, parent null, "
            "param null, value null), then mutations of the root config with parent null.)"
        )
    triggers = state.triggers()
    trig_lines = [
        f"{t.strategy}: {t.reason}" + (f" (parent {t.parent})" if t.parent is not None else "")
        for t in triggers
    ]
    pending = [
        f"node {n.id} (parent {'root' if n.parent is None else n.parent}, {mutation_text(n)}, {n.strategy})"
        for n in tree.pending(state.block)
    ]
    steering = ""
    if state.user_input.strip():
        steering = (
            "\n## Steering from the user (user_input.md)\n\n"
            f"{state.user_input.strip()}\n\n"
            "Follow it where the rules allow, and acknowledge it in `acknowledgement` "
            "(one or two sentences: what you will do differently).\n"
        )
    if n_slots > 0:
        task = (
            f"Call {BATCH_TOOL} with exactly {n_slots} proposal(s), each a different config, "
            "and one observation for each node of the finished batch table."
        )
    else:
        task = (
            f"No slot is free: call {BATCH_TOOL} with an empty proposals list and one "
            "observation for each node of the finished batch table."
        )
    if image_nodes:
        task += " Field panels (ground truth vs prediction) are attached for nodes " + (
            ", ".join(map(str, image_nodes)) + "; describe each in `visual`."
        )
    root = state.root_config
    return _template("batch.md").substitute(
        block=state.block,
        iter_in_block=state.iter_in_block,
        n_iter_block=state.n_iter_block,
        field=state.field,
        n_frames=state.n_frames,
        classes=_classes(state.classes),
        reward=state.reward,
        ucb_c=fmt_value(state.ucb_c),
        budget=(state.budget or "none")
        + (
            "; a config under it is refused before it runs, so keep every proposal inside it"
            if state.budget and "≥" in state.budget
            else ""
        ),
        memory=state.memory.strip() or "(empty)",
        root=", ".join(f"{k}={fmt_value(v)}" for k, v in _space_values(state.space, root).items()),
        finished=_node_table(finished),
        comparisons=_comparisons(tree, finished),
        configs=_config_diffs(state),
        pending=_lines(pending),
        ucb=ucb,
        triggers=_lines(trig_lines, "(none: exploit the highest-UCB node)"),
        steering=steering,
        task=task,
    )


def render_review(
    state: SearchState, stats: strategies.BlockStats, next_c: float, rules: list[str]
) -> str:
    """The user message of a ``review_block`` call."""
    nodes = sorted(state.tree.block_nodes(state.block), key=lambda n: n.id)
    return _REVIEW.substitute(
        block=state.block,
        field=state.field,
        n_frames=state.n_frames,
        ucb_c=fmt_value(state.ucb_c),
        memory=state.memory.strip() or "(empty)",
        table=_node_table(nodes),
        stats=stats.summary(),
        next_c=fmt_value(next_c),
        rules=_lines(rules),
        tool=REVIEW_TOOL,
    )


def field_images(state: SearchState, limit: int = MAX_IMAGES) -> list[tuple[int, str]]:
    """``(node id, base64 PNG)`` of the finished nodes' field panels (``metrics["field_png"]``).

    Missing, unreadable, non-PNG or oversized files are skipped; at most ``limit``.
    """
    out: list[tuple[int, str]] = []
    for node in finished_nodes(state):
        if len(out) >= limit:
            break
        path = node.metrics.get("field_png")
        if not isinstance(path, str) or not path:
            continue
        try:
            data = open_bytes(path)  # a path, or a URL when results go to an object store
        except OSError:
            continue
        if data.startswith(PNG_MAGIC) and len(data) <= MAX_IMAGE_BYTES:
            out.append((node.id, base64.b64encode(data).decode("ascii")))
    return out


# ----------------------------------------------------------------------------- messages


def batch_messages(state: SearchState, n_slots: int) -> list[Message]:
    """The request of a ``propose`` call: the batch prompt, then each field panel as an
    image after a line naming its node."""
    images = field_images(state)
    content: list[dict[str, Any]] = [
        {"type": "text", "text": render_batch(state, n_slots, [i for i, _ in images])}
    ]
    for node_id, data in images:
        content.append({"type": "text", "text": f"Field panel of node {node_id}:"})
        content.append(
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}
        )
    return [{"role": "user", "content": content}]


def render_retry(state: SearchState, scratch: Tree, errors: list[str], n_bad: int) -> str:
    """The correction asked for ``n_bad`` rejected slots: each error verbatim, and the
    proposals accepted so far (pending nodes of ``scratch`` not in ``state.tree``)."""
    accepted = [
        f"parent {'null' if n.parent is None else n.parent}, {mutation_text(n)} ({n.strategy})"
        for n in scratch.pending(state.block)
        if n.id not in state.tree
    ]
    return RETRY_PROMPT.substitute(
        n_bad=n_bad,
        errors="\n".join(f"- {e}" for e in errors),
        accepted=(
            "Accepted and now pending: " + "; ".join(accepted) + "."
            if accepted
            else "No proposal was accepted."
        ),
        tool=BATCH_TOOL,
    )


def retry_messages(messages: list[Message], answer: ToolCall, text: str) -> list[Message]:
    """The conversation continued: the model's answer, then a ``tool_result`` with
    ``is_error: true`` holding ``text``."""
    result = {"type": "tool_result", "tool_use_id": answer.id, "is_error": True, "content": text}
    return [*messages, answer.turn(), {"role": "user", "content": [result]}]
