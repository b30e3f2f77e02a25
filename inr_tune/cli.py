"""Shared helpers for the command-line entry points: exit codes and error reporting."""

from __future__ import annotations

import sys
from collections.abc import Callable

from inr_tune.errors import InrTuneError

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "run_cli",
]

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # SIGINT (Ctrl-C): 128 + 2
EXIT_TERMINATED = 143  # SIGTERM: 128 + 15


def run_cli(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run ``main``; turn user errors into one line on stderr and exit code 2.

    KeyboardInterrupt exits with 130 and a short line (its message when it has one, and
    its ``exit_code`` when it carries one: 143 for SIGTERM, see ``inr_tune.signals``);
    other exceptions propagate (exit code 1 with a traceback: those are bugs, not bad
    input).
    """
    try:
        return main(argv)
    except InrTuneError as err:
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"error: {msg}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt as err:
        print(str(err).strip() or "interrupted", file=sys.stderr)
        return int(getattr(err, "exit_code", EXIT_INTERRUPTED))
