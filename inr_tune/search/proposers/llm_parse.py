"""The model's tool inputs read as data: proposals, observations, the acknowledgement and
the review, field by field (never evaluated), with errors worded for the model.

A proposal names one ``param`` and its new ``value``, so a multi-parameter mutation cannot
be expressed; the block's baseline is the one proposal with ``param`` and ``value`` null
(strategy ``baseline``, parent null; its ``expect`` is dropped, as it has no reference).
Whether a proposal may run is ``check_proposal``'s business (``llm_policy``).

Every text taken from the model (hypothesis, observation, visual, acknowledgement and the
review's summary, principles, open questions and rules) becomes one line of plain text
(``text.plain_text``: control characters and escape sequences removed, a markdown block
marker at its start escaped, the secrets redacted by ``redact`` once the text is one line),
so it cannot forge report entries.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from inr_tune.errors import ProposalError
from inr_tune.search import strategies
from inr_tune.search.proposers.base import BlockReview, NodeNote, Proposal, SearchState
from inr_tune.search.proposers.llm_tools import BATCH_TOOL, REVIEW_TOOL
from inr_tune.search.proposers.rule import observation
from inr_tune.search.proposers.text import one_line, plain_text
from inr_tune.search.tree import Node

__all__ = [
    "MAX_ITEMS",
    "MAX_TEXT",
    "describe_item",
    "read_acknowledgement",
    "read_items",
    "read_notes",
    "read_proposal",
    "read_review",
    "show",
]

MAX_TEXT = 4000  # characters kept of one hypothesis, observation or review entry
MAX_ITEMS = 12  # entries kept of each review list

Redact = Callable[[Any], Any]


def _keep(value: Any) -> Any:
    return value


def text(value: Any, redact: Redact = _keep, limit: int = MAX_TEXT) -> str:
    """Model text as one line of plain text (``text.plain_text``); '' if not a string."""
    return plain_text(redact(one_line(value)), limit) if isinstance(value, str) else ""


def show(value: Any) -> str:
    """A model-supplied value, shown as JSON (at most 60 characters) in an error."""
    try:
        s = json.dumps(value, default=str)
    except ValueError:
        s = repr(value)
    return s if len(s) <= 60 else s[:59] + "…"


def read_items(tool_input: Any) -> tuple[list[Any], list[str]]:
    """The ``proposals`` list of a ``submit_batch`` input, or ``[]`` and the error why not."""
    if not isinstance(tool_input, dict):
        return [], [f"the {BATCH_TOOL} input must be an object, got {show(tool_input)}"]
    items = tool_input.get("proposals")
    if not isinstance(items, list):
        return [], [f"the {BATCH_TOOL} input has no proposals list"]
    return items, []


def read_proposal(item: Any, redact: Redact = _keep) -> Proposal:
    """One ``proposals`` entry as a Proposal; ProposalError if its shape is wrong."""
    if not isinstance(item, Mapping):
        raise ProposalError(f"a proposal must be an object, got {show(item)}")
    missing = [k for k in ("parent", "param", "value", "strategy", "hypothesis") if k not in item]
    if missing:
        raise ProposalError(
            f"proposal is missing {', '.join(missing)}; give parent, param, value, strategy, "
            "hypothesis and expect"
        )
    param, value = item["param"], item["value"]
    if param is not None and not isinstance(param, str):
        raise ProposalError(f"param must be a parameter name or null, got {show(param)}")
    if isinstance(value, (list, dict)):
        raise ProposalError(f"value must be one number, string, boolean or null, got {show(value)}")
    hypothesis = text(item["hypothesis"], redact)
    if not hypothesis:
        raise ProposalError("hypothesis is empty: say what the change should do and why")
    strategy = item["strategy"]
    expect = item.get("expect")
    if strategy == "baseline":
        expect = None
    return Proposal(
        parent=item["parent"],
        mutation={} if param is None else {param: value},
        strategy=strategy if isinstance(strategy, str) else show(strategy),
        hypothesis=hypothesis,
        expect=expect,
    )


def describe_item(i: int, item: Any) -> str:
    """``proposal i (parent=…, param=value, strategy=…)``: an entry named in an error."""
    if not isinstance(item, Mapping):
        return f"proposal {i}"
    parts = [f"parent={show(item.get('parent'))}"]
    if item.get("param") is not None:
        parts.append(f"{show(item.get('param')).strip(chr(34))}={show(item.get('value'))}")
    parts.append(f"strategy={show(item.get('strategy'))}")
    return f"proposal {i} ({', '.join(parts)})"


def read_acknowledgement(tool_input: Any, redact: Redact = _keep) -> str:
    """The reply to the user's steering text; '' if none."""
    return text(tool_input.get("acknowledgement"), redact) if isinstance(tool_input, dict) else ""


def read_notes(
    state: SearchState, tool_input: Any, finished: list[Node], redact: Redact = _keep
) -> tuple[list[NodeNote], list[str]]:
    """The model's observations on ``finished`` nodes, the computed one
    (``rule.observation``) for a node it did not comment on; and why entries were dropped."""
    wanted = {n.id: n for n in finished}
    raw = tool_input.get("observations") if isinstance(tool_input, dict) else None
    notes: dict[int, NodeNote] = {}
    dropped: list[str] = []
    for item in raw if isinstance(raw, list) else []:
        node_id = item.get("node_id") if isinstance(item, dict) else None
        said = text(item.get("observation"), redact) if isinstance(item, dict) else ""
        if isinstance(node_id, bool) or not isinstance(node_id, int):
            dropped.append(f"observation without a node id: {show(item)}")
        elif node_id not in wanted:
            dropped.append(f"node {node_id} is not a finished node of this batch")
        elif node_id in notes:
            dropped.append(f"node {node_id}: second observation ignored")
        elif not said:
            dropped.append(f"node {node_id}: empty observation")
        else:
            visual = text(item.get("visual"), redact) or None
            notes[node_id] = NodeNote(node_id, said, visual)
    for node_id, node in wanted.items():
        if node_id not in notes:
            notes[node_id] = NodeNote(node_id, observation(state.tree, node, state.classes))
    return [notes[i] for i in sorted(notes)], dropped


def _strings(value: Any, where: str, redact: Redact) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where} must be a list of strings")
    out = [text(v, redact) for v in value]
    return [v for v in out if v][:MAX_ITEMS]


def read_review(
    raw: Any, stats: strategies.BlockStats, state: SearchState, redact: Redact = _keep
) -> BlockReview:
    """A ``submit_review`` input as the block's review; ValueError if its shape is wrong.

    The summary starts with the computed statistics, then the model's text; ``next_ucb_c``
    is clamped to ``strategies.UCB_C_RANGE``; rules the run has already are dropped."""
    if not isinstance(raw, dict):
        raise ValueError(f"the {REVIEW_TOOL} input must be an object")
    summary = text(raw.get("summary"), redact)
    if not summary:
        raise ValueError("summary is empty")
    c = raw.get("next_ucb_c")
    if isinstance(c, bool) or not isinstance(c, (int, float)) or not math.isfinite(c):
        raise ValueError(f"next_ucb_c must be a number, got {show(c)}")
    lo, hi = strategies.UCB_C_RANGE
    new_rules = _strings(raw.get("new_rules"), "new_rules", redact)
    return BlockReview(
        summary=f"{stats.summary()} {summary}",
        principles=_strings(raw.get("principles"), "principles", redact),
        open_questions=_strings(raw.get("open_questions"), "open_questions", redact),
        next_ucb_c=round(min(hi, max(lo, float(c))), 3),
        new_rules=[r for r in dict.fromkeys(new_rules) if r not in state.rules],
    )
