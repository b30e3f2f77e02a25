"""The run directory around the journal: options.json, the files derived from the journal,
and what ``--resume`` rebuilds.

``journal.jsonl`` is the source of truth; everything else in a run directory is derived
from it and is written again on ``--resume``, so a kill at any moment leaves nothing stale
or missing once the run is resumed:

- ``options.json`` is written once, atomically, before Ray starts (``write_options``); a
  new run refused before its first journal line takes it back (``rollback_new_run``).
- ``configs/iter_NNN.yaml`` of every node of the journal (``rebuild_configs``), and no
  half-written temp file (``remove_temp_files``).
- analysis.md, memory.md, ucb_scores.txt, rules.md and tree.png (``Reports``), and an
  ended block's baselines.csv rows, pareto.png and TensorBoard Pareto record
  (``restore_block_reports``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from inr_tune.errors import DataError
from inr_tune.fileio import write_durable
from inr_tune.journal import BlockEnd, BlockStart, RunEnd, RunExtended, read_records

__all__ = [
    "OPTIONS",
    "Reports",
    "finished_blocks",
    "finished_run",
    "read_options",
    "rebuild_configs",
    "remove_temp_files",
    "restore_block_reports",
    "rollback_new_run",
    "run_finished",
    "summary",
    "write_durable",
    "write_options",
]

OPTIONS = "options.json"
PARETO_STAGING = ".pareto.tmp"  # under trials/: a Pareto TensorBoard record being written


def write_options(run_dir: Path, opts: dict[str, Any]) -> list[Path]:
    """Create ``run_dir`` and write its options.json; returns the directories this made
    (deepest first), for ``rollback_new_run``."""
    made, p = [], run_dir
    while not p.exists():
        made.append(p)
        p = p.parent
    run_dir.mkdir(parents=True, exist_ok=True)
    write_durable(run_dir / OPTIONS, json.dumps(opts, indent=2))
    return made


def rollback_new_run(run_dir: Path, made: list[Path]) -> None:
    """Undo ``write_options`` of a run refused before its journal's first line (a bad
    dataset, a refused cluster, a budget no config meets): no run directory is left."""
    journal = run_dir / "journal.jsonl"
    if journal.exists() and journal.stat().st_size:
        return
    for name in (OPTIONS, f".{OPTIONS}.tmp", "journal.jsonl"):
        (run_dir / name).unlink(missing_ok=True)
    for d in made:
        try:
            d.rmdir()
        except OSError:  # something else lives there now
            break


def read_options(run_dir: Path) -> dict[str, Any]:
    """The saved options of the run in ``run_dir``, or one line on what is wrong."""
    path = run_dir / OPTIONS
    if not path.is_file():
        raise DataError(f"{run_dir} is not a run directory (no {OPTIONS}); nothing to resume")
    try:
        text = path.read_text(encoding="utf-8")
        opts = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        why = "it is empty" if path.stat().st_size == 0 else f"{type(err).__name__}: {err}"
        raise DataError(
            f"{path} cannot be read ({why}); the run's options are lost, start it again "
            "without --resume"
        ) from None
    if not isinstance(opts, dict):
        raise DataError(f"{path} holds no options object; start the run again without --resume")
    return opts


def finished_run(run_dir: Path) -> bool:
    """True when the run in ``run_dir`` has ended (``run_finished`` of its journal)."""
    return run_finished(read_records(run_dir / "journal.jsonl"))


def run_finished(records: list[Any]) -> bool:
    """True when the journal's last ``run_end`` comes after its last ``run_extended``."""
    end = max((i for i, r in enumerate(records) if isinstance(r, RunEnd)), default=-1)
    more = max((i for i, r in enumerate(records) if isinstance(r, RunExtended)), default=-1)
    return end > more


def finished_blocks(records: list[Any]) -> int:
    return len({r.block for r in records if isinstance(r, BlockEnd)})


def remove_temp_files(run_dir: Path) -> list[Path]:
    """Remove what a kill left half-written: ``.NAME.tmp`` files of the atomic writes
    (reports, configs, figures) and a Pareto TensorBoard record being staged."""
    gone = []
    for d in (run_dir, run_dir / "configs"):
        if d.is_dir():
            for f in [*d.glob(".*.tmp"), *d.glob(".*.tmp.png")]:
                f.unlink(missing_ok=True)
                gone.append(f)
    staging = run_dir / "trials" / PARETO_STAGING
    if staging.exists():
        shutil.rmtree(staging, ignore_errors=True)
        gone.append(staging)
    return gone


def rebuild_configs(run_dir: Path, tree: Any) -> list[int]:
    """Write ``configs/iter_NNN.yaml`` of every node of ``tree`` that is missing or differs
    (a kill between a batch's journal line and its config files); returns their ids."""
    from inr_tune.config_files import config_yaml, save_config
    from inr_tune.search.space import as_config

    written = []
    for node in tree.nodes:
        cfg = as_config(node.config)
        path = run_dir / "configs" / f"iter_{node.id:03d}.yaml"
        want = config_yaml(cfg)
        try:
            same = path.read_text(encoding="utf-8") == want
        except (OSError, UnicodeDecodeError):
            same = False
        if not same:
            save_config(cfg, path)
            written.append(node.id)
    return written


def restore_block_reports(
    run_dir: Path,
    index: int,
    started: BlockStart | dict[str, Any],
    spec: Any,
    ds: Any,
    dataset: str,
    tree: Any,
    windows: list[Any],
    storage: Any,
) -> str:
    """An ended block's share of the run directory, on ``--resume``: its baselines in
    baselines.csv, pareto.png and its TensorBoard Pareto record (written only if the kill
    came before it was); returns the block's comparison sentence. Prints nothing."""
    from inr_tune.config import config_from_dict
    from inr_tune.reports.pareto import block_baselines, report_fidelity
    from inr_tune.search.budget import block_budget

    started = started if isinstance(started, BlockStart) else BlockStart.from_dict(started)
    root = config_from_dict(started.root_config)
    baselines = block_baselines(dataset, root, run_dir, windows, quiet=True)
    return report_fidelity(
        run_dir,
        tree.block_nodes(index),
        baselines,
        block_budget(root, spec, ds),
        f"block {index}",
        tb=storage.url is None,
        tree=tree,
        quiet=True,
    )


class Reports:
    """Keeps analysis.md, memory.md, ucb_scores.txt and tree.png in step with the journal."""

    def __init__(self, run_dir: Path, title: str) -> None:
        self.run_dir = run_dir
        self.title = title

    def write(self, ctx: Any, block: int | None, ucb_c: float, tree_png: bool = False) -> None:
        """Rewrite the reports; ``block`` None (the run's end) keeps the UCB scores of the
        last block started, so ucb_scores.txt is empty only at a block's start."""
        from inr_tune.reports.analysis import render_analysis
        from inr_tune.reports.memory import render_memory
        from inr_tune.reports.results import write_results
        from inr_tune.search.tree import format_ucb_scores

        write_results(self.run_dir, ctx.tree)  # one row per trial, finished or not
        records = ctx.journal.records
        classes = ctx.experiment.classes
        write_durable(
            self.run_dir / "analysis.md", render_analysis(records, ctx.tree, classes, self.title)
        )
        write_durable(
            self.run_dir / "memory.md", render_memory(records, ctx.tree, classes, self.title)
        )
        last = ctx.journal.latest(BlockStart)
        if block is None and last is not None:  # the run ended: keep its last block's scores
            block, ucb_c = last.block, last.ucb_c
        scores = ctx.tree.ucb_scores(block, ucb_c, ctx.reward) if block is not None else []
        write_durable(self.run_dir / "ucb_scores.txt", format_ucb_scores(scores))
        if ctx.rules:
            write_durable(
                self.run_dir / "rules.md",
                "# Rules added by this run\n\n" + "".join(f"- {r}\n" for r in ctx.rules),
            )
        if tree_png and len(ctx.tree):
            from inr_tune.plots import save_figure, tree_plot

            save_figure(tree_plot(ctx.tree, classes, title=self.title), self.run_dir / "tree.png")


def summary(ctx: Any, run_dir: Path, seconds: float, storage: Any, sentences: list[str]) -> None:
    """The lines printed when a run ends: the best config, where its files are, the
    blocks' comparison sentences and what was written."""
    from inr_tune.reports.analysis import config_line
    from inr_tune.search.seeds import best_config

    trials = storage.url or str(storage.local)
    top = best_config(ctx.tree, ctx.tree.nodes)
    print(f"\ndone in {seconds / 60:.1f} min: {len(ctx.tree)} trials in {run_dir}")
    if top is not None:
        best = top.original
        m = best.metrics
        print(
            f"best config: node {best.id} (block {best.block}) {'held-out ' if m.get('holdout_r2') is not None else ''}"
            f"R² {top.r2_text()} at {m.get('compression_ratio', float('nan')):.1f}× kinograph R²="
            f"{m.get('kinograph_R2', float('nan')):.5f} in {m.get('training_time', 0) / 60:.1f} min"
        )
        print(f"  config: {config_line(best.config)} [{best.config['model']['inr_type']}]")
        print(
            f"  {run_dir}/configs/iter_{best.id:03d}.yaml, {storage.trial_dir(best.id)}/field.png"
        )
    for line in sentences:
        print(line)
    print(
        f"wrote: {run_dir}/results.csv, analysis.md, memory.md, ucb_scores.txt, tree.png, "
        "pareto.png, baselines.csv, journal.jsonl"
        + (f"; trials in {trials}/trials" if trials != str(run_dir.resolve()) else ", trials/")
    )
    if storage.url:
        print(f"copied the reports to {storage.url}/")
    print(f"compare trials: tensorboard --logdir {trials}/trials")
