"""What the block prints while trials run: one line per trial start and finish."""

from __future__ import annotations

import time
from typing import Any

__all__ = ["LiveTable"]


def _fmt_mutation(node: Any) -> str:
    from inr_tune.search.space import fmt_value

    return (
        "; ".join(f"{k} {fmt_value(a)}→{fmt_value(b)}" for k, (a, b) in node.mutation.items())
        or "baseline"
    )


class LiveTable:
    """One line per trial start and finish on stdout; a start line gives the config's
    compression ratio, and on GPUs its expected memory (``memory(config) -> bytes``)."""

    def __init__(self, classes: dict[str, float], memory: Any = None) -> None:
        self.classes = classes
        self.memory = memory
        self.budget: Any = None  # search.budget.Budget of the running block
        self.t0: dict[int, float] = {}

    def header(self) -> None:
        print(
            f"{'':6} {'iter':>4} {'parent':>6}  {'mutation':<28} {'strategy':<16} {'status':<9} "
            f"{'ratio':>7} {'held-out R²':>11}  time"
        )

    def start(self, node: Any) -> None:
        from inr_tune.config import config_from_dict

        self.t0[node.id] = time.perf_counter()
        parent = node.parent if node.parent is not None else "root"
        cfg = config_from_dict(node.config)
        ratio = f"{self.budget.ratio(cfg):6.1f}×" if self.budget is not None else ""
        need = ""
        if self.memory is not None:
            need = f"  expects {self.memory(cfg) / 2**30:.1f} GiB"
        print(
            f"{'start':6} {node.id:>4} {parent!s:>6}  {_fmt_mutation(node):<28.28} "
            f"{node.strategy:<16.16} {'':9} {ratio:>7}{need}",
            flush=True,
        )

    def done(self, node: Any) -> None:
        from inr_tune.metrics import quality_class

        parent = node.parent if node.parent is not None else "root"
        r2 = node.r2
        minutes = (time.perf_counter() - self.t0.get(node.id, time.perf_counter())) / 60
        cls = (
            f"[{quality_class(r2, self.classes)}]"
            if r2 is not None
            else f"({node.error or ''})"[:60]
        )
        r2s = f"{r2:.6f}" if r2 is not None else "-"
        ratio = f"{node.ratio:6.1f}×" if node.ratio is not None else "-"
        print(
            f"{'done':6} {node.id:>4} {parent!s:>6}  {_fmt_mutation(node):<28.28} {node.strategy:<16.16} "
            f"{node.status:<9} {ratio:>7} {r2s:>11}  {minutes:4.1f} min {cls}",
            flush=True,
        )
