"""Shared helpers for the command-line entry points: exit codes and error reporting."""

from __future__ import annotations

import sys
from collections.abc import Callable

from inr_tune.errors import InrTuneError

__all__ = ["EXIT_BAD_INPUT", "EXIT_INTERNAL", "EXIT_OK", "run_cli"]

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2


def run_cli(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run ``main``; turn user errors into one line on stderr and exit code 2.

    KeyboardInterrupt exits with 130 and a short line; other exceptions propagate
    (exit code 1 with a traceback: those are bugs, not bad input).
    """
    try:
        return main(argv)
    except InrTuneError as err:
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"error: {msg}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
