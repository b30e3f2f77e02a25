"""The block loop behind ``python -m inr_tune.block`` and ``inr_tune.run_search``: the
experiment's schedule, one ``BlockSession`` per block on Ray Tune, the reports after each
trial and block, and ``--resume`` of a run killed at any point.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from inr_tune import signals
from inr_tune.cli import EXIT_OK
from inr_tune.config import Config, apply_overrides
from inr_tune.errors import ConfigError, DataError, InrTuneError
from inr_tune.reports.live import LiveTable
from inr_tune.reports.run_dir import (
    Reports,
    finished_run,
    rebuild_configs,
    remove_temp_files,
    restore_block_reports,
    rollback_new_run,
    summary,
    write_options,
)
from inr_tune.runner.cluster import (
    cluster_gpu_memory,
    expected_memory,
    init_ray,
    memory_check,
    stop_ray,
    trial_resources,
)
from inr_tune.runner.tuner import run_block_on_ray


def make_proposer(
    opts: dict[str, Any], search: Any, run_dir: Path, log: Any
) -> tuple[Any, Any, str]:
    from inr_tune.search.proposers import RuleProposer

    rule = RuleProposer(seed=opts["seed"])
    choice = opts["proposer"]
    has_key = bool(os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_AUTH_TOKEN"))
    if choice == "auto":
        choice = "llm" if has_key else "rule"
    if choice == "rule":
        return rule, rule, "rule"
    if not has_key and not os.environ.get("ANTHROPIC_BASE_URL"):
        raise ConfigError(
            "--proposer llm needs ANTHROPIC_API_KEY (or ANTHROPIC_AUTH_TOKEN) in the environment"
        )
    from inr_tune.search.proposers.llm import LLMProposer

    model = opts.get("llm_model") or search.llm_model
    llm = LLMProposer(
        model,
        fallback=rule,
        run_dir=run_dir,
        log=log,
        timeout_s=search.llm_timeout_s,
        max_retries=search.llm_max_retries,
    )
    return llm, rule, f"llm ({model})"


def execute(opts: dict[str, Any], run_dir: Path, resume: bool) -> int:
    """Run (or resume) the search of ``opts`` in ``run_dir``; the exit code."""
    signals.install()  # Ctrl-C and SIGTERM stop the run cleanly (exit 130 / 143)
    # options.json first (once, atomically): a run killed while Ray starts is resumable
    made = None if resume else write_options(run_dir, opts)
    try:
        return _run(opts, run_dir, resume)
    except InrTuneError:
        if made is not None:  # refused before its first journal line: leave no run directory
            rollback_new_run(run_dir, made)
        raise
    except KeyboardInterrupt as err:  # signals.Interrupted, or Ctrl-C before the handlers
        signals.stopping()
        stop_ray()
        signum = signals.received() or getattr(err, "signum", signal.SIGINT)
        raise signals.Interrupted(
            signum,
            f"interrupted by {signals.NAMES.get(signum, signum)}: stopped; the trials that "
            f"finished are kept, continue with: python -m inr_tune.block --out {run_dir} --resume",
        ) from None


def _run(opts: dict[str, Any], run_dir: Path, resume: bool) -> int:
    t_start = time.perf_counter()
    finished = resume and finished_run(run_dir)  # nothing to run: rebuild the files only

    from inr_tune.config import config_from_dict
    from inr_tune.data.defaults import ensure_default_dataset
    from inr_tune.data.store import open_dataset
    from inr_tune.reports.journal import Journal
    from inr_tune.reports.pareto import block_baselines, report_fidelity
    from inr_tune.reports.ranks import format_ranks, load_or_compute_ranks
    from inr_tune.search.budget import block_budget, fit_root
    from inr_tune.search.experiment import load_experiment
    from inr_tune.search.seeds import best_config
    from inr_tune.search.session import BlockSession, RunContext, replay_tree
    from inr_tune.runner.storage import resolve_storage

    exp = load_experiment(opts["experiment"])
    base = config_from_dict(apply_overrides({}, opts["set"]))
    blocks = exp.blocks_from(opts["field"], opts["frames"], opts["blocks"])
    dataset = base.data.path or str(ensure_default_dataset(exp.kind))
    ds = open_dataset(dataset)
    if ds.kind != exp.kind:
        raise DataError(f"{dataset} is a {ds.kind} dataset; experiment {exp.name} needs {exp.kind}")
    for b in blocks:
        ds.check_field(b.field)
        if b.n_frames > ds.n_frames:
            raise DataError(
                f"block {b.field}@{b.n_frames} needs {b.n_frames} frames but {dataset} has {ds.n_frames}; "
                "generate a longer dataset and pass --set data.path=PATH"
            )
    content_hash = ds.content_hash()
    storage = resolve_storage(opts.get("storage"), run_dir)
    cpus, gpus = (0, 0) if finished else init_ray(opts["address"])
    for spec in [] if finished else blocks:  # a budget no config can meet: one line
        start = exp.root_config(spec, gpu=bool(gpus), sets=opts["set"])
        fit_root(start, exp.space, block_budget(start, spec, ds))
    journal = Journal(run_dir / "journal.jsonl")
    resumed = bool(journal.events)
    if not resumed:
        from inr_tune.training.fit import version_stamp

        journal.append(
            "run_start",
            options=opts,
            experiment=exp.name,
            dataset=dataset,
            content_hash=content_hash,
            version=version_stamp(),
        )
    elif (
        journal.last("run_start") and journal.last("run_start").get("content_hash") != content_hash
    ):
        raise DataError(
            f"the dataset {dataset} changed since this run started (content hash differs)"
        )
    storage.upload_reports()
    tree = replay_tree(journal.events)
    remove_temp_files(run_dir)  # half-written files of a killed run; then what it lacked
    rebuild_configs(run_dir, tree)
    ctx = RunContext(
        run_dir=run_dir,
        journal=journal,
        tree=tree,
        experiment=exp,
        proposer=None,  # type: ignore[arg-type]
        fallback=None,
        parallel=opts["parallel"],
        n_iter=opts["iterations"],  # type: ignore[arg-type]
        reward=opts["reward"],
        memory=lambda: (
            (run_dir / "memory.md").read_text() if (run_dir / "memory.md").exists() else ""
        ),
    )
    proposer, fallback, proposer_name = (
        (None, None, "none")
        if finished
        else make_proposer(opts, base.search, run_dir, lambda event, **data: ctx.log(event, **data))
    )
    ctx.proposer, ctx.fallback = proposer, fallback
    memory = expected_memory(ds) if gpus else None  # start lines and the fit check
    gpu_bytes = cluster_gpu_memory() if gpus else None
    ctx.check_config = memory_check(gpus, opts["parallel"], ds, gpu_bytes, memory)
    for e in journal.of("user_input"):
        ctx.pinned.update(e.get("pins") or {})
        ctx._user_hash = e.get("digest", "")
    for e in journal.of("block_end"):
        ctx.rules += [r for r in e.get("new_rules") or [] if r not in ctx.rules]
    title = f"{run_dir.name} ({exp.name})"
    reports = Reports(run_dir, title)
    live = LiveTable(exp.classes, memory=memory)
    share = trial_resources(cpus, gpus, opts["parallel"])
    each = f"{share['cpu']:g} CPU" + (f" + {share['gpu']:g} GPU" if gpus else "")
    if finished:
        print(f"{run_dir} finished already: its files are rebuilt from the journal")
    else:
        print(
            f"{'resuming' if resumed else 'run'} {run_dir}: {exp.name}, {len(blocks)} block(s) × "
            f"{opts['iterations']} trials, {opts['parallel']} at a time on {cpus} CPU{'s' if cpus != 1 else ''}"
            f"{f' and {gpus} GPU(s)' if gpus else ''} ({each} each); proposer {proposer_name}; data {dataset}"
        )
    if gpus:
        print(
            f"GPU memory {gpu_bytes / 2**30:.0f} GiB (smallest GPU): configs whose concurrent "
            "trials do not fit are refused"
            if gpu_bytes
            else "GPU memory could not be read on the GPU nodes: no fit check before trials"
        )
    ucb_c = opts["ucb_c"]
    carried: Config | None = None
    sentences: list[str] = []
    windows: list[Any] = []  # (field, n_frames, Baselines) of each block, for baselines.csv
    for index, spec in enumerate(blocks, start=1):
        ended = [e for e in journal.of("block_end") if e["block"] == index]
        if ended:
            ucb_c = ended[0]["next_ucb_c"]
            best = tree.get(ended[0].get("best"))
            carried = config_from_dict(best.config) if best else carried
            if resumed:  # the kill may have come before the block's reports were written
                start = next(e for e in journal.of("block_start") if e["block"] == index)
                sentences.append(
                    restore_block_reports(
                        run_dir, index, start, spec, ds, dataset, tree, windows, storage
                    )
                )
            continue
        started = [e for e in journal.of("block_start") if e["block"] == index]
        if started:
            root = config_from_dict(started[0]["root_config"])
            ucb_c = started[0]["ucb_c"]
            ranks = started[0].get("ranks")
        else:
            sets = [*opts["set"], *(f"{k}={json.dumps(v)}" for k, v in ctx.pinned.items())]
            root = exp.root_config(spec, gpu=bool(gpus), sets=sets, carried=carried)
            root, shrunk = fit_root(root, exp.space, block_budget(root, spec, ds))
            if shrunk:
                print(f"starting config shrunk into the size budget: {', '.join(shrunk)}")
            problem = ctx.check_config(root)
            if problem:
                raise ConfigError(f"block {spec.field}@{spec.n_frames}: {problem}")
            ranks = load_or_compute_ranks(dataset, root.data, content_hash)
            ctx.log(
                "block_start",
                block=index,
                field=spec.field,
                n_frames=spec.n_frames,
                root_config=root.to_dict(),
                ucb_c=ucb_c,
                proposer=proposer_name,
                ranks=ranks,
            )
        budget = block_budget(root, spec, ds)
        print(
            f"\nblock {index}: {spec.field} @ {spec.n_frames} frames, ucb_c {ucb_c:g}"
            + (f"; {format_ranks(ranks)}" if ranks else "")
        )
        print(f"  {budget.describe()}")
        baselines = block_baselines(dataset, root, run_dir, windows)
        live.budget = budget
        live.header()
        # With Claude, a free slot is refilled while the other trials run (overlap); the
        # rule proposer waits for whole batches, so its runs are reproducible.
        session = BlockSession(
            ctx,
            block=index,
            spec=spec,
            root_config=root,
            ucb_c=ucb_c,
            overlap=proposer_name.startswith("llm"),
            budget=budget,
            baselines=baselines,
        )
        reports.write(ctx, index, ucb_c)
        run_block_on_ray(
            session,
            ctx,
            cpus=cpus,
            gpus=gpus,
            parallel=opts["parallel"],
            dataset=dataset,
            content_hash=content_hash,
            live=live,
            reports=reports,
            storage=storage,
            kind=exp.kind,
            early_stop=opts.get("early_stop", "none"),
        )
        if not session.done:
            raise InrTuneError(
                f"block {index} ended with unfinished trials; run again with --out {run_dir} --resume"
            )
        review = session.finish()
        reports.write(ctx, index, ucb_c, tree_png=True)
        sentences.append(
            report_fidelity(
                run_dir,
                tree.block_nodes(index),
                baselines,
                session.budget,
                f"block {index}",
                tb=storage.url is None,
                tree=tree,
            )
        )
        storage.upload_reports()
        top = best_config(tree, tree.block_nodes(index))  # best mean over its seeds
        carried = config_from_dict(top.original.config) if top else carried
        ucb_c = review.next_ucb_c
    if not finished:  # one run_end: a resumed finished run only rebuilds its files
        proposer.close()
        ctx.log("run_end", seconds=round(time.perf_counter() - t_start, 1))
    reports.write(ctx, None, ucb_c, tree_png=True)
    storage.upload_reports()
    summary(ctx, run_dir, time.perf_counter() - t_start, storage, sentences)
    return EXIT_OK
