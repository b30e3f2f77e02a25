"""The Ray Tune trainable: one node → one ``run_trial`` in a Ray worker."""

from __future__ import annotations

import json
import tempfile
import traceback
from pathlib import Path
from typing import Any

__all__ = ["ensure_dataset", "train_node"]


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
    if content_hash and ds.content_hash() != content_hash:
        raise DataError(f"dataset {path} on this node differs from the driver's (content hash)")
    return str(path)


def _score(metrics: dict[str, Any]) -> float:
    """The R² a node is judged by (``holdout_r2`` when the window holds frames out, else
    ``final_r2``), NaN when missing: a scheduler's metric must always be a number."""
    held = metrics.get("holdout_r2")
    r2 = held if held is not None else metrics.get("final_r2")
    return float(r2) if isinstance(r2, (int, float)) else float("nan")


def train_node(config: dict[str, Any]) -> None:
    """Train the node described by ``config`` and report its metrics to Ray Tune.

    Intermediate evaluations are reported as they happen (for schedulers such as ASHA);
    the last report carries the whole metrics dict as JSON. Nothing here raises: a
    failure becomes a ``failed`` status with its reason, so the block goes on.
    """
    from ray import tune

    from inr_tune.config import config_from_dict
    from inr_tune.training.fit import run_trial

    def report(row: dict[str, Any]) -> None:
        # Intermediate results for schedulers (run_trial passes rows before the run's end
        # only: the last one is left to the final report, so a scheduler never stops a
        # trial that has in fact finished). holdout_r2 is over all held-out frames, the
        # frames every node is scored on; score is the R² the node would be judged by.
        # Keys without a value (no held-out frames) are left out.
        values = {
            "final_r2": row.get("final_r2"),
            "holdout_r2": row.get("holdout_r2"),
            "score": _score(row),
            "loss": row.get("loss"),
            "final_mse": row.get("final_mse"),
            "kinograph_R2": row.get("kinograph_R2"),
            "total_params": row.get("total_params"),
            "compression_ratio": row.get("compression_ratio"),
            "step": row.get("step"),
        }
        tune.report({k: v for k, v in values.items() if v is not None})

    # With an object store (out_dir None) the trial writes into its Ray working directory
    # on this node and Ray uploads it to result_dir.
    out_dir = config.get("out_dir") or tune.get_context().get_trial_dir()
    result_dir = config.get("result_dir") or out_dir
    try:
        cfg = config_from_dict(config["cfg"])
        dataset = ensure_dataset(
            config.get("dataset"), config.get("content_hash"), config.get("kind", "mpm")
        )
        metrics = run_trial(
            cfg,
            out_dir,
            dataset_path=dataset,
            content_hash=config.get("content_hash"),
            num_threads=config.get("threads"),
            report=report,
            tb_name=config.get("tb_name", "tb"),
            extra_hparams={"node": config["node_id"], "block": config.get("block", 0)},
        )
    except Exception as err:  # bad data on a worker, OOM while building, …
        metrics = {
            "status": "failed",
            "error": f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}",
            "traceback": traceback.format_exc(limit=8),
        }
    metrics.pop("history", None)
    metrics["field_png"] = f"{result_dir}/field.png"
    metrics["ray_node_id"], metrics["ray_resources"] = _placement()
    # Ray requires the searcher's metric (final_r2) in every result and ASHA multiplies it
    # and compares the step: numbers always (NaN / 0 for a trial that failed early).
    r2 = metrics.get("final_r2")
    final: dict[str, Any] = {
        "final_r2": float(r2) if isinstance(r2, (int, float)) else float("nan"),
        "score": _score(metrics),
        "step": metrics.get("steps_done") or 0,
        "metrics_json": json.dumps(metrics, allow_nan=True),
    }
    if metrics.get("holdout_r2") is not None:
        final["holdout_r2"] = metrics["holdout_r2"]
    if config.get("out_dir"):
        tune.report(final)
        return
    # A report with a checkpoint (the metrics record) makes Ray upload the working
    # directory before the driver sees the result (SyncConfig.sync_artifacts_on_checkpoint),
    # so the field panel is in the store when the next proposal is made.
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "metrics.json").write_text(final["metrics_json"])
        tune.report(final, checkpoint=tune.Checkpoint.from_directory(tmp))
