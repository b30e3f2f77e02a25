"""Claude as a proposer: the Messages API with one forced tool, strict parsing, fallback.

``LLMProposer.propose`` renders the prompt (``prompts/system.md``, ``prompts/batch.md``),
attaches the finished batch's field panels as PNG images and forces the tool
``submit_batch`` (``batch_tool``). The tool input is data: each proposal is read field by
field (never evaluated) and checked with ``check_proposal`` against a scratch copy of the
tree, so two proposals of one batch cannot repeat each other. Then:

1. Proposals that fail are retried once, in the same conversation: the assistant's
   ``tool_use`` is followed by a ``tool_result`` with ``is_error: true`` that quotes each
   error verbatim and asks for exactly that many replacements.
2. Slots still empty (rejected twice, or never answered) are filled by
   ``fallback.propose`` on the state with the accepted proposals added as pending nodes.
3. API errors (429, 529, 5xx, connection) and timeouts are retried by the SDK
   (``max_retries``, with backoff); if they persist, or the answer has no tool call or is
   not JSON, the whole batch comes from the fallback.

A proposal names one ``param`` and its new ``value``, so a multi-parameter mutation cannot be
expressed; the block's baseline is the one proposal with ``param`` and ``value`` null
(strategy ``baseline``, parent null; its ``expect`` is dropped, as it has no reference).
``latency_s`` of a call includes the SDK's own retries; ``attempt`` 2 is the retry turn.

``propose`` never raises for API or parsing problems. Observations become ``NodeNote``s for
the finished nodes of ``state.finished`` only; a finished node the model did not comment
on gets the computed observation (``rule.observation``). The user's steering text is
acknowledged in ``ProposalBatch.remarks`` as ``"acknowledgement: ..."``.

``review_block`` forces ``submit_review`` (``review_tool``); the prompt holds the
code-computed ``strategies.block_stats`` and ``strategies.review`` suggestion, and any
failure falls back to ``Proposer.review_block``. The review's summary starts with the
computed statistics, then the model's text; ``next_ucb_c`` is clamped to 0.5..3.0.

Every call is logged as ``log("llm_call", purpose, model, latency_s, input_tokens,
output_tokens, outcome, attempt, response_file, error)``; fallbacks as
``log("llm_fallback", slots, reason)``. With ``run_dir`` the full answer (the response
JSON or the error text) and the request (images elided) go to ``run_dir/llm/call_NNN.json``.
The API key and request headers are never written or logged: the key lives only inside
the SDK client, and every text written is scrubbed of it.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, Any

from inr_tune.errors import ProposalError
from inr_tune.search import strategies
from inr_tune.search.proposers.base import (
    BlockReview,
    NodeNote,
    Proposal,
    ProposalBatch,
    Proposer,
    SearchState,
    admit,
    taken_configs,
)
from inr_tune.search.proposers.rule import RuleProposer, observation
from inr_tune.search.space import SearchSpace, as_config, fmt_value
from inr_tune.search.storage import open_bytes
from inr_tune.search.tree import Node, Tree, format_ucb_scores
from inr_tune.search.verdict import describe_change

if TYPE_CHECKING:
    import anthropic

__all__ = [
    "BATCH_TOOL",
    "REVIEW_TOOL",
    "LLMProposer",
    "batch_tool",
    "field_images",
    "render_batch",
    "render_review",
    "render_system",
    "review_tool",
]

BATCH_TOOL = "submit_batch"
REVIEW_TOOL = "submit_review"
EXPECT_VALUES = ("improve", "worsen", "same")
MAX_IMAGES = 4
MAX_IMAGE_BYTES = 3_750_000  # 5 MB once base64-encoded: the API's per-image limit
MAX_TEXT = 4000  # characters kept of one hypothesis, observation or review entry
MAX_ITEMS = 12  # entries kept of each review list
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

Log = Callable[..., Any]


# ----------------------------------------------------------------------------- tools


def batch_tool(space: SearchSpace) -> dict[str, Any]:
    """The ``submit_batch`` tool: observations, proposals and the acknowledgement.

    One proposal = one parameter (``param``, an enum of the space's names) and its new
    ``value``; the baseline has ``param`` and ``value`` null. The schema follows the strict
    tool-use rules (every object closed, every property required, nulls as ``anyOf``
    branches, no numeric bounds: the space's ranges are in the system prompt and are
    checked in code).
    """

    def obj(props: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": props,
            "required": list(props),
            "additionalProperties": False,
        }

    observation_item = obj(
        {
            "node_id": {"type": "integer", "description": "a node of the finished batch"},
            "observation": {
                "type": "string",
                "description": "what the result shows, with numbers; no verdict",
            },
            "visual": {
                "type": "string",
                "description": "remark on the node's field panel; empty if none is attached",
            },
        }
    )
    proposal_item = obj(
        {
            "parent": {
                "anyOf": [{"type": "integer"}, {"type": "null"}],
                "description": "a finished node of the current block, or null for the root config",
            },
            "param": {
                "anyOf": [{"type": "string", "enum": list(space.params)}, {"type": "null"}],
                "description": "the one parameter to change; null only for the baseline",
            },
            "value": {
                "anyOf": [
                    {"type": "number"},
                    {"type": "string"},
                    {"type": "boolean"},
                    {"type": "null"},
                ],
                "description": "its new value, inside the allowed space; null for the baseline",
            },
            "strategy": {"type": "string", "enum": list(strategies.STRATEGIES)},
            "hypothesis": {
                "type": "string",
                "description": "why this change, and what it should do to final_r2",
            },
            "expect": {"type": "string", "enum": list(EXPECT_VALUES)},
        }
    )
    return {
        "name": BATCH_TOOL,
        "description": (
            "Submit observations on the finished trials and the next trials to run "
            "(one parameter change per trial)."
        ),
        "strict": True,
        "input_schema": obj(
            {
                "observations": {"type": "array", "items": observation_item},
                "proposals": {"type": "array", "items": proposal_item},
                "acknowledgement": {
                    "type": "string",
                    "description": "reply to the user's steering text; empty if there is none",
                },
            }
        ),
    }


def review_tool() -> dict[str, Any]:
    """The ``submit_review`` tool: the block-end review for memory.md."""
    strings = {"type": "array", "items": {"type": "string"}}
    props: dict[str, Any] = {
        "summary": {"type": "string", "description": "the block in a paragraph, with numbers"},
        "principles": {**strings, "description": "general lessons, each citing node ids"},
        "open_questions": {**strings, "description": "questions for the next blocks"},
        "next_ucb_c": {"type": "number", "description": "UCB exploration constant, 0.5 to 3.0"},
        "new_rules": {**strings, "description": "rules to add to this run's rule list"},
    }
    return {
        "name": REVIEW_TOOL,
        "description": "Submit the review of the block that just ended.",
        "strict": True,
        "input_schema": {
            "type": "object",
            "properties": props,
            "required": list(props),
            "additionalProperties": False,
        },
    }


# ----------------------------------------------------------------------------- prompts


def _template(name: str) -> Template:
    return Template((resources.files("inr_tune.search") / "prompts" / name).read_text("utf-8"))


_RETRY = Template(
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


def _mutation(node: Node) -> str:
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
            f"| {n.id} | {'root' if n.parent is None else n.parent} | {_cell(_mutation(n))} "
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


def _finished_nodes(state: SearchState) -> list[Node]:
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
    finished = _finished_nodes(state)
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
        f"node {n.id} (parent {'root' if n.parent is None else n.parent}, {_mutation(n)}, {n.strategy})"
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
    for node in _finished_nodes(state):
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


# ----------------------------------------------------------------------------- parsing


def _text(value: Any, limit: int = MAX_TEXT) -> str:
    s = value.strip() if isinstance(value, str) else ""
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _show(value: Any) -> str:
    """A model-supplied value, shown as JSON (at most 60 characters) in an error."""
    try:
        s = json.dumps(value, default=str)
    except ValueError:
        s = repr(value)
    return s if len(s) <= 60 else s[:59] + "…"


def _proposal(item: Any) -> Proposal:
    """One ``proposals`` entry as a Proposal; ProposalError if its shape is wrong.

    ``param`` null means an empty mutation (the baseline); a baseline's ``expect`` is
    dropped (it has no reference to be compared with).
    """
    if not isinstance(item, Mapping):
        raise ProposalError(f"a proposal must be an object, got {_show(item)}")
    missing = [k for k in ("parent", "param", "value", "strategy", "hypothesis") if k not in item]
    if missing:
        raise ProposalError(
            f"proposal is missing {', '.join(missing)}; give parent, param, value, strategy, "
            "hypothesis and expect"
        )
    param, value = item["param"], item["value"]
    if param is not None and not isinstance(param, str):
        raise ProposalError(f"param must be a parameter name or null, got {_show(param)}")
    if isinstance(value, (list, dict)):
        raise ProposalError(
            f"value must be one number, string, boolean or null, got {_show(value)}"
        )
    hypothesis = item["hypothesis"]
    if not isinstance(hypothesis, str) or not hypothesis.strip():
        raise ProposalError("hypothesis is empty: say what the change should do and why")
    strategy = item["strategy"]
    expect = item.get("expect")
    if strategy == "baseline":
        expect = None
    return Proposal(
        parent=item["parent"],
        mutation={} if param is None else {param: value},
        strategy=strategy if isinstance(strategy, str) else _show(strategy),
        hypothesis=_text(hypothesis),
        expect=expect,
    )


def _describe_item(i: int, item: Any) -> str:
    if not isinstance(item, Mapping):
        return f"proposal {i}"
    parts = [f"parent={_show(item.get('parent'))}"]
    if item.get("param") is not None:
        parts.append(f"{_show(item.get('param')).strip(chr(34))}={_show(item.get('value'))}")
    parts.append(f"strategy={_show(item.get('strategy'))}")
    return f"proposal {i} ({', '.join(parts)})"


def _finite_json(value: Any) -> Any:
    """JSON-safe copy for echoing the model's input back: NaN/inf become strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _finite_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_json(v) for v in value]
    return value


def _assistant_content(message: Any) -> list[dict[str, Any]]:
    """The answer's text and tool_use blocks as request params (for the retry turn)."""
    out: list[dict[str, Any]] = []
    for block in message.content:
        if block.type == "text":
            out.append({"type": "text", "text": block.text})
        elif block.type == "tool_use":
            out.append(
                {
                    "type": "tool_use",
                    "id": block.id,
                    "name": block.name,
                    "input": _finite_json(block.input),
                }
            )
    return out


def _tool_use(message: Any, name: str) -> Any | None:
    for block in getattr(message, "content", None) or []:
        if getattr(block, "type", None) == "tool_use" and getattr(block, "name", None) == name:
            return block
    return None


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where} must be a list of strings")
    out = [_text(v) for v in value]
    return [v for v in out if v][:MAX_ITEMS]


# ----------------------------------------------------------------------------- calls


@dataclass
class _Call:
    """One Messages API request and what came of it."""

    purpose: str
    attempt: int
    latency_s: float
    message: Any | None = None  # anthropic.types.Message
    outcome: str = "ok"
    error: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None


class LLMProposer(Proposer):
    """Proposals and reviews from Claude through the Messages API (module docstring)."""

    name = "llm"

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 2,
        fallback: Proposer | None = None,
        run_dir: Path | None = None,
        log: Log | None = None,
        max_tokens: int = 4096,
    ) -> None:
        """``api_key`` defaults to ``ANTHROPIC_API_KEY``, else ``ANTHROPIC_AUTH_TOKEN`` (sent
        as a bearer token); ``base_url`` to ``ANTHROPIC_BASE_URL`` (read by the SDK).
        ``timeout_s`` bounds one HTTP attempt; ``max_retries`` is the SDK's retry count on
        429/529/5xx/timeouts. ``fallback`` (default ``RuleProposer(seed=0)``) fills the
        slots the model could not; ``run_dir``/``llm`` keeps every answer; ``log(event,
        **fields)`` receives the ``llm_call`` and ``llm_fallback`` events."""
        if not isinstance(model, str) or not model.strip():
            raise ValueError("model must be a model name such as 'claude-sonnet-4-5'")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0 seconds, got {timeout_s}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be ≥ 0, got {max_retries}")
        if max_tokens <= 0:
            raise ValueError(f"max_tokens must be > 0, got {max_tokens}")
        self.model = model
        self.fallback = fallback if fallback is not None else RuleProposer(seed=0)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.max_tokens = int(max_tokens)
        self._log = log
        self._n_written: int | None = None
        auth_token = None
        if api_key is None:
            api_key = os.environ.get("ANTHROPIC_API_KEY") or None
            if api_key is None:
                auth_token = os.environ.get("ANTHROPIC_AUTH_TOKEN") or None
        import anthropic  # here, not at module level: the SDK takes seconds to import

        # The key lives only inside the client (never on this object, in a file or a log).
        self._client: anthropic.Anthropic = anthropic.Anthropic(
            api_key=api_key,
            auth_token=auth_token,
            base_url=base_url,
            timeout=float(timeout_s),
            max_retries=int(max_retries),
        )

    # ------------------------------------------------------------------ propose

    def propose(self, state: SearchState, n_slots: int) -> ProposalBatch:
        """Up to ``n_slots`` checked proposals and notes on ``state.finished``."""
        n_slots = max(0, int(n_slots))
        finished = _finished_nodes(state)
        if n_slots == 0 and not finished:
            return ProposalBatch()
        images = field_images(state)
        content: list[dict[str, Any]] = [
            {"type": "text", "text": render_batch(state, n_slots, [i for i, _ in images])}
        ]
        for node_id, data in images:
            content.append({"type": "text", "text": f"Field panel of node {node_id}:"})
            content.append(
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": data},
                }
            )
        system = render_system(state)
        messages: list[dict[str, Any]] = [{"role": "user", "content": content}]
        tool = batch_tool(state.space)

        call = self._call("propose", 1, system, messages, tool)
        block = self._tool_block(call, BATCH_TOOL)
        if block is None:
            self._finish(call, system, messages)
            return self._fallback_all(state, n_slots, call)

        scratch = state.tree.copy()
        taken = taken_configs(scratch)
        tool_input = block.input
        items, errors = self._read_items(tool_input)
        accepted: list[Proposal] = []
        for i, item in enumerate(items[:n_slots], 1):
            try:
                accepted.append(self._commit(state, scratch, taken, _proposal(item)))
            except ProposalError as err:
                errors.append(f"{_describe_item(i, item)}: {err}")
        if items or not errors:
            n_bad, n_missing = len(errors), max(0, n_slots - len(items))
        else:  # no proposals list at all: every slot is retried
            n_bad, n_missing = n_slots, 0
        extra = max(0, len(items) - n_slots)
        call.outcome = "invalid" if errors else "ok"
        call.error = "; ".join(errors) or None
        self._finish(call, system, messages)

        batch = ProposalBatch(notes=self._notes(state, tool_input, finished))
        ack = _text(tool_input.get("acknowledgement")) if isinstance(tool_input, dict) else ""
        if state.user_input.strip() and ack:
            batch.remarks.append(f"acknowledgement: {ack}")
        if extra:
            batch.remarks.append(
                f"the model proposed {len(items)} trials for {n_slots} slots; "
                f"the last {extra} were ignored"
            )

        reasons: list[str] = []
        if n_bad:
            retried, still = self._retry(
                state, scratch, taken, system, messages, call, errors, n_bad
            )
            accepted += retried
            if still:
                reasons.append(still)
        if n_missing:
            reasons.append(f"the model proposed {len(items)} of {n_slots} trials")
        left = n_slots - len(accepted)
        if left > 0:
            reason = "; ".join(reasons) or "too few valid proposals"
            accepted += self._fill(state, scratch, taken, left, reason)
        batch.proposals = accepted
        return batch

    def _read_items(self, tool_input: Any) -> tuple[list[Any], list[str]]:
        """The ``proposals`` list of a tool input, or ``[]`` and the error quoting why not."""
        if not isinstance(tool_input, dict):
            return [], [f"the {BATCH_TOOL} input must be an object, got {_show(tool_input)}"]
        items = tool_input.get("proposals")
        if not isinstance(items, list):
            return [], [f"the {BATCH_TOOL} input has no proposals list"]
        return items, []

    def _commit(
        self, state: SearchState, scratch: Tree, taken: dict[str, int], proposal: Proposal
    ) -> Proposal:
        """``check_proposal`` on the scratch tree; add the accepted one as a pending node."""
        return admit(state, scratch, taken, proposal)

    def _retry(
        self,
        state: SearchState,
        scratch: Tree,
        taken: dict[str, int],
        system: str,
        messages: list[dict[str, Any]],
        first: _Call,
        errors: list[str],
        n_bad: int,
    ) -> tuple[list[Proposal], str]:
        """One more turn for ``n_bad`` rejected slots; (accepted, reason the rest failed)."""
        assert first.message is not None
        block = _tool_use(first.message, BATCH_TOOL)
        accepted_now = [
            f"parent {'null' if n.parent is None else n.parent}, {_mutation(n)} ({n.strategy})"
            for n in scratch.pending(state.block)
            if n.id not in state.tree
        ]
        text = _RETRY.substitute(
            n_bad=n_bad,
            errors="\n".join(f"- {e}" for e in errors),
            accepted=(
                "Accepted and now pending: " + "; ".join(accepted_now) + "."
                if accepted_now
                else "No proposal was accepted."
            ),
            tool=BATCH_TOOL,
        )
        follow = [
            *messages,
            {"role": "assistant", "content": _assistant_content(first.message)},
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": block.id,
                        "is_error": True,
                        "content": text,
                    }
                ],
            },
        ]
        call = self._call("retry", 2, system, follow, batch_tool(state.space))
        found = self._tool_block(call, BATCH_TOOL)
        if found is None:
            self._finish(call, system, follow)
            return (
                [],
                f"retry failed ({call.outcome}: {call.error}); first errors: {'; '.join(errors)}",
            )
        items, still = self._read_items(found.input)
        accepted: list[Proposal] = []
        for i, item in enumerate(items[:n_bad], 1):
            try:
                accepted.append(self._commit(state, scratch, taken, _proposal(item)))
            except ProposalError as err:
                still.append(f"{_describe_item(i, item)}: {err}")
        if len(items) < n_bad and not still:
            still.append(f"the retry proposed {len(items)} of {n_bad} trials")
        call.outcome = "invalid" if still else "ok"
        call.error = "; ".join(still) or None
        self._finish(call, system, follow)
        return accepted, ("still rejected after the retry: " + "; ".join(still)) if still else ""

    def _fill(
        self, state: SearchState, scratch: Tree, taken: dict[str, int], k: int, reason: str
    ) -> list[Proposal]:
        """``k`` slots from the fallback, on the state with the accepted ones pending."""
        self._emit("llm_fallback", slots=k, reason=reason)
        more = self.fallback.propose(dataclasses.replace(state, tree=scratch, finished=[]), k)
        out = []
        for p in more.proposals[:k]:
            try:
                out.append(self._commit(state, scratch, taken, p))
            except ProposalError:
                continue
        return out

    def _fallback_all(self, state: SearchState, n_slots: int, call: _Call) -> ProposalBatch:
        self._emit("llm_fallback", slots=n_slots, reason=f"{call.outcome}: {call.error}")
        return self.fallback.propose(state, n_slots)

    def _notes(self, state: SearchState, tool_input: Any, finished: list[Node]) -> list[NodeNote]:
        """The model's observations on ``finished`` nodes; computed ones for the others."""
        wanted = {n.id: n for n in finished}
        raw = tool_input.get("observations") if isinstance(tool_input, dict) else None
        notes: dict[int, NodeNote] = {}
        dropped: list[str] = []
        for item in raw if isinstance(raw, list) else []:
            node_id = item.get("node_id") if isinstance(item, dict) else None
            text = _text(item.get("observation")) if isinstance(item, dict) else ""
            if isinstance(node_id, bool) or not isinstance(node_id, int):
                dropped.append(f"observation without a node id: {_show(item)}")
            elif node_id not in wanted:
                dropped.append(f"node {node_id} is not a finished node of this batch")
            elif node_id in notes:
                dropped.append(f"node {node_id}: second observation ignored")
            elif not text:
                dropped.append(f"node {node_id}: empty observation")
            else:
                visual = _text(item.get("visual")) or None
                notes[node_id] = NodeNote(node_id, text, visual)
        if dropped:
            self._emit("llm_notes_dropped", reasons=dropped)
        for node_id, node in wanted.items():
            if node_id not in notes:
                notes[node_id] = NodeNote(node_id, observation(state.tree, node, state.classes))
        return [notes[i] for i in sorted(notes)]

    # ------------------------------------------------------------------ review

    def review_block(self, state: SearchState) -> BlockReview:
        """The model's review; ``Proposer.review_block`` when the call or its answer fails."""
        stats = strategies.block_stats(state.tree, state.block, state.reward)
        next_c, rules = strategies.review(stats, state.ucb_c)
        system = render_system(state)
        messages: list[dict[str, Any]] = [
            {"role": "user", "content": render_review(state, stats, next_c, rules)}
        ]
        call = self._call("review", 1, system, messages, review_tool())
        block = self._tool_block(call, REVIEW_TOOL)
        review = None
        if block is not None:
            try:
                review = self._read_review(block.input, stats, state)
            except (ValueError, TypeError) as err:
                call.outcome, call.error = "invalid", str(err)
        self._finish(call, system, messages)
        if review is None:
            self._emit("llm_fallback", slots=0, reason=f"review {call.outcome}: {call.error}")
            return super().review_block(state)
        return review

    @staticmethod
    def _read_review(raw: Any, stats: strategies.BlockStats, state: SearchState) -> BlockReview:
        if not isinstance(raw, dict):
            raise ValueError(f"the {REVIEW_TOOL} input must be an object")
        summary = _text(raw.get("summary"))
        if not summary:
            raise ValueError("summary is empty")
        c = raw.get("next_ucb_c")
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not math.isfinite(c):
            raise ValueError(f"next_ucb_c must be a number, got {_show(c)}")
        lo, hi = strategies.UCB_C_RANGE
        new_rules = _strings(raw.get("new_rules"), "new_rules")
        return BlockReview(
            summary=f"{stats.summary()} {summary}",
            principles=_strings(raw.get("principles"), "principles"),
            open_questions=_strings(raw.get("open_questions"), "open_questions"),
            next_ucb_c=round(min(hi, max(lo, float(c))), 3),
            new_rules=[r for r in dict.fromkeys(new_rules) if r not in state.rules],
        )

    # ------------------------------------------------------------------ plumbing

    def close(self) -> None:
        self._client.close()

    def _call(
        self,
        purpose: str,
        attempt: int,
        system: str,
        messages: list[dict[str, Any]],
        tool: dict[str, Any],
    ) -> _Call:
        """One ``messages.create`` with the tool forced; API and parse errors are caught."""
        import anthropic

        start = time.monotonic()
        call = _Call(purpose, attempt, 0.0)
        try:
            call.message = self._client.messages.create(
                model=self.model,
                max_tokens=self.max_tokens,
                system=system,
                messages=messages,  # type: ignore[arg-type]
                tools=[tool],  # type: ignore[list-item]
                tool_choice={"type": "tool", "name": tool["name"]},
            )
        except anthropic.APITimeoutError as err:
            call.outcome, call.error = "timeout", f"{type(err).__name__}: {err}"
        except anthropic.APIConnectionError as err:
            call.outcome, call.error = "connection_error", f"{type(err).__name__}: {err}"
        except anthropic.APIStatusError as err:
            call.outcome, call.error = "api_error", f"{type(err).__name__}: {err}"
        except (anthropic.AnthropicError, ValueError) as err:  # bad JSON, bad response shape
            call.outcome, call.error = "malformed", f"{type(err).__name__}: {err}"
        call.latency_s = round(time.monotonic() - start, 3)
        usage = getattr(call.message, "usage", None)
        call.input_tokens = getattr(usage, "input_tokens", None)
        call.output_tokens = getattr(usage, "output_tokens", None)
        return call

    @staticmethod
    def _tool_block(call: _Call, name: str) -> Any | None:
        """The answer's call of tool ``name``; None (and the outcome set) if there is none."""
        if call.message is None:
            return None
        block = _tool_use(call.message, name)
        if block is None:
            kinds = [getattr(b, "type", "?") for b in getattr(call.message, "content", None) or []]
            call.outcome = "no_tool_use"
            call.error = f"the answer did not call {name} (content: {', '.join(kinds) or 'none'})"
        return block

    def _finish(self, call: _Call, system: str, messages: list[dict[str, Any]]) -> None:
        """Keep the answer in ``run_dir/llm`` and log the call."""
        response_file = self._write(call, system, messages)
        self._emit(
            "llm_call",
            purpose=call.purpose,
            model=self.model,
            latency_s=call.latency_s,
            input_tokens=call.input_tokens,
            output_tokens=call.output_tokens,
            outcome=call.outcome,
            attempt=call.attempt,
            response_file=response_file,
            error=call.error,
        )

    def _write(self, call: _Call, system: str, messages: list[dict[str, Any]]) -> str | None:
        if self.run_dir is None:
            return None
        folder = self.run_dir / "llm"
        folder.mkdir(parents=True, exist_ok=True)
        if self._n_written is None:
            found = [re.fullmatch(r"call_(\d+)\.json", p.name) for p in folder.iterdir()]
            self._n_written = max((int(m.group(1)) for m in found if m), default=0)
        self._n_written += 1
        name = f"call_{self._n_written:03d}.json"
        response = None
        if call.message is not None:
            response = json.loads(call.message.model_dump_json())
        record = {
            "purpose": call.purpose,
            "attempt": call.attempt,
            "model": self.model,
            "outcome": call.outcome,
            "latency_s": call.latency_s,
            "error": call.error,
            "response": response,
            "request": {"system": system, "messages": _elide_images(messages)},
        }
        text = json.dumps(self._scrub(_finite_json(record)), indent=1, ensure_ascii=False)
        tmp = folder / f".{name}.tmp"
        tmp.write_text(text + "\n", encoding="utf-8")
        os.replace(tmp, folder / name)
        return f"llm/{name}"

    def _emit(self, event: str, **fields: Any) -> None:
        if self._log is not None:
            self._log(event, **self._scrub(fields))

    def _scrub(self, value: Any) -> Any:
        """``value`` with every occurrence of the API key or token replaced."""
        secrets = [
            s for s in (self._client.api_key, self._client.auth_token) if isinstance(s, str) and s
        ]
        if not secrets:
            return value

        def clean(v: Any) -> Any:
            if isinstance(v, str):
                for s in secrets:
                    v = v.replace(s, "[redacted]")
                return v
            if isinstance(v, Mapping):
                return {clean(k): clean(x) for k, x in v.items()}
            if isinstance(v, (list, tuple)):
                return [clean(x) for x in v]
            return v

        return clean(value)


def _elide_images(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The request messages with image data replaced by its size (for the call record)."""
    out = []
    for msg in messages:
        content = msg.get("content")
        if isinstance(content, list):
            blocks = []
            for b in content:
                if isinstance(b, dict) and b.get("type") == "image":
                    size = len(b.get("source", {}).get("data", ""))
                    blocks.append({"type": "image", "data": f"(base64 PNG, {size} characters)"})
                else:
                    blocks.append(b)
            content = blocks
        out.append({**msg, "content": content})
    return out
