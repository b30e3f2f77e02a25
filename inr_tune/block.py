"""``python -m inr_tune.block``: run search blocks — trials in parallel on Ray Tune, each a
parent config plus one mutation chosen on a UCB tree by Claude or the rule proposer.

The run directory holds ``journal.jsonl`` (the source of truth), ``analysis.md``,
``memory.md``, ``ucb_scores.txt``, ``configs/iter_NNN.yaml``, ``trials/iter_NNN/`` and
``tree.png``. ``--resume`` continues a run killed at any point: finished trials are
kept, the trials that were running are run again from an empty directory, and every file
derived from the journal is written again (``search/run_dir.py``). Ctrl-C and SIGTERM stop
the run cleanly (exit 130 / 143, with the resume command); after a SIGKILL nothing of the
run keeps running (``signals.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import signal
import socket
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from inr_tune import signals
from inr_tune.cli import EXIT_OK, run_cli
from inr_tune.config import Config, apply_overrides, parse_set
from inr_tune.errors import ConfigError, DataError, InrTuneError
from inr_tune.search.run_dir import (
    Reports,
    finished_run,
    read_options,
    rebuild_configs,
    remove_temp_files,
    restore_block_reports,
    rollback_new_run,
    summary,
    write_options,
)

__all__ = ["Reports", "main"]

OPTION_DEFAULTS: dict[str, Any] = {
    "experiment": "mpm",
    "frames": None,
    "field": None,
    "iterations": 8,
    "blocks": 1,
    "parallel": 4,
    "proposer": "auto",
    "ucb_c": 1.414,
    "reward": "nines",
    "seed": 0,
    "address": None,
    "set": [],
    "llm_model": None,
    "early_stop": "none",
    "storage": None,
    "objective": None,
    "min_ratio": None,
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m inr_tune.block",
        description=(
            "Run search blocks: trials in parallel (Ray Tune), each a parent config plus one "
            "mutation chosen on a UCB tree by Claude (ANTHROPIC_API_KEY set) or a deterministic "
            "rule proposer. Writes a run directory you can read, resume and open in TensorBoard."
        ),
    )
    a = p.add_argument
    a("--experiment", default=None, help="mpm | flyvis | experiment name or path (default mpm)")
    a(
        "--frames",
        type=int,
        default=None,
        help="frames of the first block (default: the schedule's first)",
    )
    a("--field", default=None, help="field of the first block (default: the schedule's first)")
    a("--iterations", type=int, default=None, help="trials per block (default 8)")
    a("--blocks", type=int, default=None, help="blocks to run, following the schedule (default 1)")
    a("--parallel", type=int, default=None, help="concurrent trials (default 4)")
    a(
        "--proposer",
        choices=("auto", "rule", "llm"),
        default=None,
        help="auto: Claude when ANTHROPIC_API_KEY/ANTHROPIC_AUTH_TOKEN is set, else rule",
    )
    a("--llm-model", default=None, help="Anthropic model name (default: search.llm_model)")
    a(
        "--ucb-c",
        type=float,
        default=None,
        help="UCB exploration constant of the first block (default 1.414)",
    )
    a("--reward", choices=("r2", "nines"), default=None, help="node reward (default nines)")
    a(
        "--objective",
        choices=("budget", "pareto", "r2"),
        default=None,
        help="budget (default): best held-out R² among configs at compression ratio ≥ "
        "--min-ratio, others refused before they run; pareto: reward a trial by its share of "
        "the (ratio, held-out R²) front, budget still applies; r2: size ignored "
        "(same as --set search.objective=…)",
    )
    a(
        "--min-ratio",
        type=float,
        default=None,
        help="size budget: least compression ratio (window values / parameters) a config may "
        "have (default: the experiment's; same as --set search.min_ratio=…)",
    )
    a("--seed", type=int, default=None, help="seed of the rule proposer (default 0)")
    a("--out", default=None, help="run directory (default runs/<experiment>-<time>)")
    a("--resume", action="store_true", help="continue the run in --out with its saved options")
    a("--address", default=None, help="join an existing Ray cluster (auto or HOST:PORT)")
    a(
        "--storage",
        default=None,
        help="where trial results go (default: inside --out): a directory every node sees, "
        "or an fsspec URL (s3://bucket/runs needs s3fs, gs:// gcsfs); credentials come "
        "from each node's environment",
    )
    a(
        "--early-stop",
        choices=("none", "asha"),
        default=None,
        help="asha: stop hopeless trials early on their reported R² (Ray's ASHA scheduler)",
    )
    a(
        "--set",
        action="append",
        default=None,
        metavar="SECTION.KEY=VALUE",
        help="override a key of every block's starting config (repeatable)",
    )
    return p


# ----------------------------------------------------------------------------- options
def resolve_options(args: argparse.Namespace) -> tuple[dict[str, Any], Path]:
    given = {k: v for k, v in vars(args).items() if k not in ("out", "resume") and v is not None}
    if args.resume:
        if not args.out:
            raise ConfigError("--resume needs --out DIR of the run to continue")
        out = Path(args.out)
        saved = read_options(out)
        if given:
            raise ConfigError(
                f"--resume continues with the run's saved options; drop --{next(iter(given)).replace('_', '-')}"
            )
        return {**OPTION_DEFAULTS, **saved}, out
    opts = {**OPTION_DEFAULTS, **given}
    for key in ("iterations", "blocks", "parallel"):
        if opts[key] < 1:
            raise ConfigError(f"--{key} must be ≥ 1, got {opts[key]}")
    if opts["frames"] is not None and opts["frames"] < 1:
        raise ConfigError(f"--frames must be ≥ 1, got {opts['frames']}")
    if not 0 <= opts["ucb_c"] <= 10:
        raise ConfigError(f"--ucb-c must be in [0, 10], got {opts['ucb_c']}")
    # --objective and --min-ratio are sugar for --set search.objective / search.min_ratio
    sugar = [f"search.{k}={opts[k]}" for k in ("objective", "min_ratio") if opts[k] is not None]
    opts["set"] = [*opts["set"], *sugar]
    for item in opts["set"]:
        parse_set(item)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = (
        Path(args.out)
        if args.out
        else Path("runs") / f"{opts['experiment'].replace('/', '_')}-{stamp}"
    )
    if (out / "journal.jsonl").exists():
        raise ConfigError(
            f"{out} already holds a run; use --resume to continue it or another --out"
        )
    return opts, out


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


# ----------------------------------------------------------------------------- live table
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


# ----------------------------------------------------------------------------- Ray
def init_ray(address: str | None) -> tuple[int, int]:
    """Start (or join) Ray quietly; returns (CPUs, GPUs) of the cluster.

    A cluster that cannot be reached or refuses this driver's token is one line.
    """
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # no Ray Tune tables: we print our own
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    import ray

    for name in ("ray", "ray.tune", "ray.train", "ray.air"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="ray.*")
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,
            "logging_level": logging.ERROR,
            "configure_logging": True,
        }
        if address:
            _check_reachable(address)
            try:
                with _native_stderr_to_file():  # Ray's C++ client logs each retry there
                    ray.init(address=address, **kwargs)
            except (ConnectionError, RuntimeError) as err:
                raise InrTuneError(_join_error(address, err)) from None
        else:  # always a new local instance, never a cluster found through Ray's address file
            signals.start_watchdog()  # its processes die with this one, even on SIGKILL
            try:
                ray.init(address="local", num_cpus=os.cpu_count() or 1, **kwargs)
            except SystemExit:  # Ray's SIGTERM handler, in place while ray.init runs
                raise signals.Interrupted(signal.SIGTERM) from None
        signals.install()  # instead of the SIGTERM handler ray.init installed
    res = ray.cluster_resources()
    return int(res.get("CPU", 1)), int(res.get("GPU", 0))


@contextlib.contextmanager
def _native_stderr_to_file() -> Iterator[None]:
    """Send file descriptor 2 (C++ log lines) to a temp file while joining a cluster."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def _check_reachable(address: str) -> None:
    """Fail fast on HOST:PORT that takes no connection (Ray itself retries for minutes)."""
    if address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=10).close()
    except (OSError, ValueError) as err:
        raise InrTuneError(f"cannot join the Ray cluster at {address}: {err}") from None


def _join_error(address: str, err: BaseException) -> str:
    chain: list[BaseException] = []
    e: BaseException | None = err
    while e is not None and len(chain) < 8:
        chain.append(e)
        e = e.__cause__ or e.__context__
    if any(
        type(c).__name__ == "AuthenticationError" or "InvalidAuthToken" in str(c) for c in chain
    ):
        return (
            f"the Ray cluster at {address} refused this driver's token: set RAY_AUTH_MODE=token "
            "and the cluster's RAY_AUTH_TOKEN (see docker/README.md)"
        )
    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return f"cannot join the Ray cluster at {address}: {first}"


def trials_per_gpu(gpus: int, parallel: int) -> int:
    """How many of ``parallel`` concurrent trials share one GPU: ``ceil(parallel/gpus)``."""
    return math.ceil(parallel / gpus)


def trial_resources(cpus: int, gpus: int, parallel: int) -> dict[str, float]:
    """What one trial asks Ray for so that ``parallel`` trials run at once: an equal CPU
    share and, on a cluster with GPUs, ``1/k`` of a GPU where ``k = trials_per_gpu``
    (4 trials on one GPU get 0.25 each), one GPU when there are enough, and no GPU key at
    all on a cluster without GPUs.

    Ray packs fractional GPUs per device: a 0.75-GPU trial never spans two GPUs, so
    ``gpus/parallel`` (0.75 for 4 trials on 3 GPUs) would run only 3 at a time.
    """
    resources: dict[str, float] = {"cpu": cpus / parallel}
    if gpus:
        resources["gpu"] = 1.0 / trials_per_gpu(gpus, parallel)
    return resources


def run_block_on_ray(
    session: Any,
    ctx: Any,
    *,
    cpus: int,
    gpus: int,
    parallel: int,
    dataset: str,
    content_hash: str,
    live: LiveTable,
    reports: Reports,
    storage: Any,
    kind: str = "mpm",
    early_stop: str = "none",
) -> None:
    from ray import tune

    from inr_tune.search.searcher import UCBTreeSearcher
    from inr_tune.search.trainable import train_node

    threads = max(1, cpus // parallel)
    resources = trial_resources(cpus, gpus, parallel)
    remote = storage.url is not None

    def trial_config(node: Any) -> dict[str, Any]:
        # an attempt of a run that was killed: its files go, TensorBoard shows one run
        storage.clear_trial(
            node.id, ray_name=f"block_{node.block}/b{node.block}_iter_{node.id:03d}"
        )
        return {
            "node_id": node.id,
            "block": node.block,
            "cfg": node.config,
            # With an object store a trial writes into its Ray working directory, which
            # Ray uploads to ``result_dir``; with a directory it writes there directly.
            "out_dir": None if remote else storage.trial_dir(node.id),
            "result_dir": storage.trial_dir(node.id),
            "dataset": dataset,
            "content_hash": content_hash,
            "kind": kind,
            "threads": threads,
            "tb_name": f"b{node.block}_iter_{node.id:03d}",
        }

    def on_done(node: Any) -> None:
        live.done(node)
        reports.write(ctx, session.block, session.ucb_c)

    searcher = UCBTreeSearcher(session, trial_config, on_start=live.start, on_done=on_done)
    scheduler = None
    if early_stop == "asha":
        from ray.tune.schedulers import ASHAScheduler

        t = session.root_config.training
        # Trials report R² every eval_every steps; ASHA compares them at rungs of steps
        # on ``score``: the held-out R² (all held-out frames, the frames every node is
        # scored on) when the window holds frames out, else R² over ≤ 64 sampled frames.
        scheduler = ASHAScheduler(
            time_attr="step",
            metric="score",
            mode="max",
            max_t=10 * max(t.total_steps, 1),  # mutations may raise total_steps
            grace_period=max(t.eval_every, t.total_steps // 8),
            reduction_factor=2,
        )
    tuner = tune.Tuner(
        tune.with_resources(train_node, resources),
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            num_samples=-1,
            max_concurrent_trials=parallel,
            scheduler=scheduler,
            trial_name_creator=lambda t: f"b{t.config['block']}_iter_{t.config['node_id']:03d}",
            trial_dirname_creator=(
                (lambda t: f"iter_{t.config['node_id']:03d}")
                if remote
                else (lambda t: f"b{t.config['block']}_iter_{t.config['node_id']:03d}")
            ),
        ),
        run_config=tune.RunConfig(
            # With an object store Ray's trial directories are the trials' own.
            name="trials" if remote else f"block_{session.block}",
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=0),
            sync_config=tune.SyncConfig(sync_artifacts=remote, sync_period=60),
            **storage.ray_storage(),
        ),
    )
    tuner.fit()


def expected_memory(ds: Any) -> Any:
    """``config -> bytes``: a trial's expected peak GPU memory on the dataset ``ds``."""
    from inr_tune.training.fit import estimate_memory

    return lambda cfg: estimate_memory(
        cfg, cfg.data.n_frames, ds.n_points, len(ds.components[cfg.data.field])
    )


def _gpu_bytes() -> int | None:
    """Memory of the GPU Ray gave this task (None where torch sees no CUDA device)."""
    import torch

    if not torch.cuda.is_available():
        return None
    return int(torch.cuda.get_device_properties(0).total_memory)


def cluster_gpu_memory(timeout_s: float = 60.0, probe: Any = _gpu_bytes) -> int | None:
    """The smallest GPU memory over the cluster's GPU nodes, in bytes, read on the nodes
    themselves: the driver often has no GPU (a cluster's head). A tiny GPU share is
    enough, so the probe runs beside other work; nodes that do not answer within
    ``timeout_s`` (GPUs taken whole by another job) are left out; None when no node said.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    task = ray.remote(num_cpus=0, num_gpus=0.001, max_retries=0)(probe)
    refs = [
        task.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
        ).remote()
        for n in ray.nodes()
        if n.get("Alive") and n.get("Resources", {}).get("GPU", 0) > 0
    ]
    if not refs:
        return None
    ready, pending = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
    for ref in pending:
        ray.cancel(ref, force=True)
    sizes = []
    for ref in ready:
        with contextlib.suppress(Exception):  # a node whose probe failed says nothing
            sizes.append(ray.get(ref) or 0)
    return min((b for b in sizes if b), default=None)


def memory_check(
    gpus: int, parallel: int, ds: Any, total_bytes: int | None, memory: Any = None
) -> Any:
    """A check refusing configs whose concurrent trials cannot fit on one GPU of
    ``total_bytes`` (None: the size is unknown and nothing is refused); ``memory`` is
    ``expected_memory(ds)`` when the caller has it already."""
    if not gpus or not total_bytes:
        return lambda cfg: None
    per_gpu = trials_per_gpu(gpus, parallel)
    memory = memory or expected_memory(ds)

    def check(cfg: Config) -> str | None:
        need = memory(cfg)
        if need * per_gpu > total_bytes:
            return (
                f"{per_gpu} concurrent trials of {need / 2**30:.1f} GiB each do not fit a "
                f"{total_bytes / 2**30:.0f} GiB GPU; lower --parallel, batch_size or width"
            )
        return None

    return check


# ----------------------------------------------------------------------------- driver
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    opts, run_dir = resolve_options(args)
    signals.install()  # Ctrl-C and SIGTERM stop the run cleanly (exit 130 / 143)
    # options.json first (once, atomically): a run killed while Ray starts is resumable
    made = None if args.resume else write_options(run_dir, opts)
    try:
        return _run(opts, run_dir, args.resume)
    except InrTuneError:
        if made is not None:  # refused before its first journal line: leave no run directory
            rollback_new_run(run_dir, made)
        raise
    except KeyboardInterrupt as err:  # signals.Interrupted, or Ctrl-C before the handlers
        signals.stopping()
        _stop_ray()
        signum = signals.received() or getattr(err, "signum", signal.SIGINT)
        raise signals.Interrupted(
            signum,
            f"interrupted by {signals.NAMES.get(signum, signum)}: stopped; the trials that "
            f"finished are kept, continue with: python -m inr_tune.block --out {run_dir} --resume",
        ) from None


def _stop_ray() -> None:
    """Shut Ray down if this process started or joined it (its trials stop with it)."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        with contextlib.suppress(Exception):
            ray.shutdown()


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
    from inr_tune.search.storage import resolve_storage

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


if __name__ == "__main__":
    sys.exit(run_cli(main))
