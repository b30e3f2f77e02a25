"""The journal's events as typed records: one dataclass per event the search writes, with
the fields its line carries (``name`` the event's name), ``to_dict``/``from_dict``, and
``as_record`` for a line as read. Reading tolerates journals written before a field
existed (it takes its default) and keeps fields it does not know (in ``extra``, written
back as they were); an event it does not know is an ``OtherEvent``. ``inr_tune.journal``
writes and reads them; this module, like it, sits below ``search/`` and ``reports/``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from inr_tune.errors import InrTuneError

_LINE = ("seq", "time", "event")  # what every line carries besides the event's fields

__all__ = [
    "EVENTS",
    "BatchAdded",
    "BlockEnd",
    "BlockSkipped",
    "BlockStart",
    "BudgetChanged",
    "Event",
    "LLMCall",
    "LLMFallback",
    "LLMNotesDropped",
    "NoProposal",
    "NodeAdded",
    "NodeCompleted",
    "NodeNoted",
    "OtherEvent",
    "ProposalRejected",
    "ProposerRemarks",
    "ReviewFailed",
    "RunEnd",
    "RunExtended",
    "RunStart",
    "UcbCChanged",
    "UserInput",
    "UserInputRefused",
    "as_record",
    "as_records",
]

E = TypeVar("E", bound="Event")


@dataclass(kw_only=True)
class Event:
    """One journal line. ``seq`` and ``time`` are set when it is written (None before);
    ``extra`` holds fields of the line that the record type does not name."""

    name: ClassVar[str] = ""

    seq: int | None = field(default=None, compare=False)
    time: float | None = field(default=None, compare=False)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The event's fields as written after ``seq``, ``time`` and ``event``."""
        out = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("seq", "time", "extra")
        }
        return {**out, **self.extra}

    def line(self) -> dict[str, Any]:
        """The whole line: ``{"seq", "time", "event", **fields}``."""
        return {"seq": self.seq, "time": self.time, "event": self.name, **self.to_dict()}

    @classmethod
    def from_dict(cls: type[E], raw: Mapping[str, Any]) -> E:
        """The record of a line (or of its fields); missing optional fields take their
        defaults, unknown ones go to ``extra``."""
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in raw.items() if k in names}
        extra = {k: v for k, v in raw.items() if k not in names and k not in _LINE}
        try:
            return cls(**known, extra=extra)
        except TypeError as err:
            missing = sorted(
                f.name
                for f in dataclasses.fields(cls)
                if f.name not in raw
                and f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING
            )
            where = f" (line {raw['seq']})" if "seq" in raw else ""
            why = f"lacks {', '.join(missing)}" if missing else str(err)
            raise InrTuneError(f"journal event {cls.name}{where} {why}") from None


@dataclass(kw_only=True)
class OtherEvent(Event):
    """An event this module has no record type for (kept whole, in ``extra``)."""

    event: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", self.event)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.extra)


@dataclass(kw_only=True)
class RunStart(Event):
    name: ClassVar[str] = "run_start"
    options: dict[str, Any] = field(default_factory=dict)
    experiment: str | None = None
    dataset: str | None = None
    content_hash: str | None = None
    version: Any = None


@dataclass(kw_only=True)
class BlockStart(Event):
    name: ClassVar[str] = "block_start"
    block: int
    field: str
    n_frames: int
    root_config: dict[str, Any] = dataclasses.field(default_factory=dict)
    ucb_c: float | None = None
    proposer: str | None = None
    ranks: dict[str, Any] | None = None


@dataclass(kw_only=True)
class UserInput(Event):
    """New text in user_input.md; ``pins``: its ``set section.key=value`` lines of
    data/model/training keys, ``settings``: those of search/block keys the running search
    takes (journals older than it have none)."""

    name: ClassVar[str] = "user_input"
    text: str
    digest: str = ""
    pins: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


@dataclass(kw_only=True)
class UserInputRefused(Event):
    name: ClassVar[str] = "user_input_refused"
    block: int | None = None
    error: str = ""


@dataclass(kw_only=True)
class BudgetChanged(Event):
    name: ClassVar[str] = "budget_changed"
    block: int | None = None
    budget: str = ""


@dataclass(kw_only=True)
class UcbCChanged(Event):
    name: ClassVar[str] = "ucb_c_changed"
    block: int | None = None
    ucb_c: float | None = None


@dataclass(kw_only=True)
class ProposerRemarks(Event):
    name: ClassVar[str] = "proposer_remarks"
    block: int | None = None
    remarks: list[str] = field(default_factory=list)


@dataclass(kw_only=True)
class NoProposal(Event):
    """A proposer call that gave no valid proposal; ``reviewed``: the finished nodes it
    was shown (None in journals older than that field: every node finished before)."""

    name: ClassVar[str] = "no_proposal"
    block: int | None = None
    reason: str = ""
    reviewed: list[int] | None = None


@dataclass(kw_only=True)
class BatchAdded(Event):
    """A batch of new pending nodes (``Node.to_dict()`` each), one line for the whole
    batch; ``reviewed`` as in ``NoProposal``."""

    name: ClassVar[str] = "batch_added"
    block: int | None = None
    nodes: list[dict[str, Any]]
    user_input: bool = False
    reviewed: list[int] | None = None


@dataclass(kw_only=True)
class NodeAdded(Event):
    """One new pending node (journals older than ``batch_added``; the tree's replay)."""

    name: ClassVar[str] = "node_added"
    node: dict[str, Any]


@dataclass(kw_only=True)
class ProposalRejected(Event):
    name: ClassVar[str] = "proposal_rejected"
    block: int | None = None
    source: str = ""
    error: str = ""
    parent: int | None = None
    mutation: dict[str, Any] = field(default_factory=dict)
    strategy: str | None = None


@dataclass(kw_only=True)
class NodeCompleted(Event):
    name: ClassVar[str] = "node_completed"
    node_id: int
    status: str
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass(kw_only=True)
class NodeNoted(Event):
    """A note on a finished node. A line carries one of three groups of fields, and only
    the groups that are set are written: ``observation`` and ``visual`` (the proposer's
    notes), ``next_parent`` (the UCB choice after its result), ``verdict`` and ``basis``
    (at the block's end)."""

    name: ClassVar[str] = "node_noted"
    node_id: int
    observation: str | None = None
    visual: str | None = None
    next_parent: int | None = None
    verdict: str | None = None
    basis: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"node_id": self.node_id}
        if self.observation is not None or self.visual is not None:
            out.update(observation=self.observation, visual=self.visual)
        if self.next_parent is not None:
            out["next_parent"] = self.next_parent
        if self.verdict is not None or self.basis is not None:
            out.update(verdict=self.verdict, basis=self.basis)
        return {**out, **self.extra}


@dataclass(kw_only=True)
class ReviewFailed(Event):
    name: ClassVar[str] = "review_failed"
    block: int | None = None
    error: str = ""


@dataclass(kw_only=True)
class BlockEnd(Event):
    """The block's review; ``best`` the node of its best config (None: none finished)."""

    name: ClassVar[str] = "block_end"
    block: int
    field: str
    n_frames: int
    best: int | None = None
    summary: str = ""
    principles: list[str] = dataclasses.field(default_factory=list)
    open_questions: list[str] = dataclasses.field(default_factory=list)
    next_ucb_c: float | None = None
    new_rules: list[str] = dataclasses.field(default_factory=list)


@dataclass(kw_only=True)
class BlockSkipped(Event):
    """A block (added through user_input.md) that the dataset cannot give: not run."""

    name: ClassVar[str] = "block_skipped"
    block: int | None = None
    reason: str = ""


@dataclass(kw_only=True)
class RunEnd(Event):
    name: ClassVar[str] = "run_end"
    seconds: float | None = None


@dataclass(kw_only=True)
class RunExtended(Event):
    """A finished run resumed with more blocks (``blocks``: the new number)."""

    name: ClassVar[str] = "run_extended"
    blocks: int | None = None


@dataclass(kw_only=True)
class LLMCall(Event):
    """One call of the LLM proposer (written through the proposer's log callback)."""

    name: ClassVar[str] = "llm_call"
    purpose: str | None = None
    model: str | None = None
    latency_s: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    outcome: str | None = None
    attempt: int | None = None
    response_file: str | None = None
    error: str | None = None


@dataclass(kw_only=True)
class LLMFallback(Event):
    name: ClassVar[str] = "llm_fallback"
    slots: int | None = None
    reason: str = ""


@dataclass(kw_only=True)
class LLMNotesDropped(Event):
    name: ClassVar[str] = "llm_notes_dropped"
    reasons: list[str] = field(default_factory=list)


#: Record type of each event name.
EVENTS: dict[str, type[Event]] = {
    cls.name: cls
    for cls in (
        RunStart,
        BlockStart,
        UserInput,
        UserInputRefused,
        BudgetChanged,
        UcbCChanged,
        ProposerRemarks,
        NoProposal,
        BatchAdded,
        NodeAdded,
        ProposalRejected,
        NodeCompleted,
        NodeNoted,
        ReviewFailed,
        BlockEnd,
        BlockSkipped,
        RunEnd,
        RunExtended,
        LLMCall,
        LLMFallback,
        LLMNotesDropped,
    )
}


def as_record(event: Event | Mapping[str, Any]) -> Event:
    """The typed record of a journal line (a dict as read, or a record already)."""
    if isinstance(event, Event):
        return event
    name = event.get("event")
    if not isinstance(name, str):
        raise InrTuneError(f"not a journal event: {dict(event)!r:.200}")
    cls = EVENTS.get(name)
    if cls is None:
        extra = {k: v for k, v in event.items() if k not in _LINE}
        return OtherEvent(event=name, seq=event.get("seq"), time=event.get("time"), extra=extra)
    return cls.from_dict(event)


def as_records(events: Iterable[Event | Mapping[str, Any]]) -> list[Event]:
    return [as_record(e) for e in events]


# ----------------------------------------------------------------------------- the file
