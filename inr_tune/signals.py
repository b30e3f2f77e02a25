"""How a block run stops: Ctrl-C and SIGTERM cleanly, SIGKILL without leftovers.

SIGINT and SIGTERM (``install``) raise ``Interrupted`` in the main thread, a
``KeyboardInterrupt`` that carries the exit code (130 and 143: 128 + the signal). The
driver then stops Ray and exits; the journal, written line by line, already holds
everything that finished, so the run is resumable as it stands. Ray Tune's own SIGINT
handler, which ends the experiment and returns, is turned off (``TUNE_DISABLE_SIGINT_HANDLER``)
and Ray's SIGTERM handler, which ``ray.init`` installs, is replaced once Ray runs.

SIGKILL of the driver cannot be caught. Ray's processes started by ``ray.init`` die with
the driver (Ray starts them with ``PR_SET_PDEATHSIG``), but its workers have process
groups of their own and exit only when they see the raylet's pid gone: the dead raylet
stays a zombie until init reaps it, and trial workers were seen training on for 4–26 s
after the driver's death (up to a minute in issue 12). ``start_watchdog`` starts a small
process, in a session of its own so that a kill of the driver's process group spares
it, that waits for the driver to die (end of file on a pipe only the driver holds) and
then SIGKILLs every process whose environment carries the run's token: the local Ray
instance, its workers and whatever they started. A cluster joined with ``--address``
has none of those processes and is never touched.

``python -m inr_tune.signals --watch TOKEN`` is the watchdog itself (Linux: it reads
``/proc``; elsewhere no watchdog is started).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

__all__ = [
    "TOKEN_VAR",
    "Interrupted",
    "handled",
    "install",
    "processes_with",
    "received",
    "start_watchdog",
    "stopping",
]

#: The environment variable that marks every process of one driver's local Ray instance.
TOKEN_VAR = "INR_TUNE_RUN_TOKEN"
NAMES = {signal.SIGINT: "SIGINT (Ctrl-C)", signal.SIGTERM: "SIGTERM"}

_stopping = False
_received: int | None = None  # the last SIGINT/SIGTERM: Ray re-raises a plain KeyboardInterrupt
_watchdog: subprocess.Popen[bytes] | None = None  # kept: its pipe must stay open


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; ``exit_code`` is 128 + the signal number."""

    def __init__(self, signum: int, message: str = "") -> None:
        super().__init__(message or f"interrupted by {NAMES.get(signum, signum)}")
        self.signum = signum
        self.exit_code = 128 + int(signum)


def _raise(signum: int, frame: Any) -> None:
    global _received
    if _stopping:  # the driver is stopping already: let it finish
        return
    _received = signum
    raise Interrupted(signum)


def received() -> int | None:
    """The signal that interrupted the run (Ray's blocking calls turn the ``Interrupted``
    raised inside them into a plain ``KeyboardInterrupt``, losing which one it was)."""
    return _received


def install() -> None:
    """SIGINT and SIGTERM raise ``Interrupted`` in the main thread (call again after
    ``ray.init``, which installs its own SIGTERM handler)."""
    if threading.current_thread() is not threading.main_thread():
        return  # only the main thread may set handlers (and gets the signals)
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _raise)


@contextlib.contextmanager
def handled() -> Any:
    """``install`` for the duration of a ``with`` block (a search run from Python, e.g. in
    a notebook): the caller's SIGINT/SIGTERM handlers and this module's state come back
    afterwards."""
    global _stopping, _received
    main = threading.current_thread() is threading.main_thread()
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)} if main else {}
    _stopping, _received = False, None
    try:
        install()
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        _stopping, _received = False, None


def stopping() -> None:
    """From now on SIGINT and SIGTERM are ignored: the driver is shutting down."""
    global _stopping
    _stopping = True


def start_watchdog() -> str | None:
    """Start the watchdog and mark this process's future children with its token
    (``TOKEN_VAR`` in the environment, which Ray passes on to every process it starts).
    Call it just before ``ray.init`` starts a local instance. Returns the token, or None
    where there is no ``/proc`` to find the processes by."""
    global _watchdog
    if not Path("/proc/self/environ").exists():
        return None
    token = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if k != TOKEN_VAR}
    _watchdog = subprocess.Popen(
        [sys.executable, "-m", "inr_tune.signals", "--watch", token],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,  # a kill of the driver's process group spares it
    )
    os.environ[TOKEN_VAR] = token
    return token


def processes_with(var: str, value: str) -> list[int]:
    """Pids of the live processes whose environment holds ``var=value`` (not this one)."""
    needle = f"{var}={value}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                pids.append(int(entry.name))
        except OSError:  # gone, or not ours
            continue
    return pids


def _watch(token: str) -> None:
    """Wait for the driver to die, then SIGKILL what is left of its Ray instance."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    with contextlib.suppress(OSError):  # end of file: the driver is gone (exited, or killed)
        while sys.stdin.buffer.read(4096):
            pass
    quiet_rounds, deadline = 0, time.monotonic() + 10
    while quiet_rounds < 3 and time.monotonic() < deadline:
        pids = processes_with(TOKEN_VAR, token)
        for pid in pids:
            with contextlib.suppress(OSError):  # gone meanwhile
                os.kill(pid, signal.SIGKILL)
        quiet_rounds = 0 if pids else quiet_rounds + 1
        time.sleep(0.2)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--watch":
        _watch(sys.argv[2])
    else:
        sys.exit("usage: python -m inr_tune.signals --watch TOKEN")
