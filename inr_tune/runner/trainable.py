"""The Ray Tune trainable: one node → one ``run_trial`` in a Ray worker.

What a trial reports (``tune.report``), for ASHA and a live display:

- every row: ``step`` and ``score`` — the step of the trial's latest evaluation and its
  R² (held-out R² when the window holds frames out, else the R² over ≤ 64 sampled
  frames; NaN before the first evaluation, step 0); ``final_r2`` (that evaluation's
  sample R², NaN before; Ray requires the searcher's metric in every row);
  ``steps_done`` (optimizer steps so far); ``total_steps`` (the planned steps: fewer
  when ``training.max_minutes`` shortened the run); ``elapsed_s`` (seconds since
  training started); ``eta_s`` (seconds left at the step rate so far, evaluations
  included; absent before the first step); ``loss`` (the latest training loss);
  ``total_params`` and ``compression_ratio``.
- an evaluation's row (every ``training.eval_every`` steps, before the run's end):
  also ``holdout_r2``, ``final_mse``, ``kinograph_R2``; there ``step == steps_done``.
- a light progress row every ``PROGRESS_EVERY_S`` seconds between evaluations: the keys
  above, repeating the last evaluation's (step, score) pair, so ASHA (time_attr
  ``step``, metric ``score``) sees no new measurement in it and stays correct.
- the final row: ``step == steps_done``, ``eta_s`` 0, ``score``, ``final_r2``
  (the whole window's), ``holdout_r2``, and ``metrics_json``: the ``TrialResult``.

Keys without a value are left out, except ``score`` and ``final_r2`` (always numbers).
"""

from __future__ import annotations

import contextlib
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from inr_tune.training.result import TrialResult, score_of

__all__ = ["PROGRESS_EVERY_S", "ensure_dataset", "record_unfinished_trial", "train_node"]

#: seconds between light progress rows (a report costs one round trip to the driver)
PROGRESS_EVERY_S = 10.0

#: the keys of an intermediate row (see the module docstring)
ROW_KEYS = (
    "step",
    "score",
    "final_r2",
    "holdout_r2",
    "loss",
    "final_mse",
    "kinograph_R2",
    "steps_done",
    "total_steps",
    "elapsed_s",
    "eta_s",
    "total_params",
    "compression_ratio",
)


def _placement() -> tuple[str | None, dict[str, float] | None]:
    """This worker's Ray node id and the resources Ray gave the trial (``{"CPU": 1.0,
    "GPU": 0.25}`` for one of four trials packed on a GPU); ``(None, None)`` outside Ray."""
    try:
        import ray

        ctx = ray.get_runtime_context()
        return ctx.get_node_id(), dict(ctx.get_assigned_resources())
    except Exception:  # outside Ray
        return None, None


def ensure_dataset(path: str | None, content_hash: str | None, kind: str) -> str:
    """The dataset on this node: the shared path, or the default one regenerated here.

    Either way its content hash must equal the driver's, so every node trains on
    identical data.
    """
    from inr_tune.data.defaults import default_dataset_path, ensure_default_dataset
    from inr_tune.data.store import open_dataset
    from inr_tune.errors import DataError

    if path and not Path(path).exists():
        if Path(path).name != default_dataset_path(kind).name:
            raise DataError(
                f"dataset {path} is not reachable on this node; put it on shared storage"
            )
        path = str(ensure_default_dataset(kind, progress=False))  # same generator, same seed
    ds = open_dataset(path)
    if content_hash and _content_hash(ds) != content_hash:
        raise DataError(f"dataset {path} on this node differs from the driver's (content hash)")
    return str(path)


def _content_hash(ds: Any) -> str:
    """``ds.content_hash()``, read from this machine's record of an earlier trial's hash of
    the same, unchanged files (``store.file_stamp``) when there is one: hashing reads the
    whole dataset (0.4 GB for the default MPM one, ~0.5 s) for every trial otherwise."""
    import hashlib
    import json

    from inr_tune.data.defaults import cache_dir
    from inr_tune.data.store import file_stamp
    from inr_tune.fileio import write_durable

    root = Path(ds.path).resolve()
    key = hashlib.sha256(str(root).encode()).hexdigest()[:16]
    record = cache_dir().parent / "content_hashes" / f"{key}.json"
    stamp = file_stamp(root)
    with contextlib.suppress(Exception):  # no record, or an unreadable one: hash again
        saved = json.loads(record.read_text())
        if saved["path"] == str(root) and saved["stamp"] == stamp:
            return str(saved["hash"])
    digest = ds.content_hash()
    if file_stamp(root) == stamp:  # unchanged while it was read
        with contextlib.suppress(OSError):  # a convenience only
            text = json.dumps({"path": str(root), "stamp": stamp, "hash": digest})
            write_durable(record, text, unique=True)
    return digest


def _number(value: Any) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    return float(value) if ok else float("nan")


def record_unfinished_trial(
    config: dict[str, Any], status: str, metrics: dict[str, Any], error: str | None
) -> None:
    """``metrics.json`` and the HParams row of a trial that could not write them: one Ray
    stopped (ASHA; ``early_stopped``, its last evaluation's metrics) or that failed
    before training or died. Ray ends a stopped trial's process within a fraction of a
    second of the stop, so the driver writes them, into the trial's directory
    (``config``: the trainable's config; local or an object-store URL)."""
    from inr_tune.config import config_from_dict
    from inr_tune.fileio import is_url
    from inr_tune.training.board import hparams_of, write_hparams_dir

    trial_dir = config.get("result_dir") or config.get("out_dir")
    if not trial_dir:
        return
    result = TrialResult.from_dict({**metrics, "status": status, "error": error})
    if is_url(str(trial_dir)):
        import fsspec

        with fsspec.open(f"{str(trial_dir).rstrip('/')}/metrics.json", "w") as fh:
            fh.write(result.to_json())
    else:
        result.write(Path(trial_dir) / "metrics.json")
    extra = {"node": config.get("node_id"), "block": config.get("block", 0)}
    hparams = hparams_of(config_from_dict(config["cfg"]), extra)
    tb = f"{str(trial_dir).rstrip('/')}/{config.get('tb_name', 'tb')}"
    step = int(result.steps_done or metrics.get("steps_done") or 0)
    write_hparams_dir(tb, hparams, status, result.to_dict(False), step)


def train_node(config: dict[str, Any]) -> None:
    """Train the node described by ``config`` and report to Ray Tune (rows: the module
    docstring). Nothing here raises: a failure becomes a ``failed`` status with its
    reason, so the block goes on. A stop by the scheduler arrives as ``SystemExit``
    inside ``tune.report`` and ends the trial there (the driver then writes its
    ``metrics.json`` and HParams row: ``record_unfinished_trial``).

    ``config["snapshots"]`` (default true): write the full evaluation and field panel at
    evaluations before the end, so a trial a scheduler stops keeps them. Without a
    scheduler (``block.early_stop: none``) nothing stops a trial there, and false saves
    one full evaluation and panel per trial. The trial's ``wall_time`` counts from this
    call, its dataset check included (``overhead_s["dataset_check"]``)."""
    started = time.perf_counter()  # the trial's wall time counts from here
    from ray import tune

    from inr_tune.config import config_from_dict
    from inr_tune.training.fit import run_trial

    def report(row: dict[str, Any]) -> None:
        # Intermediate rows only (run_trial passes rows before the run's end: the last
        # one is left to the final report, so a scheduler never stops a trial that has
        # in fact finished).
        values = {k: row.get(k) for k in ROW_KEYS}
        values["score"], values["final_r2"] = (
            _number(row.get("score")),
            _number(row.get("final_r2")),
        )
        tune.report({k: v for k, v in values.items() if v is not None})

    # With an object store (out_dir None) the trial writes into its Ray working directory
    # on this node and Ray uploads it to result_dir.
    out_dir = config.get("out_dir") or tune.get_context().get_trial_dir()
    result_dir = config.get("result_dir") or out_dir
    try:
        cfg = config_from_dict(config["cfg"])
        check0 = time.perf_counter()
        dataset = ensure_dataset(
            config.get("dataset"), config.get("content_hash"), config.get("kind", "mpm")
        )
        checked = {"dataset_check": time.perf_counter() - check0}
        result = run_trial(
            cfg,
            out_dir,
            dataset_path=dataset,
            content_hash=config.get("content_hash"),
            num_threads=config.get("threads"),
            report=report,
            progress_every_s=PROGRESS_EVERY_S,
            tb_name=config.get("tb_name", "tb"),
            extra_hparams={"node": config["node_id"], "block": config.get("block", 0)},
            # snapshots only matter where a scheduler may stop the trial (early_stop)
            snapshots=bool(config.get("snapshots", True)),
            started=started,
            phases=checked,
        )
    except Exception as err:  # bad data on a worker, OOM while building, …
        trace = traceback.format_exc(limit=8)
        why = str(err).splitlines()[0] if str(err) else ""
        result = TrialResult("failed", f"{type(err).__name__}: {why}")
        result.metrics["traceback"] = trace
        with contextlib.suppress(Exception):  # a convenience; the failure is reported below
            record_unfinished_trial({**config, "result_dir": out_dir}, "failed", {}, result.error)
    result.metrics["field_png"] = f"{result_dir}/field.png"
    result.metrics["ray_node_id"], result.metrics["ray_resources"] = _placement()
    payload = result.to_json(history=False)
    final: dict[str, Any] = {
        "final_r2": _number(result.metrics.get("final_r2")),
        "score": score_of(result.metrics),
        "step": result.steps_done or 0,
        "steps_done": result.steps_done or 0,
        "total_steps": result.steps_planned,
        "elapsed_s": result.wall_time,
        "eta_s": 0.0,
        "metrics_json": payload,
    }
    if result.metrics.get("holdout_r2") is not None:
        final["holdout_r2"] = result.metrics["holdout_r2"]
    final = {k: v for k, v in final.items() if v is not None}
    if config.get("out_dir"):
        tune.report(final)
        return
    # A report with a checkpoint (the metrics record) makes Ray upload the working
    # directory before the driver sees the result (SyncConfig.sync_artifacts_on_checkpoint),
    # so the field panel is in the store when the next proposal is made.
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "metrics.json").write_text(payload)
        tune.report(final, checkpoint=tune.Checkpoint.from_directory(tmp))
