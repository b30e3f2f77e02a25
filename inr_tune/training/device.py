"""Where and with what a trial runs: the device, its expected memory, the code's version."""

from __future__ import annotations

import subprocess
from pathlib import Path

from inr_tune import __version__
from inr_tune.config import Config
from inr_tune.errors import ConfigError

__all__ = ["estimate_memory", "resolve_device", "version_stamp"]


def version_stamp() -> str:
    """Package version, plus the git commit when run from a checkout."""
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        commit = out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{__version__}+{commit}" if commit else __version__


def resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("training.device=cuda but no CUDA GPU is available; use auto or cpu")
    return name


def estimate_memory(cfg: Config, n_frames: int, n_points: int, n_components: int) -> int:
    """Expected peak device memory of one trial, in bytes (an upper-side estimate).

    Parameters, gradients and two Adam moments (4 × params × 4 bytes); activations of one
    step (each hidden layer keeps its pre-activation and sine output for backward, twice
    for the gradient, per sample point); the window and positions on the device; plus a
    fixed 300 MiB for the CUDA context and allocator slack.
    """
    from inr_tune.models.size import count_params
    from inr_tune.models.variants import FieldSpec

    m, t = cfg.model, cfg.training
    width = m.hidden_dim
    outputs = n_components * (n_points if m.inr_type == "siren_t" else 1)
    params = count_params(m, FieldSpec(n_frames, n_points, n_components))
    samples = t.batch_size * (1 if m.inr_type == "siren_t" else (t.points_per_step or n_points))
    activations = samples * width * (m.n_layers + 1) * 4 * 4 + samples * outputs * 4 * 3
    data = n_frames * n_points * (n_components + 2) * 4
    return int(16 * params + activations + data + 300 * 2**20)
