"""A fake Anthropic Messages API on 127.0.0.1 for tests: scripted replies, recorded requests.

The real ``anthropic`` client talks to it through ``base_url``, so the tests exercise the
SDK's own request building, response parsing, retries and timeouts::

    with MessagesServer() as server:
        server.push(tool_use("submit_batch", {...}), rate_limited(), overloaded())
        client = anthropic.Anthropic(api_key="k", base_url=server.url)

Each POST /v1/messages takes the next scripted ``Reply`` from the queue; when the queue is
empty, ``server.default`` (a function of the request body) answers, or a 500 if none is
set. Every request body is kept in ``server.requests`` (parsed JSON) and its headers in
``server.headers``. A hanging reply waits on the server's stop event, so ``close`` never
waits for it.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = [
    "MessagesServer",
    "Reply",
    "hang",
    "malformed",
    "overloaded",
    "rate_limited",
    "server_error",
    "text_only",
    "tool_use",
]


@dataclass
class Reply:
    """One scripted HTTP answer: status, body (a JSON-able object or raw bytes), headers
    (a ``content-type`` given here replaces ``application/json``)."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # wait this long (or until the server stops) before answering
    drip_s: float = 0.0  # send the body one byte every ``drip_s`` seconds (a slow proxy)


_counter = iter(range(1, 1_000_000))


def _message(content: list[dict[str, Any]], stop_reason: str) -> dict[str, Any]:
    n = next(_counter)
    return {
        "id": f"msg_fake_{n:04d}",
        "type": "message",
        "role": "assistant",
        "model": "fake-model",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 100 + n, "output_tokens": 50 + n},
    }


def tool_use(name: str, tool_input: Any) -> Reply:
    """A message whose only content block calls tool ``name`` with ``tool_input``."""
    n = next(_counter)
    block = {"type": "tool_use", "id": f"toolu_fake_{n:04d}", "name": name, "input": tool_input}
    return Reply(body=_message([block], "tool_use"))


def text_only(text: str = "I think you should raise the learning rate.") -> Reply:
    """A message with a text block and no tool call (forced tool_choice ignored)."""
    return Reply(body=_message([{"type": "text", "text": text}], "end_turn"))


def malformed(body: bytes = b'{"id": "msg_bad", "type": "message", "content": [') -> Reply:
    """Status 200 with a JSON content type but a body that is not valid JSON."""
    return Reply(body=body)


def rate_limited(retry_after: str = "0") -> Reply:
    """429 rate_limit_error with a ``retry-after`` header."""
    return Reply(
        429,
        {"type": "error", "error": {"type": "rate_limit_error", "message": "Rate limited"}},
        {"retry-after": retry_after},
    )


def overloaded() -> Reply:
    """529 overloaded_error."""
    return Reply(
        529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    )


def server_error() -> Reply:
    """500 api_error."""
    return Reply(
        500, {"type": "error", "error": {"type": "api_error", "message": "Internal error"}}
    )


def hang(seconds: float = 30.0) -> Reply:
    """Answer only after ``seconds`` (longer than the client's timeout)."""
    return Reply(
        500, {"type": "error", "error": {"type": "api_error", "message": "late"}}, {}, seconds
    )


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        raw = self.rfile.read(length)
        owner = self.server.owner
        if self.path.split("?")[0] != "/v1/messages":
            self._send(Reply(404, {"type": "error", "error": {"type": "not_found_error"}}))
            return
        try:
            body = json.loads(raw)
        except ValueError:
            body = {"_unparsed": raw.decode(errors="replace")}
        reply = owner._record_and_pick(body, dict(self.headers.items()))
        if reply.delay_s > 0 and owner._stop.wait(reply.delay_s):
            return  # shutting down: drop the connection unanswered
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        data = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
        try:
            self.send_response(reply.status)
            if not any(k.lower() == "content-type" for k in reply.headers):
                self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for k, v in reply.headers.items():
                self.send_header(k, v)
            self.end_headers()
            if reply.drip_s <= 0:
                self.wfile.write(data)
                return
            for i in range(len(data)):
                if self.server.owner._stop.wait(reply.drip_s):
                    return  # shutting down: leave the answer unfinished
                self.wfile.write(data[i : i + 1])
        except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
            pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: MessagesServer


class MessagesServer:
    """The fake API; a context manager (``start``/``close``) on a free port."""

    def __init__(self, default: Callable[[dict[str, Any]], Reply] | None = None) -> None:
        self.default = default
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def push(self, *replies: Reply) -> None:
        """Queue replies, answered in order before ``default`` takes over."""
        with self._lock:
            self._queue.extend(replies)

    @property
    def pending(self) -> int:
        """Scripted replies not used yet."""
        with self._lock:
            return len(self._queue)

    def _record_and_pick(self, body: dict[str, Any], headers: dict[str, str]) -> Reply:
        with self._lock:
            self.requests.append(body)
            self.headers.append(headers)
            if self._queue:
                return self._queue.popleft()
        if self.default is not None:
            return self.default(body)
        return server_error()

    def start(self) -> MessagesServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> MessagesServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
