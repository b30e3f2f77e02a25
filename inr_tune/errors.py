"""Exception hierarchy. Every error a user can cause derives from ``InrTuneError``.

The CLIs print ``str(err)`` as one line and exit with code 2 for these; anything else is
an internal error (exit code 1).
"""

from __future__ import annotations

__all__ = ["ConfigError", "DataError", "InrTuneError", "ProposalError"]


class InrTuneError(Exception):
    """Bad input: a one-line message that says what was wrong and what is allowed."""


class ConfigError(InrTuneError):
    """An unknown key, a wrong type or an out-of-range value in a config."""


class DataError(InrTuneError):
    """A missing, malformed, corrupt or too-short dataset, or a bad import file."""


class ProposalError(InrTuneError):
    """A proposed mutation that the search space does not allow."""
