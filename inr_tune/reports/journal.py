"""Moved to ``inr_tune.journal`` (below ``search/`` and ``reports/``, with the typed event
records); this name stays for the tests and benchmarks that import it from here."""

from inr_tune.journal import Journal, read_events, read_records

__all__ = ["Journal", "read_events", "read_records"]
