"""Ray itself: start or join a cluster, what one trial asks for, the GPUs' memory.

This package (``inr_tune.runner``) is the only one that imports Ray.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import socket
import sys
import tempfile
import warnings
from collections.abc import Iterator
from typing import Any

from inr_tune import signals
from inr_tune.config import Config
from inr_tune.errors import InrTuneError

__all__ = [
    "cluster_gpu_memory",
    "expected_memory",
    "init_ray",
    "memory_check",
    "stop_ray",
    "trial_resources",
    "trials_per_gpu",
]


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


def stop_ray() -> None:
    """Shut Ray down if this process started or joined it (its trials stop with it)."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        with contextlib.suppress(Exception):
            ray.shutdown()
