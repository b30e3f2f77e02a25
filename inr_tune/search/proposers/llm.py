"""Claude as a proposer: the Messages API with one forced tool, strict parsing, fallback.

``LLMProposer`` is glue over small parts, each in its own module:

- ``llm_client``: the seam ``call(system, messages, tool) -> ToolCall | CallError``, and
  ``AnthropicClient``, the only code touching the ``anthropic`` SDK (client, prompt
  caching of the system prompt, wall-clock time limit, retries, SDK error → ``CallError``,
  key redaction);
- ``llm_tools``: the forced tools ``submit_batch`` and ``submit_review``;
- ``llm_prompts``: the system, batch, retry and review prompts and the field panels
  attached as PNG images;
- ``llm_parse``: the tool inputs read as data (never evaluated), model text made one line
  of plain text (``text.plain_text``) so it cannot forge report entries;
- ``llm_policy``: what to do with an answer (accept, re-ask once, fall back) and
  ``Fallback``, the one place where the fallback proposer steps in;
- ``llm_calls``: each call's record (``run_dir/llm/call_NNN.json``) and ``llm_call`` event.

``propose`` and ``review_block`` never raise for API or parsing problems, nor for an error
no check foresaw: the fallback (default ``RuleProposer(seed=0)``) answers instead, and an
``llm_fallback(slots, reason)`` event says why. The batch always has as many proposals as
the model and the fallback together could give, each checked (``check_proposal``) against
the state's tree with the earlier ones pending. Observations become ``NodeNote``s for the
finished nodes of ``state.finished`` only; a finished node the model did not comment on
gets the computed observation (``rule.observation``). The user's steering text is
acknowledged in ``ProposalBatch.remarks`` as ``"acknowledgement: ..."``. The review's
summary starts with the computed statistics, then the model's text; ``next_ucb_c`` is
clamped to 0.5..3.0.

Events: ``llm_call(purpose, model, latency_s, input_tokens, output_tokens, outcome,
attempt, response_file, error)`` for every call (``latency_s`` includes the SDK's own
retries; ``attempt`` 2 is the retry turn), ``llm_fallback(slots, reason)`` and
``llm_notes_dropped(reasons)``. The API key and request headers are never written or
logged: the key lives only inside the SDK client, and every text written, logged or sent
in a prompt is scrubbed of it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from inr_tune.search.proposers.base import BlockReview, ProposalBatch, Proposer, SearchState
from inr_tune.search.proposers.llm_calls import Calls
from inr_tune.search.proposers.llm_client import AnthropicClient, LLMClient
from inr_tune.search.proposers.llm_policy import Fallback, ask_batch, ask_review
from inr_tune.search.proposers.llm_prompts import (
    PNG_MAGIC,
    field_images,
    render_batch,
    render_review,
    render_system,
)
from inr_tune.search.proposers.llm_tools import BATCH_TOOL, REVIEW_TOOL, batch_tool, review_tool
from inr_tune.search.proposers.rule import RuleProposer

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

Log = Callable[..., Any]


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
        client: LLMClient | None = None,
    ) -> None:
        """``api_key`` defaults to ``ANTHROPIC_API_KEY``, else ``ANTHROPIC_AUTH_TOKEN`` (sent
        as a bearer token); ``base_url`` to ``ANTHROPIC_BASE_URL`` (read by the SDK).
        ``timeout_s`` bounds each call by the wall clock, the SDK's retries and their waits
        included; ``max_retries`` is the SDK's retry count on 429/529/5xx/timeouts.
        ``fallback`` (default ``RuleProposer(seed=0)``) fills the slots the model could
        not; ``run_dir``/``llm`` keeps every answer; ``log(event, **fields)`` receives the
        events. ``client`` replaces the ``AnthropicClient`` those arguments build (the
        model's name is then only logged)."""
        if not isinstance(model, str) or not model.strip():
            raise ValueError("model must be a model name such as 'claude-sonnet-4-5'")
        self.model = model
        self.run_dir = Path(run_dir) if run_dir is not None else None
        if client is None:
            client = AnthropicClient(
                model,
                api_key=api_key,
                base_url=base_url,
                timeout_s=timeout_s,
                max_retries=max_retries,
                max_tokens=max_tokens,
            )
        self._client = client
        self._calls = Calls(client, model, self.run_dir, log)
        self._fallback = Fallback(
            fallback if fallback is not None else RuleProposer(seed=0), self._calls
        )

    @property
    def fallback(self) -> Proposer:
        """The proposer that answers when the model does not."""
        return self._fallback.proposer

    def propose(self, state: SearchState, n_slots: int) -> ProposalBatch:
        """Up to ``n_slots`` checked proposals and notes on ``state.finished``."""
        n_slots = max(0, int(n_slots))
        try:
            return ask_batch(self._calls, self._fallback, state, n_slots)
        except Exception as err:  # an answer no check foresaw must not end the block
            reason = f"proposer error: {type(err).__name__}: {err}"
            return self._fallback.batch(state, n_slots, reason)

    def refill(self, state: SearchState, n_slots: int) -> ProposalBatch:
        """Slots the session could not fill from ``propose`` (proposals refused on the live
        tree): the fallback's, without another model call."""
        return self._fallback.batch(state, n_slots, "refill: proposals refused on the live tree")

    @property
    def refill_name(self) -> str:
        return self.fallback.name

    def review_block(self, state: SearchState) -> BlockReview:
        """The model's review; the fallback's when the call or its answer fails."""
        try:
            return ask_review(self._calls, self._fallback, state)
        except Exception as err:  # a bug must not lose the block's review
            reason = f"review proposer error: {type(err).__name__}: {err}"
            return self._fallback.review(state, reason)

    def close(self) -> None:
        self._client.close()
