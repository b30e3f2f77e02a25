"""The wall-clock limit of one Messages API call (used by ``llm_client`` only).

``timeout_s`` bounds a call by the wall clock, the SDK's retries and their waits (the
``retry-after`` of a 429 included): the request runs in a daemon thread that the caller
stops waiting for at the deadline. The client's event hooks make that request give up as
well: each HTTP attempt's connect, read, write and pool timeouts are cut to the time left,
an attempt begun after the deadline fails at once, and the body is read against the
deadline, so a server that drips a valid answer byte by byte (every socket read well
inside the read timeout) is cut off too.
"""

from __future__ import annotations

import functools
import importlib
import threading
import time
from typing import Any

__all__ = ["Deadline"]


class Deadline:
    """The deadline of the calling thread's request, applied by the client's event hooks."""

    def __init__(self) -> None:
        self._local = threading.local()

    def set(self, at: float | None) -> None:
        self._local.at = at

    def left(self) -> float | None:
        at = getattr(self._local, "at", None)
        return None if at is None else at - time.monotonic()

    def on_request(self, request: Any) -> None:
        """Cut the attempt's timeouts to the time left; fail it once none is left."""
        left = self.left()
        if left is None:
            return
        if left <= 0:
            raise _httpx(request).ConnectTimeout(
                "the call's time limit has passed", request=request
            )
        timeouts = dict(request.extensions.get("timeout") or {})
        for k in ("connect", "read", "write", "pool"):
            v = timeouts.get(k)
            timeouts[k] = left if v is None else min(float(v), left)
        request.extensions["timeout"] = timeouts

    def on_response(self, response: Any) -> None:
        """Read the body against the deadline."""
        at = getattr(self._local, "at", None)
        if at is not None:
            response.stream = _deadline_stream(_httpx(response))(response.stream, at, response)


def _httpx(obj: Any) -> Any:
    """The httpx module of an httpx object (``httpx``, or ``httpx2`` in newer SDKs)."""
    return importlib.import_module(type(obj).__module__.split(".")[0])


@functools.cache
def _deadline_stream(httpx: Any) -> type:
    class DeadlineStream(httpx.SyncByteStream):  # type: ignore[misc, name-defined]
        def __init__(self, inner: Any, at: float, response: Any) -> None:
            self._inner, self._at, self._response = inner, at, response

        def __iter__(self) -> Any:
            for chunk in self._inner:
                if time.monotonic() > self._at:
                    raise httpx.ReadTimeout(
                        "the answer was still arriving at the call's time limit",
                        request=self._response.request,
                    )
                yield chunk

        def close(self) -> None:
            self._inner.close()

    return DeadlineStream
