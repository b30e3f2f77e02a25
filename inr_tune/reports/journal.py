"""Append-only JSONL journal of a run: the source of truth everything else is rebuilt from.

Each line is one event ``{"seq": n, "time": unix_s, "event": name, ...data}``. Lines are
flushed and fsync'ed as they are written, so a driver killed with SIGKILL loses at most
the line it was writing; a torn last line is dropped when the journal is reopened.

The API key or token of the environment (``ANTHROPIC_API_KEY``, ``ANTHROPIC_AUTH_TOKEN``)
is replaced by ``[redacted]`` in every string written, so no text echoing it (a model's
answer, an error message) reaches the journal, or the reports and prompts built from it.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from pathlib import Path
from typing import Any

from inr_tune.errors import InrTuneError

__all__ = ["Journal", "read_events"]

SECRET_ENV = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")
MIN_SECRET = 8  # a shorter value could not be told from ordinary text: left alone


def _secrets() -> list[str]:
    """The API key and token of the environment, to be redacted."""
    values = (os.environ.get(name, "").strip() for name in SECRET_ENV)
    return [v for v in values if len(v) >= MIN_SECRET]


def _clean(value: Any, secrets: list[str] | tuple[str, ...] = ()) -> Any:
    """JSON-safe copy: non-finite floats become None, tuples lists, numpy scalars Python;
    each of ``secrets`` in a string becomes ``[redacted]``."""
    if isinstance(value, str):
        for s in secrets:
            value = value.replace(s, "[redacted]")
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {_clean(str(k), secrets): _clean(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v, secrets) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return _clean(value.item(), secrets)
    return value


def read_events(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The events of the journal at ``path`` (none if it is missing), read only."""
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


class Journal:
    """Append-only event log at ``path`` (created if missing)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_tail()
        self._events = read_events(self.path)
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

    @property
    def events(self) -> list[dict[str, Any]]:
        return list(self._events)

    def of(self, *names: str) -> list[dict[str, Any]]:
        return [e for e in self._events if e["event"] in names]

    def last(self, name: str) -> dict[str, Any] | None:
        for e in reversed(self._events):
            if e["event"] == name:
                return e
        return None

    def append(self, event: str, **data: Any) -> dict[str, Any]:
        with self._lock:  # a proposer thread may log while the driver does
            record = {
                "seq": len(self._events) + 1,
                "time": round(time.time(), 3),
                "event": event,
                **_clean(data, _secrets()),
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
