"""Effective ranks of a block's window, once per window.

``rank_90`` / ``rank_99``: the smallest k whose top-k singular values of the window's
[T, N·C] matrix hold ≥ 90 % / 99 % of Σσ² (all singular values, no top-50 cap), for the
uncentred matrix (DESIGN.md's definition) and for the centred one (each column's mean
removed: what is left once the mean field is stored). They say how many time-modes the
window needs, which bounds what a rank-k model (siren_t of width h is at best rank h, a
factorized INR of rank k is rank k) can reach. Computed by ``metrics.window_ranks`` from
one pass over the values (the smaller Gram matrix), cached as JSON beside the baselines
(``$INR_TUNE_DATA/ranks``) under the dataset's content hash and the window, and logged
in the block's ``block_start`` event, so a block and a resumed block compute them once.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from inr_tune.fileio import write_durable

__all__ = ["format_ranks", "load_or_compute_ranks"]

_KEYS = ("rank_90", "rank_99", "centred_rank_90", "centred_rank_99")


def format_ranks(ranks: Mapping[str, Any] | None) -> str:
    """``rank_90/99: 3/7 (centred 5/12)``; empty when ``ranks`` is missing."""
    if not ranks or any(ranks.get(k) is None for k in _KEYS):
        return ""
    return (
        f"rank_90/99: {ranks['rank_90']}/{ranks['rank_99']} "
        f"(centred {ranks['centred_rank_90']}/{ranks['centred_rank_99']})"
    )


def load_or_compute_ranks(
    dataset: str, data: Any, content_hash: str, cache_dir: Path | None = None
) -> dict[str, int] | None:
    """The window ranks of ``data`` (a DataConfig: field, n_frames, offset) in ``dataset``.

    None, with the reason printed, when they cannot be computed: the block still runs.
    """
    from inr_tune.data.defaults import cache_dir as data_dir
    from inr_tune.data.store import open_dataset, resolve_offset
    from inr_tune.metrics import window_ranks

    try:
        ds = open_dataset(dataset)
        start = resolve_offset(data.offset, data.n_frames, ds.n_frames)
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", data.field)
        root = Path(cache_dir) if cache_dir is not None else data_dir() / "ranks"
        path = root / f"{content_hash[:16]}_{safe}_{start}+{data.n_frames}.json"
        key = {"dataset": content_hash, "field": data.field, "start": start, "n": data.n_frames}
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
            if stored.get("key") == key and all(isinstance(stored[k], int) for k in _KEYS):
                return {k: stored[k] for k in _KEYS}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass  # missing or unreadable: compute
        ranks = window_ranks(ds.read(f"fields/{data.field}", start, start + data.n_frames))
        # a shared cache (a temp file of this process's own); read-only costs a recomputation
        with contextlib.suppress(OSError):
            write_durable(path, json.dumps({"key": key, **ranks}), unique=True)
        return ranks
    except Exception as err:  # the ranks must never stop the search
        print(f"  window ranks unavailable: {type(err).__name__}: {err}")
        return None
