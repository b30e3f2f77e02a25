"""Run and read searches from Python (a notebook, a script)::

    from inr_tune import run_search, load_run

    df = run_search(experiment="mpm", frames=100, iterations=4, parallel=2,
                    set=["training.total_steps=2000"], out="runs/nb")
    df[["node", "status", "holdout_r2", "compression_ratio", "model.hidden_dim"]]
    load_run("runs/nb")  # the same table, also while the run is going on

``run_search`` takes the options of ``python -m inr_tune.block`` as keywords (``experiment``,
``field``, ``frames``, ``iterations``, ``blocks``, ``parallel``, ``proposer``, ``ucb_c``, …),
``set=[…]`` items and/or a ``config`` (a YAML path, a mapping of sections or a ``Config``,
whose keys that differ from the defaults apply); it runs the search exactly as the command
does and returns its trials as a pandas DataFrame, one row per trial (``results.csv``).
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from inr_tune.config import Config
from inr_tune.errors import DataError

__all__ = ["load_run", "run_search"]


def run_search(
    config: str | os.PathLike[str] | Mapping[str, Any] | Config | None = None,
    *,
    out: str | os.PathLike[str] | None = None,
    resume: bool = False,
    set: Iterable[str] = (),
    quiet: bool = False,
    **options: Any,
) -> Any:
    """Run (``resume``: continue) a search; its trials as a pandas DataFrame.

    Bad settings raise ``inr_tune.errors.ConfigError`` (one line); Ctrl-C raises
    ``KeyboardInterrupt`` after stopping the trials, and ``run_search(out=…, resume=True)``
    continues. ``quiet`` keeps the block's live table and summary off stdout. Ray is shut
    down at the end, and the caller's signal handlers and matplotlib backend are left
    as they were.
    """
    from inr_tune import signals
    from inr_tune.driver import execute
    from inr_tune.runner.cluster import stop_ray
    from inr_tune.settings import new_run_dir, resumed_settings, settings_from

    if resume:
        if out is None:
            raise DataError("resume=True needs out=, the run directory to continue")
        blocks = options.pop("blocks", None)
        if config is not None or list(set) or options:
            raise DataError(
                "resume=True continues with the run's saved settings; only blocks= may be given"
            )
        settings, run_dir = resumed_settings(Path(out), blocks), Path(out)
    else:
        settings = settings_from(config, list(set), options)
        run_dir = new_run_dir(settings, out)
    sink = contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext()
    try:
        with signals.handled(), sink:
            execute(settings, run_dir, resume=resume)
    finally:
        stop_ray()
    return load_run(run_dir)


def load_run(path: str | os.PathLike[str]) -> Any:
    """The trials of the run in ``path`` (finished or still running) as a pandas DataFrame:
    the columns of its ``results.csv``, rebuilt from the journal."""
    import json

    from inr_tune.reports.results import results_frame
    from inr_tune.search.session import replay_tree

    journal = Path(path) / "journal.jsonl"
    if not journal.is_file():
        raise DataError(f"{path} is not a run directory (no journal.jsonl)")
    events = []
    lines = journal.read_text(encoding="utf-8").split("\n")
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            if n == len(lines):  # a running search is writing this line now
                break
            raise DataError(
                f"{journal} line {n} is not valid JSON; the journal is corrupt"
            ) from None
    return results_frame(replay_tree(events))
