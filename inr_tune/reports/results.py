"""The trials of a run as one table: ``results.csv`` in the run directory, and the pandas
DataFrame that ``inr_tune.load_run`` and ``inr_tune.run_search`` return.

One row per trial (node), in node order, rebuilt from the journal: identity (``node``,
``parent``, ``block``, ``field``, ``n_frames``, ``status``, ``strategy``, ``mutation``,
``verdict``), the trial's flat config (``model.hidden_dim``, ``training.lr``, … — the
search/block sections are the run's, not the trial's, and are left out) and its metrics
(``holdout_r2``, ``final_r2``, ``compression_ratio``, ``baseline_r2``, …). A metric that is
not a number or a short string (histories, tracebacks) stays in the trial's metrics.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inr_tune.fileio import write_durable

__all__ = ["ID_COLUMNS", "RESULTS", "results_frame", "results_rows", "write_results"]

RESULTS = "results.csv"
ID_COLUMNS = (
    "node",
    "parent",
    "block",
    "field",
    "n_frames",
    "status",
    "strategy",
    "mutation",
    "verdict",
    "r2",
    "error",
)
TRIAL_SECTIONS = ("data", "model", "training")
# metrics first in the table (the rest follow in name order)
LEADING = (
    "holdout_r2",
    "final_r2",
    "train_r2",
    "compression_ratio",
    "bits_per_value",
    "baseline_r2",
    "baseline_method",
    "nines_over_baseline",
    "kinograph_R2",
    "kinograph_SSIM",
    "psnr",
    "training_time",
    "steps_done",
    "partial",
)
SKIP = {"traceback", "history", "status", "error"}


def _scalar(value: Any) -> bool:
    if isinstance(value, bool) or value is None:
        return True
    if isinstance(value, (int, float)):
        return True
    return isinstance(value, str) and len(value) <= 200 and "\n" not in value


def results_rows(tree: Any) -> list[dict[str, Any]]:
    """One dict per node of ``tree`` (``search.tree.Tree``), in node order."""
    rows = []
    for node in tree.nodes:
        data = node.config.get("data", {})
        row: dict[str, Any] = {
            "node": node.id,
            "parent": node.parent,
            "block": node.block,
            "field": data.get("field"),
            "n_frames": data.get("n_frames"),
            "status": node.status,
            "strategy": node.strategy,
            "mutation": "; ".join(f"{k} {a}→{b}" for k, (a, b) in node.mutation.items()),
            "verdict": node.verdict,
            "r2": node.r2,
            "error": (node.error or "").splitlines()[0][:200] if node.error else None,
        }
        for section in TRIAL_SECTIONS:
            for key, value in (node.config.get(section) or {}).items():
                row[f"{section}.{key}"] = value
        for key, value in node.metrics.items():
            if key not in SKIP and key not in row and _scalar(value):
                row[key] = value
        rows.append(row)
    return rows


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = dict.fromkeys(ID_COLUMNS)
    config = sorted({k for r in rows for k in r if k.split(".")[0] in TRIAL_SECTIONS and "." in k})
    metrics = {k for r in rows for k in r} - set(seen) - set(config)
    lead = [k for k in LEADING if k in metrics]
    return [*seen, *lead, *sorted(metrics - set(lead)), *config]


def results_frame(tree: Any) -> Any:
    """The table as a pandas DataFrame (columns as in ``results.csv``)."""
    import pandas as pd

    rows = results_rows(tree)
    frame = pd.DataFrame(rows, columns=_columns(rows))
    frame["parent"] = frame["parent"].astype("Int64")  # root's children: <NA>, not NaN
    return frame


def write_results(run_dir: Path, tree: Any) -> Path:
    """Rewrite ``run_dir/results.csv`` (atomically) from ``tree``."""
    path = Path(run_dir) / RESULTS
    write_durable(path, results_frame(tree).to_csv(index=False))
    return path
