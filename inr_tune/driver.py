"""The block loop behind ``python -m inr_tune.block`` and ``inr_tune.run_search``: the
experiment's schedule, one ``BlockSession`` per block on Ray Tune, the reports after each
trial and block, and ``--resume`` of a run killed at any point (or of a finished run,
to add blocks).

Everything it reads comes from one ``Settings`` (``settings.py``): ``block.*`` and
``search.*`` drive the search, the other keys every block's starting config. The
settings that user_input.md changes while the run goes on (``session.LIVE_KEYS``) are
applied on top, and again on ``--resume`` from the journal.
"""

from __future__ import annotations

import gc
import json
import signal
import time
from pathlib import Path
from typing import Any

from inr_tune import signals
from inr_tune.cli import EXIT_OK
from inr_tune.config import Config, config_from_dict
from inr_tune.errors import ConfigError, DataError, InrTuneError
from inr_tune.journal import (
    BlockEnd,
    BlockSkipped,
    BlockStart,
    Journal,
    RunEnd,
    RunExtended,
    RunStart,
    UserInput,
    read_records,
)
from inr_tune.reports.live import LiveTable
from inr_tune.reports.run_dir import (
    Reports,
    finished_blocks,
    rebuild_configs,
    remove_temp_files,
    restore_block_reports,
    rollback_new_run,
    run_finished,
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
from inr_tune.settings import Settings

__all__ = ["execute"]


def execute(settings: Settings, run_dir: Path, resume: bool, *, freeze_gc: bool = False) -> int:
    """Run (or resume) the search of ``settings`` in ``run_dir``; the exit code.
    ``freeze_gc``: the command line's process, which ends with the run."""
    signals.install()  # Ctrl-C and SIGTERM stop the run cleanly (exit 130 / 143)
    # options.json first (once, atomically): a run killed while Ray starts is resumable
    made = None if resume else write_options(run_dir, settings.to_json())
    try:
        return SearchRun(settings, run_dir, resume, freeze_gc=freeze_gc).run()
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


class SearchRun:
    """One run of the block loop (a new run, a resumed one, or a finished one whose files
    are rebuilt)."""

    def __init__(
        self, settings: Settings, run_dir: Path, resume: bool, *, freeze_gc: bool = False
    ) -> None:
        self.settings = settings
        self.freeze_gc = freeze_gc
        self.run_dir = run_dir
        self.resume = resume
        self.t_start = time.perf_counter()

    # ------------------------------------------------------------------ settings
    @property
    def current(self) -> Settings:
        """The run's settings with those user_input.md changed since it started."""
        over = self.ctx.overrides if hasattr(self, "ctx") else {}
        return self.settings.with_sets(f"{k}={json.dumps(v)}" for k, v in over.items())

    def blocks(self) -> list[Any]:
        b = self.current.block
        return self.exp.blocks_from(b.field, b.frames, b.blocks)

    def sets(self) -> list[str]:
        pins = (f"{k}={json.dumps(v)}" for k, v in self.ctx.pinned.items())
        return [*self.current.sets, *pins]

    # ------------------------------------------------------------------ set-up
    def _open(self) -> None:
        from inr_tune.data.defaults import ensure_default_dataset
        from inr_tune.data.store import open_dataset
        from inr_tune.runner.storage import resolve_storage
        from inr_tune.search.budget import block_budget, fit_root
        from inr_tune.search.experiment import load_experiment
        from inr_tune.search.session import with_space

        s = self.settings
        events = read_records(self.run_dir / "journal.jsonl") if self.resume else []
        extend = self.resume and run_finished(events) and finished_blocks(events) < s.block.blocks
        self.finished = self.resume and run_finished(events) and not extend
        exp = load_experiment(s.block.experiment)
        if s.search.space:
            exp = with_space(exp, s.search.space)
        self.exp = exp
        base = s.config
        self.dataset = base.data.path or str(ensure_default_dataset(exp.kind))
        ds = self.ds = open_dataset(self.dataset)
        if ds.kind != exp.kind:
            raise DataError(
                f"{self.dataset} is a {ds.kind} dataset; experiment {exp.name} needs {exp.kind}"
            )
        for b in exp.blocks_from(s.block.field, s.block.frames, s.block.blocks):
            problem = ds.window_problem(b.field, b.n_frames)
            if problem:
                raise DataError(problem)
        self.content_hash = ds.content_hash()
        self.storage = resolve_storage(s.block.storage, self.run_dir)
        self.cpus, self.gpus = (0, 0) if self.finished else init_ray(s.block.address)
        for spec in (
            [] if self.finished else exp.blocks_from(s.block.field, s.block.frames, s.block.blocks)
        ):  # a budget no config can meet: one line
            start = exp.root_config(spec, gpu=bool(self.gpus), sets=list(s.sets))
            fit_root(start, exp.space, block_budget(start, spec, ds))
        journal = self.journal = Journal(self.run_dir / "journal.jsonl")
        self.resumed = bool(journal.events)
        if not self.resumed:
            from inr_tune.training.fit import version_stamp

            journal.append(
                RunStart(
                    options=s.to_json(),
                    experiment=exp.name,
                    dataset=self.dataset,
                    content_hash=self.content_hash,
                    version=version_stamp(),
                )
            )
        elif getattr(journal.latest(RunStart), "content_hash", None) != self.content_hash:
            raise DataError(
                f"the dataset {self.dataset} changed since this run started (content hash differs)"
            )
        if extend:
            write_options(self.run_dir, s.to_json())
            journal.append(RunExtended(blocks=s.block.blocks))

    def _context(self) -> None:
        from inr_tune.search.session import RunContext, replay_tree

        s, run_dir, journal = self.settings, self.run_dir, self.journal
        self.storage.upload_reports()
        tree = self.tree = replay_tree(journal.events)
        remove_temp_files(run_dir)  # half-written files of a killed run; then what it lacked
        rebuild_configs(run_dir, tree)
        memory_md = run_dir / "memory.md"
        ctx = self.ctx = RunContext(
            run_dir=run_dir,
            journal=journal,
            tree=tree,
            experiment=self.exp,
            proposer=None,  # type: ignore[arg-type]
            parallel=s.block.parallel,
            n_iter=s.block.iterations,
            reward=s.search.reward,
            memory=lambda: memory_md.read_text() if memory_md.exists() else "",
        )
        for r in journal.records:  # what user_input.md set, again on --resume, in order
            if isinstance(r, RunExtended):  # --resume --blocks N outranks user_input.md
                ctx.overrides["block.blocks"] = r.blocks
            elif isinstance(r, UserInput):
                ctx.apply_user_input(r.pins, r.settings)
                ctx._user_hash = r.digest
        for end in journal.select(BlockEnd):
            ctx.rules += [rule for rule in end.new_rules if rule not in ctx.rules]
        if self.finished:
            self.proposer_name = "none"
        else:
            log = lambda event, **data: ctx.log(event, **data)  # noqa: E731
            from inr_tune.search.proposers import make_proposer

            ctx.proposer, self.proposer_name = make_proposer(s.search, run_dir, log)
        self.memory = expected_memory(self.ds) if self.gpus else None
        self.gpu_bytes = cluster_gpu_memory() if self.gpus else None
        self.reports = Reports(run_dir, f"{run_dir.name} ({self.exp.name})")
        self.live = LiveTable(self.exp.classes, memory=self.memory)

    def _banner(self) -> None:
        if self.finished:
            print(f"{self.run_dir} finished already: its files are rebuilt from the journal")
            return
        b, cpus, gpus = self.current.block, self.cpus, self.gpus
        share = trial_resources(cpus, gpus, b.parallel)
        each = f"{share['cpu']:g} CPU" + (f" + {share['gpu']:g} GPU" if gpus else "")
        print(
            f"{'resuming' if self.resumed else 'run'} {self.run_dir}: {self.exp.name}, "
            f"{len(self.blocks())} block(s) × {b.iterations} trials, {b.parallel} at a time on "
            f"{cpus} CPU{'s' if cpus != 1 else ''}{f' and {gpus} GPU(s)' if gpus else ''} "
            f"({each} each); proposer {self.proposer_name}; data {self.dataset}"
        )
        if gpus:
            print(
                f"GPU memory {self.gpu_bytes / 2**30:.0f} GiB (smallest GPU): configs whose "
                "concurrent trials do not fit are refused"
                if self.gpu_bytes
                else "GPU memory could not be read on the GPU nodes: no fit check before trials"
            )

    # ------------------------------------------------------------------ the loop
    def run(self) -> int:
        self._open()
        self._context()
        self._banner()
        if self.freeze_gc:
            # Torch, Ray and the dataset are loaded: keep their objects out of every later
            # garbage collection, whose full passes took 60–90 ms of a proposal at 500
            # nodes (not from Python: a notebook's later garbage must stay collectable).
            gc.freeze()
        ctx, journal = self.ctx, self.journal
        self.ucb_c = self.settings.search.ucb_c
        self.carried: Config | None = None
        self.sentences: list[str] = []
        self.windows: list[Any] = []  # (field, n_frames, Baselines) per block: baselines.csv
        index = 1
        while index <= len(self.blocks()):  # user_input.md may change block.blocks
            spec = self.blocks()[index - 1]
            ended = [e for e in journal.select(BlockEnd) if e.block == index]
            if ended:
                self._ended_block(index, spec, ended[0])
            elif problem := self.ds.window_problem(
                spec.field, spec.n_frames
            ):  # a block user_input.md added
                print(f"block {index} not run: {problem}")
                ctx.log(BlockSkipped(block=index, reason=problem))
                break
            else:
                self._run_block(index, spec)
            index += 1
        if not self.finished:  # one run_end per run (or extension) of the block loop
            ctx.proposer.close()
            ctx.log(RunEnd(seconds=round(time.perf_counter() - self.t_start, 1)))
        self.reports.write(ctx, None, self.ucb_c, tree_png=True)
        self.storage.upload_reports()
        seconds = time.perf_counter() - self.t_start
        summary(ctx, self.run_dir, seconds, self.storage, self.sentences)
        return EXIT_OK

    def _ended_block(self, index: int, spec: Any, ended: BlockEnd) -> None:
        self.ucb_c = ended.next_ucb_c if ended.next_ucb_c is not None else self.ucb_c
        best = self.tree.get(ended.best)
        self.carried = config_from_dict(best.config) if best else self.carried
        if self.resumed:  # the kill may have come before the block's reports were written
            start = next(e for e in self.journal.select(BlockStart) if e.block == index)
            self.sentences.append(
                restore_block_reports(
                    self.run_dir,
                    index,
                    start,
                    spec,
                    self.ds,
                    self.dataset,
                    self.tree,
                    self.windows,
                    self.storage,
                )
            )

    def _root(self, index: int, spec: Any) -> tuple[Config, float, Any]:
        """The block's starting config, UCB constant and window ranks (from its
        ``block_start`` line when it started before a kill)."""
        from inr_tune.reports.ranks import load_or_compute_ranks
        from inr_tune.search.budget import block_budget, fit_root

        started = [e for e in self.journal.select(BlockStart) if e.block == index]
        if started:
            e = started[0]
            return config_from_dict(e.root_config), float(e.ucb_c or self.ucb_c), e.ranks
        ucb_c = self.ctx.overrides.get("search.ucb_c", self.ucb_c)
        root = self.exp.root_config(
            spec, gpu=bool(self.gpus), sets=self.sets(), carried=self.carried
        )
        root, shrunk = fit_root(root, self.exp.space, block_budget(root, spec, self.ds))
        if shrunk:
            print(f"starting config shrunk into the size budget: {', '.join(shrunk)}")
        problem = self.ctx.check_config(root)
        if problem:
            raise ConfigError(f"block {spec.field}@{spec.n_frames}: {problem}")
        ranks = load_or_compute_ranks(self.dataset, root.data, self.content_hash)
        self.ctx.log(
            BlockStart(
                block=index,
                field=spec.field,
                n_frames=spec.n_frames,
                root_config=root.to_dict(),
                ucb_c=ucb_c,
                proposer=self.proposer_name,
                ranks=ranks,
            )
        )
        return root, ucb_c, ranks

    def _run_block(self, index: int, spec: Any) -> None:
        from inr_tune.reports.pareto import block_baselines, report_fidelity
        from inr_tune.reports.ranks import format_ranks
        from inr_tune.search.budget import block_budget
        from inr_tune.search.seeds import best_config
        from inr_tune.search.session import BlockSession

        ctx, tree, b = self.ctx, self.tree, self.current.block
        # block.parallel / early_stop of user_input.md apply from a block's start
        ctx.parallel = b.parallel
        ctx.check_config = memory_check(self.gpus, b.parallel, self.ds, self.gpu_bytes, self.memory)
        root, ucb_c, ranks = self._root(index, spec)
        budget = block_budget(root, spec, self.ds)
        print(
            f"\nblock {index}: {spec.field} @ {spec.n_frames} frames, ucb_c {ucb_c:g}"
            + (f"; {format_ranks(ranks)}" if ranks else "")
        )
        print(f"  {budget.describe()}")
        baselines = block_baselines(self.dataset, root, self.run_dir, self.windows)
        self.live.budget = budget
        self.live.header()
        # With Claude, a free slot is refilled while the other trials run (overlap); the
        # rule proposer waits for whole batches, so its runs are reproducible.
        session = BlockSession(
            ctx,
            block=index,
            spec=spec,
            root_config=root,
            ucb_c=ucb_c,
            overlap=self.proposer_name.startswith("llm"),
            budget=budget,
            baselines=baselines,
        )
        self.reports.write(ctx, index, ucb_c)
        run_block_on_ray(
            session,
            ctx,
            cpus=self.cpus,
            gpus=self.gpus,
            parallel=b.parallel,
            dataset=self.dataset,
            content_hash=self.content_hash,
            live=self.live,
            reports=self.reports,
            storage=self.storage,
            kind=self.exp.kind,
            early_stop=b.early_stop,
        )
        if not session.done:
            raise InrTuneError(
                f"block {index} ended with unfinished trials; run again with --out "
                f"{self.run_dir} --resume"
            )
        review = session.finish()
        self.reports.write(ctx, index, session.ucb_c, tree_png=True)
        self.sentences.append(
            report_fidelity(
                self.run_dir,
                tree.block_nodes(index),
                baselines,
                session.budget,
                f"block {index}",
                tb=self.storage.url is None,
                tree=tree,
            )
        )
        self.storage.upload_reports()
        top = best_config(tree, tree.block_nodes(index))  # best mean over its seeds
        self.carried = config_from_dict(top.original.config) if top else self.carried
        self.ucb_c = review.next_ucb_c
