"""inr_tune: find implicit-neural-representation configs for scientific field data.

``run_search`` runs a search as ``python -m inr_tune.block`` does and returns its trials
as a pandas DataFrame; ``load_run`` reads a run directory into the same table
(``inr_tune.api``, imported on first use so that ``import inr_tune`` stays light).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "load_run", "run_search"]


def __getattr__(name: str) -> Any:
    if name in ("run_search", "load_run"):
        from inr_tune import api

        return getattr(api, name)
    raise AttributeError(f"module 'inr_tune' has no attribute {name!r}")
