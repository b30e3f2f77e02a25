"""LightningModule that fits one INR variant to one field window.

Data lives on the device as non-persistent buffers; each ``training_step`` call runs
``steps_per_call`` optimizer steps on batches it samples itself (manual optimisation), so
Lightning's per-call overhead is paid once per several small-network steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor

from inr_tune.config import Config
from inr_tune.data.split import holdout_frames, train_frames
from inr_tune.models.variants import FieldSpec, build_model
from inr_tune.training.schedules import make_scheduler, relay_scheduler
from inr_tune.training.window_cache import standardised

__all__ = ["INRModule", "build_optimizer", "make_loss"]


def make_loss(name: str, huber_delta: float = 1.0) -> Callable[[Tensor, Tensor], Tensor]:
    if name == "mse":
        return torch.nn.functional.mse_loss
    if name == "l1":
        return torch.nn.functional.l1_loss
    if name == "huber":
        return lambda p, t: torch.nn.functional.huber_loss(p, t, delta=huber_delta)
    raise ValueError(f"loss {name!r} unknown; choose mse, huber or l1")


def build_optimizer(model: torch.nn.Module, cfg: Config) -> torch.optim.Optimizer:
    """Optimizer over the model's base parameters (lr) and ω parameters (lr_omega)."""
    t, m = cfg.training, cfg.model
    groups: list[dict[str, Any]] = [{"params": list(model.base_parameters()), "lr": t.lr}]
    omegas = list(model.omega_parameters())
    if omegas:
        groups.append({"params": omegas, "lr": m.lr_omega, "weight_decay": 0.0})
    # foreach: one multi-tensor kernel per update instead of one per parameter (also on CPU)
    if t.optimizer == "adam":
        return torch.optim.Adam(groups, lr=t.lr, weight_decay=t.weight_decay, foreach=True)
    if t.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=t.lr, weight_decay=t.weight_decay, foreach=True)
    if t.optimizer == "sgd":
        return torch.optim.SGD(
            groups, lr=t.lr, momentum=0.9, weight_decay=t.weight_decay, foreach=True
        )
    if t.optimizer == "rmsprop":
        return torch.optim.RMSprop(groups, lr=t.lr, weight_decay=t.weight_decay, foreach=True)
    raise ValueError(f"optimizer {t.optimizer!r} unknown")


class INRModule(L.LightningModule):
    """Fit ``cfg.model`` to a window ``values [T, N, C]`` at ``positions [T, N, 2] | [N, 2]``."""

    def __init__(
        self, cfg: Config, values: np.ndarray, positions: np.ndarray, position_scale: float
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.save_hyperparameters(ignore=["cfg", "values", "positions"], logger=False)
        self.hparams["config"] = cfg.to_dict()  # plain data: the checkpoint rebuilds the model
        self.cfg = cfg
        t, n, c = values.shape
        self.spec = FieldSpec(
            n_frames=t,
            n_points=n,
            n_components=c,
            position_scale=position_scale,
            static_positions=positions.ndim == 2,
            # scaled positions: MPM in the unit box, fly-eye in the unit disc
            position_range=(0.0, 1.0) if position_scale == 1.0 else (-1.0, 1.0),
        )
        # reference positions (window's first frame, or the static ones) for models that
        # read them (factorized, basis siren); they travel with the model's state_dict
        reference = positions[0] if positions.ndim == 3 else positions
        self.model = build_model(cfg.model, self.spec, torch.as_tensor(reference))
        self.standardizer, normalised = standardised(values)
        self.register_buffer("values", normalised, persistent=False)
        self.register_buffer("positions", torch.as_tensor(positions), persistent=False)
        # data.holdout: these frames are never sampled in training (scored as holdout_r2)
        every = cfg.data.holdout
        self.register_buffer(
            "train_idx", torch.from_numpy(train_frames(t, every)), persistent=False
        )
        self.register_buffer(
            "holdout_idx", torch.from_numpy(holdout_frames(t, every)), persistent=False
        )
        self.loss_fn = make_loss(cfg.training.loss, cfg.training.huber_delta)
        self.step = 0
        # where the loop ends: total_steps, or fewer when a time cap shortened the run
        self.planned_steps = int(cfg.training.total_steps)
        self.losses: list[tuple[int, float]] = []
        self.start_loss: float | None = None  # loss of the untrained network (first step)
        self.last_lr: float | None = None  # lr of the last optimizer step taken
        self.diverged: str | None = None
        self._generator: torch.Generator | None = None
        self._target_all: np.ndarray | None = None  # target() of all frames, once computed
        self.eval_cache: dict[str, Any] = {}  # per-window constants of evaluation.evaluate

    # ------------------------------------------------------------------ data
    @property
    def total_params(self) -> int:
        return int(self.model.total_params)

    def sample(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """A training batch: frame_idx [B], point_idx [B, P], positions [B, P, 2], target [B, P, C]."""
        n = self.spec.n_points
        b = self.cfg.training.batch_size
        p = self.cfg.training.points_per_step
        g = self._generator
        frames = self.train_idx[
            torch.randint(len(self.train_idx), (b,), device=self.device, generator=g)
        ]
        if p is None or p >= n:
            idx = torch.arange(n, device=self.device).expand(b, n)
        else:
            idx = torch.randint(n, (b, p), device=self.device, generator=g)
        return frames, idx, self.points_at(frames, idx), self.values[frames[:, None], idx]

    def points_at(self, frames: Tensor, idx: Tensor) -> Tensor:
        """Raw positions [B, P, 2] of points ``idx`` [B, P] at ``frames`` [B]."""
        if self.spec.static_positions:
            return self.positions[idx]
        return self.positions[frames[:, None], idx]

    @torch.no_grad()
    def predict(self, frames: Tensor | None = None, max_points: int = 1 << 17) -> np.ndarray:
        """Prediction in raw units, [len(frames), N, C] (all frames when ``frames`` is None)."""
        was_training = self.model.training
        self.model.eval()
        if frames is None:
            frames = torch.arange(self.spec.n_frames, device=self.device)
        n = self.spec.n_points
        per = max(1, max_points // n)
        out = []
        for s in range(0, len(frames), per):
            f = frames[s : s + per]
            idx = torch.arange(n, device=self.device).expand(len(f), n)
            y = self.model(f, idx, self.points_at(f, idx))
            out.append(self.standardizer.denormalize(y.float()).cpu())
        self.model.train(was_training)
        return torch.cat(out).numpy()

    def target(self, frames: Tensor | None = None) -> np.ndarray:
        """Ground truth in raw units for ``frames`` (all when None; that array is computed
        once per module and shared: treat it as read-only)."""
        if frames is not None:
            return self.standardizer.denormalize(self.values[frames]).cpu().numpy()
        if self._target_all is None:  # the window never changes: every full evaluation,
            # snapshot and field panel of a trial reads the same array
            self._target_all = self.standardizer.denormalize(self.values).cpu().numpy()
            self._target_all.flags.writeable = False
        return self._target_all

    # ------------------------------------------------------------------ Lightning hooks
    def configure_optimizers(self) -> Any:
        t = self.cfg.training
        opt = build_optimizer(self.model, self.cfg)
        sched = make_scheduler(
            opt,
            schedule=t.schedule,
            total_steps=t.total_steps,
            warmup_steps=t.warmup_steps,
            min_ratio=t.min_lr_ratio,
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def shorten(self, steps: int) -> None:
        """End the run after ``steps`` optimizer steps and re-lay the lr schedule over them
        (it then decays fully by the new end). Only ever shortens; never below the steps
        already done."""
        steps = max(int(steps), self.step)
        if steps >= self.planned_steps:
            return
        t = self.cfg.training
        relay_scheduler(
            self.lr_schedulers(),
            schedule=t.schedule,
            total_steps=t.total_steps,
            new_total=steps,
            warmup_steps=t.warmup_steps,
            min_ratio=t.min_lr_ratio,
        )
        self.planned_steps = steps

    def on_train_start(self) -> None:
        self._generator = torch.Generator(device=self.device)
        self._generator.manual_seed(self.cfg.training.seed)

    def _autocast(self) -> Any:
        precision = self.cfg.training.precision
        if precision == "32":
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=torch.bfloat16)  # "bf16-mixed"

    def training_step(self, batch: Any, batch_idx: int) -> None:
        t = self.cfg.training
        opt = self.optimizers().optimizer  # the raw torch optimizer: no wrapper per step
        sched = self.lr_schedulers()
        n = min(t.steps_per_call, self.planned_steps - self.step)
        if n <= 0:
            self.trainer.should_stop = True
            return
        clip = t.grad_clip if t.grad_clip else None
        params = [p for group in opt.param_groups for p in group["params"]]
        loss_sum = torch.zeros((), device=self.device)
        for _ in range(n):
            frames, idx, pos, target = self.sample()
            with self._autocast():
                pred = self.model(frames, idx, pos)
            loss = self.loss_fn(pred.float(), target)
            if self.start_loss is None:  # before any update: where the fit starts from
                self.start_loss = float(loss.detach().item())
            opt.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(params, clip, foreach=True)
            lr = opt.param_groups[0]["lr"]
            opt.step()
            sched.step()
            loss_sum += loss.detach()
        self.last_lr = float(lr)
        self.step += n
        mean = float(loss_sum.item()) / n
        self.losses.append((self.step, mean))
        if self.logger is not None and (self.step // t.log_every) != (
            (self.step - n) // t.log_every
        ):
            self.logger.log_metrics(
                {"train/loss": mean, "train/lr": sched.get_last_lr()[0]}, step=self.step
            )
        if self.step >= self.planned_steps:
            self.trainer.should_stop = True
