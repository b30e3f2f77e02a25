"""Steps/s of a plain PyTorch loop vs the Lightning module, same model, data and steps.

    python benchmarks/trainer_overhead.py [--quick] [--device cpu|cuda] [--data PATH]

Both paths train the same config on the same window: the plain loop samples batches with
the module's own sampler, runs Adam with the same cosine schedule and clipping, and the
Lightning path is ``inr_tune.training.fit``'s Trainer + ``INRModule`` (manual
optimisation, ``steps_per_call`` optimizer steps per ``training_step``). The last line is
``ratio lightning/plain: X`` for the reference-sized model (siren_txy 256×4).

On a GPU it also prints steps/s and achieved TFLOP/s of siren_txy 256×4 at 9000 points
per frame and batch sizes 1, 8 and 32.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from inr_tune.config import Config
from inr_tune.config_files import load_config
from inr_tune.training.fit import build_trainer, quiet_lightning, step_loader
from inr_tune.training.module import INRModule


def _window(args: argparse.Namespace, n_points: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Values [T, N, C] and positions of the benchmark window (F, 400 frames)."""
    if n_points is not None:  # synthetic field at an exact size (GPU throughput table)
        rng = np.random.default_rng(0)
        pos = rng.uniform(0, 1, size=(1, n_points, 2)).astype(np.float32).repeat(args.frames, 0)
        t = np.linspace(0, 1, args.frames, dtype=np.float32)[:, None, None]
        vals = np.sin(6 * pos[..., :1] + 3 * t) * np.cos(4 * pos[..., 1:] - 2 * t)
        return np.repeat(vals, 4, axis=2).astype(np.float32), pos
    from inr_tune.data.defaults import ensure_default_dataset
    from inr_tune.data.store import open_dataset

    path = args.data or ensure_default_dataset("mpm")
    w = open_dataset(path).window("F", args.frames)
    return w.values, w.positions


def _config(hidden: int, layers: int, steps: int, batch: int, device: str) -> Config:
    return load_config(
        None,
        [
            f"model.hidden_dim={hidden}",
            f"model.n_layers={layers}",
            "model.omega=8",
            f"training.total_steps={steps}",
            f"training.batch_size={batch}",
            "training.lr=1e-4",
            f"training.device={device}",
            f"training.eval_every={10 * steps}",
            "training.grad_clip=1.0",
        ],
    )


def plain_loop(module: INRModule, steps: int) -> float:
    """The same optimisation as INRModule.training_step, without Lightning: steps/s."""
    cfg = module.cfg.training
    opts = module.configure_optimizers()
    opt, sched = opts["optimizer"], opts["lr_scheduler"]["scheduler"]
    module.on_train_start()  # seeds the batch sampler
    params = [p for g in opt.param_groups for p in g["params"]]
    sync = torch.cuda.synchronize if module.device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    done = 0
    while done < steps:
        loss_sum = torch.zeros((), device=module.device)
        for _ in range(min(cfg.steps_per_call, steps - done)):
            frames, idx, pos, target = module.sample()
            loss = module.loss_fn(module.model(frames, idx, pos), target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip, foreach=True)
            opt.step()
            sched.step()
            loss_sum += loss.detach()
            done += 1
        float(loss_sum.item())  # the same one sync per call as the module
    sync()
    return steps / (time.perf_counter() - t0)


def lightning_loop(module: INRModule, steps: int) -> float:
    import lightning as L

    loader = step_loader(steps, module.cfg.training.steps_per_call)
    cuda = module.device.type == "cuda" or module.cfg.training.device == "cuda"
    trainer = build_trainer("cuda" if cuda else "cpu")

    class _Clock(L.Callback):
        def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            self.t0 = time.perf_counter()

        def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            if pl_module.device.type == "cuda":
                torch.cuda.synchronize()
            self.seconds = time.perf_counter() - self.t0

    clock = _Clock()
    trainer.callbacks.append(clock)
    trainer.fit(module, loader)
    return module.step / clock.seconds


def compare(
    values: np.ndarray,
    positions: np.ndarray,
    hidden: int,
    layers: int,
    steps: int,
    device: str,
    repeats: int,
) -> tuple[float, float]:
    """Best-of-``repeats`` steps/s of each path, alternating to share machine noise."""
    plain, light = [], []
    for _ in range(repeats):
        torch.manual_seed(0)
        m = INRModule(_config(hidden, layers, steps, 1, device), values, positions, 1.0).to(device)
        plain.append(plain_loop(m, steps))
        torch.manual_seed(0)
        m = INRModule(_config(hidden, layers, steps, 1, device), values, positions, 1.0)
        light.append(lightning_loop(m, steps))
    return max(plain), max(light)


def gpu_throughput(args: argparse.Namespace) -> None:
    values, positions = _window(args, n_points=9000)
    for batch in (1, 8, 32):
        cfg = _config(256, 4, args.gpu_steps, batch, "cuda")
        m = INRModule(cfg, values, positions, 1.0)
        sps = lightning_loop(m, args.gpu_steps)
        flops = 3 * 2 * m.total_params * 9000 * batch  # forward + backward ≈ 3× forward
        print(
            f"gpu siren_txy 256×4, 9000 points, batch {batch:>2}: {sps:8.1f} steps/s, "
            f"{sps * flops / 1e12:6.2f} TFLOP/s"
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="under a minute: fewer steps and repeats")
    p.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=("cpu", "cuda")
    )
    p.add_argument("--data", default=None, help="MPM dataset (default: the built-in one)")
    p.add_argument("--frames", type=int, default=400)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = p.parse_args(argv)
    quiet_lightning()
    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    values, positions = _window(args)
    cpu = args.device == "cpu"
    sizes = [
        ("small", 64, 2, 400 if args.quick else 2000),
        ("reference", 256, 4, 64 if args.quick else 400),
    ]
    if not cpu:
        sizes = [
            ("small", 64, 2, 2000 if args.quick else 10000),
            ("reference", 256, 4, 1000 if args.quick else 5000),
        ]
    repeats = 1 if args.quick else 3
    print(
        f"device {args.device}, window {values.shape[0]} frames × {values.shape[1]} points × {values.shape[2]} "
        f"components, torch threads {torch.get_num_threads()}"
    )
    ratio = float("nan")
    for name, hidden, layers, steps in sizes:
        plain, light = compare(values, positions, hidden, layers, steps, args.device, repeats)
        ratio = light / plain
        print(
            f"{name:>9} siren_txy {hidden}×{layers}: plain {plain:8.1f} steps/s, "
            f"lightning {light:8.1f} steps/s, ratio {ratio:.3f}  ({steps} steps, best of {repeats})"
        )
    if not cpu:
        args.gpu_steps = 300 if args.quick else 2000
        gpu_throughput(args)
    print(f"ratio lightning/plain: {ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
