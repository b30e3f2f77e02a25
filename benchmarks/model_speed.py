"""Optimizer steps per second of each INR variant at the anchor sizes (one MPM frame of
9000 points per step, 4 components, 256×4), plus the hash encoding alone.

    python benchmarks/model_speed.py                  # CPU, torch's default thread count
    python benchmarks/model_speed.py --device cuda    # on a GPU
    python benchmarks/model_speed.py --points 1800 --steps 5 --threads 1

A step is forward + MSE + backward + Adam over all parameters (ngp: 11.4 M of them with
the default 16 levels × 2^19 table).
"""

from __future__ import annotations

import argparse
import time
import types

import torch

from inr_tune.models import FieldSpec, HashGridEncoding, build_model


def cfg(inr_type: str) -> types.SimpleNamespace:
    return types.SimpleNamespace(inr_type=inr_type, hidden_dim=256, n_layers=4, omega=8.0)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def steps_per_s(step, n_steps: int, device: str) -> float:
    step()  # warm-up
    step()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(n_steps):
        step()
    sync(device)
    return n_steps / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--points", type=int, default=9000, help="points per step (one frame)")
    p.add_argument("--frames", type=int, default=400)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--threads", type=int, default=0, help="torch threads; 0 = default")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = a.device
    spec = FieldSpec(a.frames, a.points, 4)
    pos = torch.rand(a.frames, a.points, 2, device=dev)
    target = torch.randn(a.frames, a.points, 4, device=dev)
    print(f"device={dev} threads={torch.get_num_threads()} points/step={a.points}")
    for inr_type in ("siren_t", "siren_id", "siren_txy", "ngp"):
        torch.manual_seed(0)
        model = build_model(cfg(inr_type), spec).to(dev)
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)

        def step(model=model, opt=opt) -> None:
            k = torch.randint(0, a.frames, (1,), device=dev)
            loss = ((model(k, None, pos[k]) - target[k]) ** 2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        rate = steps_per_s(step, a.steps, dev)
        print(f"{inr_type:10s} params={model.total_params:>10,d}  {rate:8.1f} steps/s")
    enc = HashGridEncoding().to(dev)
    x = torch.rand(a.points, 3, device=dev)

    def enc_step() -> None:
        enc.table.grad = None
        enc(x).sum().backward()

    rate = steps_per_s(enc_step, a.steps, dev)
    print(f"hash encoding alone (fwd+bwd, {enc.table.numel():,d} table values): {rate:.1f} /s")


if __name__ == "__main__":
    main()
