"""Small synthetic datasets for tests (written through the real store), and small blocks."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from inr_tune.data.store import DatasetWriter, FrameArray
from inr_tune.journal import read_events

MPM_COMPONENTS = {
    "F": ["F00", "F01", "F10", "F11"],
    "C": ["C00", "C01", "C10", "C11"],
    "S": ["S00", "S01", "S10", "S11"],
    "Jp": ["Jp"],
}


#: Settings of a tiny trial (a few dozen steps of a 16-wide net) for block tests.
TINY = [
    "training.total_steps=48",
    "training.eval_every=1000",
    "training.max_minutes=null",
    "model.hidden_dim=16",
    "model.n_layers=1",
    "training.points_per_step=null",
    "search.min_ratio=1",  # a few thousand values: the default budget fits no config
]


def synthetic_mpm_arrays(n_frames: int, n_points: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Smooth fields of (t, x, y) on drifting points: [T, N, C] float32 arrays."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, n_frames, dtype=np.float32)[:, None]
    x0 = rng.uniform(0.2, 0.8, size=(1, n_points, 2)).astype(np.float32)
    pos = x0 + 0.1 * t[:, :, None] * np.array([1.0, -0.5], dtype=np.float32)
    x, y = pos[..., 0], pos[..., 1]
    f = np.stack(
        [1 + 0.2 * np.sin(3 * x + 2 * t), 0.1 * np.cos(2 * y), 0.1 * x * y, 1 - 0.1 * t + 0 * x], -1
    )
    return {
        "positions": pos.astype(np.float32),
        "velocity": np.gradient(pos, axis=0).astype(np.float32),
        "fields/F": f.astype(np.float32),
        "fields/C": (10 * np.sin(4 * x + 3 * t)[..., None] * np.ones(4)).astype(np.float32),
        "fields/S": (1e-4 * np.cos(5 * y - 2 * t)[..., None] * np.ones(4)).astype(np.float32),
        "fields/Jp": (1 + 0.05 * np.sin(6 * x * y + t))[..., None].astype(np.float32),
    }


def write_synthetic_mpm(path: Path, n_frames: int = 40, n_points: int = 30, seed: int = 0) -> Path:
    arrays = synthetic_mpm_arrays(n_frames, n_points, seed)
    with DatasetWriter(
        path,
        kind="mpm",
        n_frames=n_frames,
        n_points=n_points,
        frame_dt=1e-3,
        frame_arrays={k: FrameArray(v.shape[1:]) for k, v in arrays.items()},
        static={"material": np.zeros(n_points, np.int8), "disc": np.zeros(n_points, np.int16)},
        components=MPM_COMPONENTS,
        attrs={"generator": {"name": "test.synthetic", "parameters": {"seed": seed}}},
        chunk_frames=16,
    ) as w:
        for s in range(0, n_frames, 16):
            w.write(s, {k: v[s : s + 16] for k, v in arrays.items()})
    return path


def rule_session(
    run_dir: Path, root: Any, *, n_iter: int, parallel: int, budget: Any = None
) -> Any:
    """A BlockSession of F@24 on the mpm experiment with the rule proposer (no Ray)."""
    from inr_tune.journal import Journal
    from inr_tune.search.experiment import BlockSpec, load_experiment
    from inr_tune.search.proposers import RuleProposer
    from inr_tune.search.session import BlockSession, RunContext
    from inr_tune.search.tree import Tree

    rule = RuleProposer(seed=0)
    ctx = RunContext(
        run_dir=run_dir,
        journal=Journal(run_dir / "journal.jsonl"),
        tree=Tree(),
        experiment=load_experiment("mpm"),
        proposer=rule,
        parallel=parallel,
        n_iter=n_iter,
        reward="nines",
    )
    spec = BlockSpec("F", 24)
    return BlockSession(ctx, block=1, spec=spec, root_config=root, ucb_c=1.414, budget=budget)


def block_args(
    *flags: str, sets: Iterable[str] = (), iterations: int = 4, parallel: int = 4
) -> list[str]:
    """Arguments of ``python -m inr_tune.block`` for a small F@24 block, then ``flags``.

    The tiny test windows hold a few thousand values, so the size budget is lowered to
    1× (a later ``--set search.min_ratio=…`` in ``sets`` wins).
    """
    return [
        *("--frames", "24", "--field", "F"),
        *("--iterations", str(iterations), "--parallel", str(parallel)),
        *flags,
        *[a for s in ["search.min_ratio=1", *sets] for a in ("--set", s)],
    ]


def run_block(
    *args: str, env: dict[str, str] | None = None, timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    """``python -m inr_tune.block ARGS`` as a user runs it (``env`` added to ours)."""
    return subprocess.run(
        [sys.executable, "-m", "inr_tune.block", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def completed(run: Path) -> list[dict[str, Any]]:
    """The ``node_completed`` events of the run directory ``run``."""
    return [e for e in read_events(run / "journal.jsonl") if e["event"] == "node_completed"]
