"""benchmarks/search_efficiency.py's runs: the tasks, the benchmark's search space, and one
``run_search`` block per (task, searcher, seed) with what it measured."""

from __future__ import annotations

import gc
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_efficiency_report import OK_STATUSES, objective_trace

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Task:
    """One window of one experiment, searched under the experiment's size budget."""

    name: str
    experiment: str
    field: str
    frames: int


TASKS = {
    t.name: t
    for t in (
        Task("F@100", "mpm", "F", 100),
        Task("S@100", "mpm", "S", 100),
        Task("stimulus@100", "flyvis", "stimulus", 100),
    )
}


def searcher_problem(searcher: str) -> str | None:
    """None when ``search.searcher=<searcher>`` is a known setting, else why not."""
    from inr_tune.errors import InrTuneError
    from inr_tune.settings import settings_from

    try:
        settings_from(None, [f"search.searcher={searcher}"], {})
    except InrTuneError as err:
        return str(err).splitlines()[0]
    return None


def benchmark_space(experiment: str, out: Path) -> Path:
    """The experiment's search space without ``total_steps`` (every trial gets the same
    short schedule), written to ``out/spaces/``; its path."""
    import yaml

    from inr_tune.search.experiment import load_experiment

    exp = load_experiment(experiment)
    spec = str(yaml.safe_load(exp.path.read_text())["space"])
    path = Path(spec)
    if not path.suffix:
        path = REPO / "configs" / "spaces" / f"{spec}.yaml"
    elif not path.is_absolute():
        path = exp.path.parent / path
    raw = yaml.safe_load(path.read_text())
    raw["params"] = {
        k: v for k, v in raw["params"].items() if v.get("key") != "training.total_steps"
    }
    raw["name"] = f"{raw.get('name', experiment)}_fixed_steps"
    path = out / "spaces" / f"{raw['name']}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# The experiment's search space without total_steps: every trial of\n"
        "# benchmarks/search_efficiency.py trains the same short schedule.\n"
        + yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)
    )
    return path


def journal_span(run_dir: Path) -> float:
    """Seconds from the run's first to its last journal line (the block, without Ray's
    start and stop); NaN without a journal."""
    import json

    path = run_dir / "journal.jsonl"
    if not path.is_file():
        return math.nan
    times = []
    for line in path.read_text().splitlines():
        try:
            times.append(float(json.loads(line)["time"]))
        except (ValueError, KeyError, TypeError):
            continue
    return max(times) - min(times) if len(times) > 1 else math.nan


def run_finished(run_dir: Path) -> bool:
    path = run_dir / "journal.jsonl"
    return path.is_file() and '"event":"run_end"' in path.read_text()


def measure(df: Any, run_dir: Path, parallel: int) -> dict[str, Any]:
    trace = objective_trace(df)
    span = journal_span(run_dir)
    col = df.get("wall_time")
    trial_wall = (
        float(np.nanmedian(col.astype(float))) if col is not None and len(col) else math.nan
    )
    tt = df.get("training_time")
    train = float(np.nanmedian(tt.astype(float))) if tt is not None and len(tt) else math.nan
    ok = df[df["status"].isin(OK_STATUSES)] if len(df) else df
    ratio = (
        float(ok["compression_ratio"].min()) if len(ok) and "compression_ratio" in ok else math.nan
    )
    return {
        "trace": trace,
        "trials": len(trace),
        "ok_trials": int(np.isfinite(trace).sum()),
        "block_wall_s": span,
        "trial_wall_s": trial_wall,
        "training_time_s": train,
        "min_ratio_seen": ratio,
    }


def run_one(
    task: Task,
    searcher: str,
    seed: int,
    *,
    proposer: str,
    trials: int,
    parallel: int,
    sets: list[str],
    run_dir: Path,
    with_key: bool,
    reuse: bool,
    run_missing: bool = True,
) -> dict[str, Any]:
    """One block; the run's measures (``trace`` None and a ``note`` when it has none).
    ``run_missing`` false: only read a finished run in ``run_dir`` (``--no-run``)."""
    from inr_tune import load_run, run_search
    from inr_tune.errors import InrTuneError

    label = searcher if proposer == "rule" else f"{searcher}+{proposer}"
    row: dict[str, Any] = {"task": task.name, "searcher": label, "proposer": proposer, "seed": seed}
    if reuse and run_finished(run_dir):
        df = load_run(run_dir)
        return {**row, **measure(df, run_dir, parallel), "run_wall_s": math.nan, "note": "reused"}
    if not run_missing:
        return {**row, "trace": None, "note": "not run (--no-run)"}
    if (run_dir / "journal.jsonl").exists():
        return {
            **row,
            "trace": None,
            "note": f"{run_dir} holds an unfinished run (use another --runs)",
        }
    items = [*sets, "search.seed_reruns=0"]
    if with_key:
        items.append(f"search.searcher={searcher}")
    t0 = time.perf_counter()
    try:
        df = run_search(
            experiment=task.experiment,
            field=task.field,
            frames=task.frames,
            iterations=trials,
            parallel=parallel,
            blocks=1,
            proposer=proposer,
            seed=seed,
            out=str(run_dir),
            quiet=True,
            set=items,
        )
    except InrTuneError as err:
        return {**row, "trace": None, "note": f"error: {str(err).splitlines()[0]}"}
    except (ImportError, RuntimeError, OSError, ValueError) as err:
        return {**row, "trace": None, "note": f"error: {type(err).__name__}: {err}"[:300]}
    finally:
        gc.collect()
    wall = time.perf_counter() - t0
    return {**row, **measure(df, run_dir, parallel), "run_wall_s": wall, "note": ""}
