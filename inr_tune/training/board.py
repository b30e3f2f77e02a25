"""TensorBoard and figures of a trial: the field panel, evaluation scalars, the HParams row.

Every trial gets one HParams row (session), written once by whoever learns how the trial
ended: ``run_trial`` at its end (status ok, diverged or failed), or, for a trial Ray
stopped (ASHA: status early_stopped) or that died, the driver (``runner.trainable.
record_unfinished_trial``), since Ray ends a stopped trial's process within a fraction
of a second. TensorBoard keeps the first session record of a run, so it is never written
before the status is known. The field panel and the evaluation scalars are written at
each snapshot before a trial reports, so a stop leaves them on disk.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from inr_tune.config import Config
from inr_tune.training.evaluation import Evaluation
from inr_tune.training.result import STATUSES

__all__ = [
    "HP_METRICS",
    "hparams_of",
    "panel_info",
    "write_field_panel",
    "write_hparams",
    "write_hparams_dir",
]

#: metrics of the HParams table (``hp/<key>``), beside the hyper-parameters and ``status``
HP_METRICS = (
    "final_r2",
    "holdout_r2",
    "train_r2",
    "compression_ratio",
    "psnr",
    "final_mse",
    "kinograph_R2",
    "kinograph_SSIM",
    "training_time",
    "steps_done",
)


def hparams_of(cfg: Config, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Flat hyper-parameters for TensorBoard's HParams view (None written as "null")."""
    flat: dict[str, Any] = {"data.field": cfg.data.field, "data.n_frames": cfg.data.n_frames}
    for section in ("model", "training"):
        for k, v in getattr(cfg, section).__dict__.items():
            flat[f"{section}.{k}"] = "null" if v is None else v
    for k, v in (extra or {}).items():
        flat[k] = "null" if v is None else v
    return flat


def write_hparams(
    writer: Any, hparams: dict[str, Any], status: str, values: dict[str, Any], step: int
) -> None:
    """The trial's HParams session into ``writer`` (a torch ``SummaryWriter``): the
    hyper-parameters with ``status`` (ok / diverged / failed / early_stopped), and the
    ``hp/*`` metrics of ``values`` that are numbers (``hp/ok`` 1 or 0), at ``step``."""
    from torch.utils.tensorboard.summary import hparams as hparams_summary

    metrics = {
        f"hp/{k}": float(values[k])
        for k in HP_METRICS
        if isinstance(values.get(k), (int, float)) and not isinstance(values.get(k), bool)
    }
    metrics["hp/ok"] = 1.0 if status == "ok" else 0.0
    for tag, value in metrics.items():
        writer.add_scalar(tag, value, step)
    # every row declares the same metric columns (TensorBoard takes the table's columns
    # from one run's record); a missing value stays empty
    columns = {f"hp/{k}": 0.0 for k in (*HP_METRICS, "ok")}
    exp, ssi, sei = hparams_summary(
        {**hparams, "status": status}, columns, hparam_domain_discrete={"status": list(STATUSES)}
    )
    file_writer = writer._get_file_writer()
    for summary in (exp, ssi, sei):
        file_writer.add_summary(summary, step)
    writer.flush()


def write_hparams_dir(
    log_dir: str, hparams: dict[str, Any], status: str, values: dict[str, Any], step: int
) -> None:
    """``write_hparams`` into the TensorBoard run ``log_dir`` (a local path or an fsspec
    URL: the event file is written locally, then copied there)."""
    from torch.utils.tensorboard import SummaryWriter

    from inr_tune.fileio import is_url

    if not is_url(log_dir):
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        writer = SummaryWriter(log_dir=log_dir)
        try:
            write_hparams(writer, hparams, status, values, step)
        finally:
            writer.close()
        return
    import fsspec

    with tempfile.TemporaryDirectory() as tmp:
        writer = SummaryWriter(log_dir=tmp)
        try:
            write_hparams(writer, hparams, status, values, step)
        finally:
            writer.close()
        for event in Path(tmp).iterdir():
            with fsspec.open(f"{log_dir.rstrip('/')}/{event.name}", "wb") as fh:
                fh.write(event.read_bytes())


def panel_info(module: Any, evaluation: Evaluation, info: dict[str, Any]) -> dict[str, Any]:
    """The text block of the field panel: the trial's ``info`` plus size and metrics."""
    m, spec = evaluation.metrics, module.spec
    held = m.get("holdout_r2")
    return {
        **{k: v for k, v in info.items() if k != "components"},
        "steps": evaluation.step,
        "points": spec.n_points,
        "frames": spec.n_frames,
        "params": module.total_params,
        "MSE": f"{m['final_mse']:.4g}",
        "R²": f"{m['final_r2']:.6f}",
        "held-out R²": "-" if held is None else f"{held:.6f}",
        "ratio": f"{spec.n_frames * spec.n_points * spec.n_components / module.total_params:.1f}×",
        "kinograph R²": f"{m['kinograph_R2']:.5f}",
        "kinograph SSIM": f"{m['kinograph_SSIM']:.4f}",
    }


def write_field_panel(
    path: Path, module: Any, evaluation: Evaluation, info: dict[str, Any], writer: Any = None
) -> None:
    """``field.png`` of ``evaluation`` (replaced atomically), and the same image in
    TensorBoard (``field_panel`` at the evaluation's step) when ``writer`` is given."""
    if evaluation.prediction is None:
        return
    from inr_tune.plots import field_panel, save_figure

    gt = module.target()
    fig = field_panel(
        gt=gt,
        pred=evaluation.prediction,
        positions=module.positions.cpu().numpy(),
        losses=module.losses,
        components=info.get("components", [f"c{i}" for i in range(gt.shape[2])]),
        info=panel_info(module, evaluation, info),
    )
    save_figure(fig, path)  # a temp file renamed over field.png
    if writer is not None:
        import matplotlib.image as mpimg

        image = mpimg.imread(path)[..., :3]
        writer.add_image("field_panel", np.asarray(image), evaluation.step, dataformats="HWC")
