"""What the block prints while trials run: one line per trial start and finish, and a
status of each running trial (steps done, latest R², ETA) refreshed from the trials'
intermediate reports: a tqdm bar per trial on a terminal, a plain line per trial at most
every ``PLAIN_EVERY_S`` seconds otherwise (a log file, a notebook's captured output)."""

from __future__ import annotations

import sys
import time
from typing import Any

PLAIN_EVERY_S = 30.0

__all__ = ["LiveTable"]


def _fmt_mutation(node: Any) -> str:
    from inr_tune.search.space import fmt_value

    text = "; ".join(f"{k} {fmt_value(a)}→{fmt_value(b)}" for k, (a, b) in node.mutation.items())
    if len(node.mutation) > 1:  # drawn by --searcher random|tpe, or a fitted variant-sweep
        return f"{len(node.mutation)} params: {text}"
    return text or "baseline"


class LiveTable:
    """One line per trial start and finish on stdout; a start line gives the config's
    compression ratio, and on GPUs its expected memory (``memory(config) -> bytes``)."""

    def __init__(self, classes: dict[str, float], memory: Any = None) -> None:
        self.classes = classes
        self.memory = memory
        self.budget: Any = None  # search.budget.Budget of the running block
        self.t0: dict[int, float] = {}
        self.tty = sys.stdout.isatty()
        self.bars: dict[int, Any] = {}  # node id → tqdm bar (terminal)
        self.said: dict[int, float] = {}  # node id → when its last plain line was printed

    def _print(self, line: str) -> None:
        if self.bars:  # above the bars, not through them
            from tqdm import tqdm

            tqdm.write(line)
        else:
            print(line, flush=True)

    def progress(self, node_id: int, row: dict[str, Any]) -> None:
        """A running trial's intermediate report (runner/trainable.py): ``steps_done`` of
        ``total_steps``, ``score`` (the R² of its latest evaluation, the one it would be
        judged by; NaN before the first) and ``eta_s``."""
        step, total = row.get("steps_done", row.get("step")), row.get("total_steps")
        if not isinstance(step, (int, float)):
            return
        r2, eta = row.get("score"), row.get("eta_s")
        r2s = f"R² {r2:.5f}" if isinstance(r2, (int, float)) and r2 == r2 else "R² -"
        etas = f"ETA {eta / 60:.1f} min" if isinstance(eta, (int, float)) else "ETA -"
        if self.tty:
            from tqdm import tqdm

            bar = self.bars.get(node_id)
            if bar is None:
                bar = self.bars[node_id] = tqdm(
                    total=int(total) if isinstance(total, (int, float)) else None,
                    desc=f"iter {node_id:>3}",
                    unit="step",
                    leave=False,
                    dynamic_ncols=True,
                    bar_format="{desc} {bar:20} {n_fmt}/{total_fmt} steps {postfix}",
                )
            bar.n = int(step)
            bar.set_postfix_str(f"{r2s}, {etas}", refresh=True)
            return
        now = time.monotonic()
        if now - self.said.get(node_id, -PLAIN_EVERY_S) < PLAIN_EVERY_S:
            return
        self.said[node_id] = now
        of = f"/{int(total)}" if isinstance(total, (int, float)) else ""
        print(f"{'':6} {node_id:>4}  step {int(step)}{of}, {r2s}, {etas}", flush=True)

    def _close(self, node_id: int) -> None:
        bar = self.bars.pop(node_id, None)
        if bar is not None:
            bar.close()
        self.said.pop(node_id, None)

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
        self._print(
            f"{'start':6} {node.id:>4} {parent!s:>6}  {_fmt_mutation(node):<28.28} "
            f"{node.strategy:<16.16} {'':9} {ratio:>7}{need}"
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
        self._close(node.id)
        self._print(
            f"{'done':6} {node.id:>4} {parent!s:>6}  {_fmt_mutation(node):<28.28} {node.strategy:<16.16} "
            f"{node.status:<9} {ratio:>7} {r2s:>11}  {minutes:4.1f} min {cls}"
        )
