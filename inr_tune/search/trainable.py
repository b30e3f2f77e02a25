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


def train_node(config: dict[str, Any]) -> None:
    """Train the node described by ``config`` and report its metrics to Ray Tune.

    Intermediate evaluations are reported as they happen (for schedulers such as ASHA);
    the last report carries the whole metrics dict as JSON. Nothing here raises: a
    failure becomes a ``failed`` status with its reason, so the block goes on.
    """
    from ray import tune

    from inr_tune.config import config_from_dict
    from inr_tune.training.fit import run_trial

    total = int(config["cfg"].get("training", {}).get("total_steps", 0))

    def report(row: dict[str, Any]) -> None:
        # Intermediate results for schedulers; the one at the last step is left to the
        # final report, so a scheduler never stops a trial that has in fact finished.
        if row.get("step", 0) < total:
            tune.report(
                {"final_r2": row.get("final_r2"), "loss": row.get("loss"), "step": row.get("step")}
            )

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
    final = {
        "final_r2": metrics.get("final_r2"),
        "step": metrics.get("steps_done"),
        "metrics_json": json.dumps(metrics, allow_nan=True),
    }
    if config.get("out_dir"):
        tune.report(final)
        return
    # A report with a checkpoint (the metrics record) makes Ray upload the working
    # directory before the driver sees the result (SyncConfig.sync_artifacts_on_checkpoint),
    # so the field panel is in the store when the next proposal is made.
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "metrics.json").write_text(final["metrics_json"])
        tune.report(final, checkpoint=tune.Checkpoint.from_directory(tmp))
