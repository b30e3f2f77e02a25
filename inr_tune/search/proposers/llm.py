"""Claude as a proposer: the Messages API with one forced tool, strict parsing, fallback.

``LLMProposer.propose`` renders the prompt (``prompts/system.md``, ``prompts/batch.md``;
``llm_prompts``), attaches the finished batch's field panels as PNG images and forces the
tool ``submit_batch`` (``batch_tool``); the call, its time limit and its record are in
``llm_calls``. The tool input is data: each proposal is read field by field (never
evaluated) and checked with ``check_proposal`` against a scratch copy of the tree, so two
proposals of one batch cannot repeat each other. Then:

1. Proposals that fail are retried once, in the same conversation: the assistant's
   ``tool_use`` is followed by a ``tool_result`` with ``is_error: true`` that quotes each
   error verbatim and asks for exactly that many replacements.
2. Slots still empty (rejected twice, or never answered) are filled by
   ``fallback.propose`` on the state with the accepted proposals added as pending nodes.
3. API errors (429, 529, 5xx, connection) and timeouts are retried by the SDK
   (``max_retries``, with backoff), within the call's time limit (``timeout_s``, wall
   clock, the retries and their waits included: ``llm_calls``); if they persist, or the
   answer is not a message (an HTML error page, a JSON array), holds a lone surrogate, has
   no tool call or is not JSON, the whole batch comes from the fallback.

A proposal names one ``param`` and its new ``value``, so a multi-parameter mutation cannot be
expressed; the block's baseline is the one proposal with ``param`` and ``value`` null
(strategy ``baseline``, parent null; its ``expect`` is dropped, as it has no reference).
``latency_s`` of a call includes the SDK's own retries; ``attempt`` 2 is the retry turn.
Surplus proposals (more than the slots, or than the rejected ones in the retry turn) are
ignored, and a remark says so.

Every text taken from the model (hypothesis, observation, visual, acknowledgement and the
review's summary, principles, open questions and rules) becomes one line of plain text
(``text.plain_text``: control characters and escape sequences removed, a markdown block
marker at its start escaped, the API key redacted), so it cannot forge report entries.

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
the SDK client, and every text written, logged or sent in a prompt is scrubbed of it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
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
from inr_tune.search.proposers.llm_calls import (
    Call,
    CallRecords,
    finite_json,
    make_client,
    send,
)
from inr_tune.search.proposers.llm_prompts import (
    BATCH_TOOL,
    PNG_MAGIC,
    RETRY_PROMPT,
    REVIEW_TOOL,
    batch_tool,
    field_images,
    finished_nodes,
    mutation_text,
    render_batch,
    render_review,
    render_system,
    review_tool,
)
from inr_tune.search.proposers.rule import RuleProposer, observation
from inr_tune.search.proposers.text import one_line, plain_text, redact, shorten
from inr_tune.search.tree import Node, Tree

if TYPE_CHECKING:
    import anthropic

__all__ = [
    "BATCH_TOOL",
    "PNG_MAGIC",
    "REVIEW_TOOL",
    "LLMProposer",
    "batch_tool",
    "field_images",
    "render_batch",
    "render_review",
    "render_system",
    "review_tool",
]

MAX_TEXT = 4000  # characters kept of one hypothesis, observation or review entry
MAX_ITEMS = 12  # entries kept of each review list
MAX_LOGGED = 2000  # characters kept of a text field of a logged event

Log = Callable[..., Any]


# ----------------------------------------------------------------------------- parsing


def _text(value: Any, limit: int = MAX_TEXT, secrets: list[str] | None = None) -> str:
    """Model text as one line of plain text (``text.plain_text``); '' if not a string."""
    return plain_text(value, limit, secrets or ()) if isinstance(value, str) else ""


def _show(value: Any) -> str:
    """A model-supplied value, shown as JSON (at most 60 characters) in an error."""
    try:
        s = json.dumps(value, default=str)
    except ValueError:
        s = repr(value)
    return s if len(s) <= 60 else s[:59] + "…"


def _proposal(item: Any, secrets: list[str] | None = None) -> Proposal:
    """One ``proposals`` entry as a Proposal; ProposalError if its shape is wrong.

    ``param`` null means an empty mutation (the baseline); a baseline's ``expect`` is
    dropped (it has no reference to be compared with). The hypothesis is made plain text.
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
    hypothesis = _text(item["hypothesis"], secrets=secrets)
    if not hypothesis:
        raise ProposalError("hypothesis is empty: say what the change should do and why")
    strategy = item["strategy"]
    expect = item.get("expect")
    if strategy == "baseline":
        expect = None
    return Proposal(
        parent=item["parent"],
        mutation={} if param is None else {param: value},
        strategy=strategy if isinstance(strategy, str) else _show(strategy),
        hypothesis=hypothesis,
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


def _assistant_content(message: Any) -> list[dict[str, Any]]:
    """The answer's text and tool_use blocks as request params (for the retry turn)."""
    out: list[dict[str, Any]] = []
    for block in message.content:
        kind = getattr(block, "type", None)
        if kind == "text" and isinstance(getattr(block, "text", None), str):
            out.append({"type": "text", "text": block.text})
        elif kind == "tool_use":
            out.append(
                {
                    "type": "tool_use",
                    "id": block.id,
                    "name": block.name,
                    "input": finite_json(getattr(block, "input", None)),
                }
            )
    return out


def _tool_use(message: Any, name: str) -> Any | None:
    for block in getattr(message, "content", None) or []:
        if getattr(block, "type", None) == "tool_use" and getattr(block, "name", None) == name:
            return block
    return None


def _strings(value: Any, where: str, secrets: list[str] | None = None) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where} must be a list of strings")
    out = [_text(v, secrets=secrets) for v in value]
    return [v for v in out if v][:MAX_ITEMS]


def _logged(value: Any, secrets: list[str]) -> Any:
    """An event field as logged: each string one line, secrets redacted, then shortened."""
    if isinstance(value, str):
        return shorten(redact(one_line(value), secrets), MAX_LOGGED)
    if isinstance(value, Mapping):
        return {k: _logged(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_logged(v, secrets) for v in value]
    return value


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
        ``timeout_s`` bounds each call by the wall clock, the SDK's retries and their waits
        included; ``max_retries`` is the SDK's retry count on 429/529/5xx/timeouts. ``fallback`` (default ``RuleProposer(seed=0)``) fills the
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
        self.timeout_s = float(timeout_s)
        self._log = log
        self._records = CallRecords(self.run_dir) if self.run_dir is not None else None
        auth_token = None
        if api_key is None:
            api_key = os.environ.get("ANTHROPIC_API_KEY") or None
            if api_key is None:
                auth_token = os.environ.get("ANTHROPIC_AUTH_TOKEN") or None
        # The key lives only inside the client (never on this object, in a file or a log).
        self._client: anthropic.Anthropic
        self._client, self._deadline = make_client(
            api_key=api_key,
            auth_token=auth_token,
            base_url=base_url,
            timeout_s=self.timeout_s,
            max_retries=int(max_retries),
        )

    # ------------------------------------------------------------------ propose

    def propose(self, state: SearchState, n_slots: int) -> ProposalBatch:
        """Up to ``n_slots`` checked proposals and notes on ``state.finished``."""
        n_slots = max(0, int(n_slots))
        try:
            return self._propose(state, n_slots)
        except Exception as err:  # an answer no check foresaw must not end the block
            reason = f"proposer error: {type(err).__name__}: {err}"
            self._emit("llm_fallback", slots=n_slots, reason=reason)
            return self.fallback.propose(state, n_slots)

    def _propose(self, state: SearchState, n_slots: int) -> ProposalBatch:
        finished = finished_nodes(state)
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
                accepted.append(
                    self._commit(state, scratch, taken, _proposal(item, self._secrets()))
                )
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
        ack = ""
        if isinstance(tool_input, dict):
            ack = _text(tool_input.get("acknowledgement"), secrets=self._secrets())
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
                state, scratch, taken, system, messages, call, errors, n_bad, batch.remarks
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
        first: Call,
        errors: list[str],
        n_bad: int,
        remarks: list[str],
    ) -> tuple[list[Proposal], str]:
        """One more turn for ``n_bad`` rejected slots; (accepted, reason the rest failed).
        Surplus proposals of the answer are ignored, with a remark added to ``remarks``."""
        assert first.message is not None
        block = _tool_use(first.message, BATCH_TOOL)
        accepted_now = [
            f"parent {'null' if n.parent is None else n.parent}, {mutation_text(n)} ({n.strategy})"
            for n in scratch.pending(state.block)
            if n.id not in state.tree
        ]
        text = RETRY_PROMPT.substitute(
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
        if len(items) > n_bad:
            remarks.append(
                f"the retry proposed {len(items)} trials for {n_bad} rejected "
                f"slot{'s' if n_bad > 1 else ''}; the last {len(items) - n_bad} were ignored"
            )
        accepted: list[Proposal] = []
        for i, item in enumerate(items[:n_bad], 1):
            try:
                accepted.append(
                    self._commit(state, scratch, taken, _proposal(item, self._secrets()))
                )
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

    def _fallback_all(self, state: SearchState, n_slots: int, call: Call) -> ProposalBatch:
        self._emit("llm_fallback", slots=n_slots, reason=f"{call.outcome}: {call.error}")
        return self.fallback.propose(state, n_slots)

    def _notes(self, state: SearchState, tool_input: Any, finished: list[Node]) -> list[NodeNote]:
        """The model's observations on ``finished`` nodes; computed ones for the others."""
        wanted = {n.id: n for n in finished}
        secrets = self._secrets()
        raw = tool_input.get("observations") if isinstance(tool_input, dict) else None
        notes: dict[int, NodeNote] = {}
        dropped: list[str] = []
        for item in raw if isinstance(raw, list) else []:
            node_id = item.get("node_id") if isinstance(item, dict) else None
            text = _text(item.get("observation"), secrets=secrets) if isinstance(item, dict) else ""
            if isinstance(node_id, bool) or not isinstance(node_id, int):
                dropped.append(f"observation without a node id: {_show(item)}")
            elif node_id not in wanted:
                dropped.append(f"node {node_id} is not a finished node of this batch")
            elif node_id in notes:
                dropped.append(f"node {node_id}: second observation ignored")
            elif not text:
                dropped.append(f"node {node_id}: empty observation")
            else:
                visual = _text(item.get("visual"), secrets=secrets) or None
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
                review = self._read_review(block.input, stats, state, self._secrets())
            except (ValueError, TypeError) as err:
                call.outcome, call.error = "invalid", str(err)
        self._finish(call, system, messages)
        if review is None:
            self._emit("llm_fallback", slots=0, reason=f"review {call.outcome}: {call.error}")
            return super().review_block(state)
        return review

    @staticmethod
    def _read_review(
        raw: Any, stats: strategies.BlockStats, state: SearchState, secrets: list[str]
    ) -> BlockReview:
        if not isinstance(raw, dict):
            raise ValueError(f"the {REVIEW_TOOL} input must be an object")
        summary = _text(raw.get("summary"), secrets=secrets)
        if not summary:
            raise ValueError("summary is empty")
        c = raw.get("next_ucb_c")
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not math.isfinite(c):
            raise ValueError(f"next_ucb_c must be a number, got {_show(c)}")
        lo, hi = strategies.UCB_C_RANGE
        new_rules = _strings(raw.get("new_rules"), "new_rules", secrets)
        return BlockReview(
            summary=f"{stats.summary()} {summary}",
            principles=_strings(raw.get("principles"), "principles", secrets),
            open_questions=_strings(raw.get("open_questions"), "open_questions", secrets),
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
    ) -> Call:
        """One ``messages.create`` with the tool forced, the prompt scrubbed of the key;
        API, time-limit and answer problems are caught (``llm_calls.send``)."""
        return send(
            self._client,
            self._deadline,
            self.timeout_s,
            Call(purpose, attempt, 0.0),
            model=self.model,
            max_tokens=self.max_tokens,
            # the system prompt is re-sent unchanged on every call of a run: cached by the
            # API (prompt caching; below the model's minimum length it is simply not cached)
            system=[
                {
                    "type": "text",
                    "text": self._scrub(system),
                    "cache_control": {"type": "ephemeral"},
                }
            ],
            messages=self._scrub(messages),
            tools=[tool],
            tool_choice={"type": "tool", "name": tool["name"]},
        )

    @staticmethod
    def _tool_block(call: Call, name: str) -> Any | None:
        """The answer's call of tool ``name``; None (and the outcome set) if there is none."""
        if call.message is None:
            return None
        block = _tool_use(call.message, name)
        if block is None:
            kinds = [str(getattr(b, "type", "?")) for b in call.message.content]
            call.outcome = "no_tool_use"
            call.error = f"the answer did not call {name} (content: {', '.join(kinds) or 'none'})"
        elif not isinstance(getattr(block, "id", None), str):
            call.outcome, call.error = "malformed", f"the {name} call has no id"
            return None
        return block

    def _finish(self, call: Call, system: str, messages: list[dict[str, Any]]) -> None:
        """Keep the answer in ``run_dir/llm`` and log the call."""
        response_file = None
        if self._records is not None:
            response_file = self._records.write(call, self.model, system, messages, self._secrets())
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

    def _emit(self, event: str, **fields: Any) -> None:
        """Log ``event``; each text field one line, scrubbed of the key, shortened."""
        if self._log is not None:
            self._log(event, **_logged(fields, self._secrets()))

    def _secrets(self) -> list[str]:
        """The API key or token of the client (only ever used to redact it)."""
        return [
            s for s in (self._client.api_key, self._client.auth_token) if isinstance(s, str) and s
        ]

    def _scrub(self, value: Any) -> Any:
        """``value`` with every occurrence of the API key or token replaced."""
        return redact(value, self._secrets())
