"""The journal of a run: an append-only JSONL file, the source of truth everything else is
rebuilt from, and its events as typed records.

Each line is one event ``{"seq": n, "time": unix_s, "event": name, ...fields}``. Lines are
flushed and fsync'ed as they are written, so a driver killed with SIGKILL loses at most
the line it was writing; a torn last line is dropped when the journal is reopened.

Every event the search writes has a record type below (a dataclass with the fields the
line carries, ``name`` the event's name); ``Journal.append(record)`` writes one,
``Journal.records`` / ``read_records`` read them back. Reading tolerates journals written
before a field existed (it takes its default) and keeps fields it does not know (in
``extra``, written back as they were); an event it does not know is an ``OtherEvent``.

The API key or token of the environment (``ANTHROPIC_API_KEY``, ``ANTHROPIC_AUTH_TOKEN``)
is replaced by ``[redacted]`` in every string written, so no text echoing it (a model's
answer, an error message) reaches the journal, or the reports and prompts built from it.

This module sits below ``search/`` and ``reports/``: both read and write events through
it, and it imports neither.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from inr_tune.errors import InrTuneError
from inr_tune.fileio import jsonable

__all__ = [
    "EVENTS",
    "BatchAdded",
    "BlockEnd",
    "BlockSkipped",
    "BlockStart",
    "BudgetChanged",
    "Event",
    "Journal",
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
    "read_events",
    "read_records",
]

SECRET_ENV = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")
MIN_SECRET = 8  # a shorter value could not be told from ordinary text: left alone
_LINE = ("seq", "time", "event")  # what every line carries besides the event's fields

E = TypeVar("E", bound="Event")


# ----------------------------------------------------------------------------- records


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


def _secrets() -> list[str]:
    """The API key and token of the environment, to be redacted."""
    values = (os.environ.get(name, "").strip() for name in SECRET_ENV)
    return [v for v in values if len(v) >= MIN_SECRET]


def _redact(value: Any, secrets: list[str]) -> Any:
    """``value`` (JSON-safe) with each of ``secrets`` in a string replaced by [redacted]."""
    if isinstance(value, str):
        for s in secrets:
            value = value.replace(s, "[redacted]")
        return value
    if isinstance(value, dict):
        return {_redact(k, secrets): _redact(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, secrets) for v in value]
    return value


def read_events(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The lines of the journal at ``path`` as dicts (none if it is missing), read only."""
    path = Path(path)
    if not path.exists():
        return []
    events = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                raise InrTuneError(
                    f"{path} line {n} is not valid JSON; the journal is corrupt"
                ) from None
            if not isinstance(event, dict) or "event" not in event:
                raise InrTuneError(f"{path} line {n} is not a journal event")
            events.append(event)
    return events


def read_records(path: str | os.PathLike[str]) -> list[Event]:
    """The events of the journal at ``path`` as typed records, read only."""
    return as_records(read_events(path))


class Journal:
    """Append-only event log at ``path`` (created if missing)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_tail()
        self._events = read_events(self.path)
        self._records: list[Event] = []  # typed, parsed as far as they were asked for
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (kept open for appends)
        self._lock = threading.Lock()  # a proposer thread may log while the driver does

    def _repair_tail(self) -> None:
        """Drop a torn last line (a crash in the middle of a write)."""
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            with open(self.path, "r+b") as fh:
                fh.truncate(data.rfind(b"\n") + 1)

    # ------------------------------------------------------------------ reading

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every line as a dict, in order."""
        with self._lock:
            return list(self._events)

    @property
    def records(self) -> list[Event]:
        """Every line as a typed record, in order."""
        with self._lock:
            for raw in self._events[len(self._records) :]:
                self._records.append(as_record(raw))
            return list(self._records)

    def select(self, kind: type[E]) -> list[E]:
        """The records of type ``kind``, in order."""
        return [r for r in self.records if isinstance(r, kind)]

    def latest(self, kind: type[E]) -> E | None:
        """The last record of type ``kind`` (None when there is none)."""
        found = self.select(kind)
        return found[-1] if found else None

    def of(self, *names: str) -> list[dict[str, Any]]:
        """The lines of these event names, as dicts."""
        return [e for e in self.events if e["event"] in names]

    def last(self, name: str) -> dict[str, Any] | None:
        """The last line of this event name, as a dict."""
        found = self.of(name)
        return found[-1] if found else None

    # ------------------------------------------------------------------ writing

    def append(self, event: str | Event, **data: Any) -> dict[str, Any]:
        """Write one line: a typed record, or an event's name and fields (the proposers'
        log callback). Returns the line as written."""
        if isinstance(event, Event):
            if data:
                raise TypeError("Journal.append(record) takes no other fields")
            name, data = event.name, event.to_dict()
        else:
            name = event
        with self._lock:
            record = {
                "seq": len(self._events) + 1,
                "time": round(time.time(), 3),
                "event": name,
                **_redact(jsonable(data), _secrets()),
            }
            self._fh.write(json.dumps(record, allow_nan=False, separators=(",", ":")) + "\n")
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._events.append(record)
            return record

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
