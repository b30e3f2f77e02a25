"""inr_tune: find implicit-neural-representation configs for scientific field data."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
