"""The journal of a run: an append-only JSONL file, the source of truth everything else is
rebuilt from, and its events as typed records.

Each line is one event ``{"seq": n, "time": unix_s, "event": name, ...fields}``. Lines are
flushed and fsync'ed as they are written, so a driver killed with SIGKILL loses at most
the line it was writing; a torn last line is dropped when the journal is reopened.

Every event the search writes has a record type in ``inr_tune.events`` (re-exported here);
``Journal.append(record)`` writes one, ``Journal.records`` / ``read_records`` read them
back.

The API key or token of the environment (``ANTHROPIC_API_KEY``, ``ANTHROPIC_AUTH_TOKEN``)
is replaced by ``[redacted]`` in every string written, so no text echoing it (a model's
answer, an error message) reaches the journal, or the reports and prompts built from it.

This module sits below ``search/`` and ``reports/``: both read and write events through
it, and it imports neither.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any, TypeVar

from inr_tune.errors import InrTuneError
from inr_tune.events import (
    EVENTS,
    BatchAdded,
    BlockEnd,
    BlockSkipped,
    BlockStart,
    BudgetChanged,
    Event,
    LLMCall,
    LLMFallback,
    LLMNotesDropped,
    NodeAdded,
    NodeCompleted,
    NodeNoted,
    NoProposal,
    OtherEvent,
    ProposalRejected,
    ProposerRemarks,
    ReviewFailed,
    RunEnd,
    RunExtended,
    RunStart,
    UcbCChanged,
    UserInput,
    UserInputRefused,
    as_record,
    as_records,
)
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

E = TypeVar("E", bound="Event")


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
