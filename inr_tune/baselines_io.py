"""Baseline curves as data: points, ``best_at``, CSV rows, the table, and the window cache.

``inr_tune.baselines`` computes the curves and re-exports everything here; import from it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import math
import os
import re
from dataclasses import asdict, dataclass
from dataclasses import field as dc_field
from importlib import metadata
from pathlib import Path
from typing import Any

from inr_tune.errors import DataError
from inr_tune.fileio import write_durable

__all__ = ["BaselinePoint", "Baselines", "format_table", "load_or_compute", "nines", "write_csv"]

#: Bumped whenever the baselines' settings or scoring change: old cache files go stale.
BASELINES_VERSION = 1
NINES_CAP = 9.0

_POINT_FIELDS = ("ratio", "r2", "holdout_r2", "psnr", "max_abs_error", "stored_bytes", "seconds")
_WINDOW_FIELDS = ("n_frames", "n_points", "n_components", "holdout_every")
ROW_FIELDS = ("method", "setting", *_POINT_FIELDS, "unavailable", *_WINDOW_FIELDS)


def nines(r2: float) -> float:
    """−log10(1 − R²): 0.99 → 2, 0.999 → 3; capped at 9 for R² ≥ 1 − 1e-9."""
    x = float(r2)
    if math.isnan(x):
        return math.nan
    return NINES_CAP if x >= 1.0 - 1e-9 else -math.log10(1.0 - x)


@dataclass
class BaselinePoint:
    """One compressor setting on one window (ratio and scores as in ``baselines``)."""

    method: str  # "pca" | "zfp" | "sz3"
    setting: str  # "rank=5", "accuracy=0.001", "rate=8", "rel=0.01", … (" unsorted")
    ratio: float  # T·N·C / (stored_bytes / 4)
    r2: float  # mean over components of R²_c, all frames of the window
    holdout_r2: float | None  # the same on the held-out frames; None without any
    psnr: float  # mean over components of 20·log10(range_c / RMSE_c), dB
    max_abs_error: float  # max |pred − gt| over everything, raw units
    stored_bytes: int
    seconds: float  # compress + reconstruct (pca: the shared SVD plus the ranks up to k)


@dataclass
class Baselines:
    """The curves of one window; ``unavailable`` maps a method to why it has no points."""

    points: list[BaselinePoint]
    unavailable: dict[str, str]
    n_frames: int
    n_points: int
    n_components: int
    holdout_every: int
    cache_path: Path | None = dc_field(default=None, compare=False, repr=False)
    from_cache: bool = dc_field(default=False, compare=False, repr=False)

    @property
    def methods(self) -> list[str]:
        return list(dict.fromkeys(p.method for p in self.points))

    def curve(self, method: str) -> list[BaselinePoint]:
        """The points of ``method``, by increasing ratio."""
        return sorted((p for p in self.points if p.method == method), key=lambda p: p.ratio)

    def _uses_holdout(self, holdout: bool) -> bool:
        return holdout and any(p.holdout_r2 is not None for p in self.points)

    def front(self, method: str, holdout: bool = True) -> list[BaselinePoint]:
        """The Pareto front of ``method`` by increasing ratio (so decreasing R²): the
        points no other point of it beats in both ratio and R² (held-out R² when
        ``holdout`` and the window has held-out frames). Plot this as its curve."""
        use_hold = self._uses_holdout(holdout)
        front: list[BaselinePoint] = []
        for p in sorted(self.curve(method), key=lambda q: (-q.ratio, -_value(q, use_hold))):
            v = _value(p, use_hold)
            if math.isfinite(v) and (not front or v > _value(front[-1], use_hold)):
                front.append(p)
        return front[::-1]

    def best_at(self, ratio: float, holdout: bool = True) -> tuple[float, str] | None:
        """Best baseline R² at compression ``ratio`` and the ``"method setting"`` it came from.

        Per method, on its ``front``: linear interpolation in (log ratio, nines) between
        the two points around ``ratio``; below its smallest ratio its best R² (more bytes
        can only help); above its largest ratio nothing. The max over methods; held-out R²
        when ``holdout`` and the window has held-out frames, else R² over all frames. None
        when no method reaches ``ratio``.
        """
        if not (ratio > 0 and math.isfinite(ratio)):
            raise ValueError(f"ratio must be a positive finite number, got {ratio!r}")
        use_hold = self._uses_holdout(holdout)
        best: tuple[float, str] | None = None
        for method in self.methods:
            pts = [(p.ratio, _value(p, use_hold), p.setting) for p in self.front(method, holdout)]
            found = _on_front(pts, ratio)
            if found is not None and (best is None or found[0] > best[0]):
                best = (found[0], f"{method} {found[1]}")
        return best

    def to_rows(self) -> list[dict[str, Any]]:
        """One dict per point (then one per unavailable method), keys ``ROW_FIELDS``."""
        window = {k: getattr(self, k) for k in _WINDOW_FIELDS}
        rows = [{**asdict(p), "unavailable": "", **window} for p in self.points]
        for method, reason in self.unavailable.items():
            blank = dict.fromkeys(_POINT_FIELDS, None)
            rows.append({"method": method, "setting": "", **blank, "unavailable": reason, **window})
        return rows

    @classmethod
    def from_rows(cls, rows: list[dict[str, Any]]) -> Baselines:
        """Inverse of ``to_rows``; also takes the strings ``csv.DictReader`` gives."""
        if not rows:
            raise ValueError("no rows: a baselines table holds at least one row")
        window = {k: int(rows[0][k]) for k in _WINDOW_FIELDS}
        points, unavailable = [], {}
        for row in rows:
            if any(int(row[k]) != window[k] for k in _WINDOW_FIELDS):
                raise ValueError("rows of different windows in one baselines table")
            if row.get("unavailable"):
                unavailable[str(row["method"])] = str(row["unavailable"])
                continue
            hold = row["holdout_r2"]
            points.append(
                BaselinePoint(
                    method=str(row["method"]),
                    setting=str(row["setting"]),
                    ratio=float(row["ratio"]),
                    r2=float(row["r2"]),
                    holdout_r2=None if hold in (None, "") else float(hold),
                    psnr=float(row["psnr"]),
                    max_abs_error=float(row["max_abs_error"]),
                    stored_bytes=int(row["stored_bytes"]),
                    seconds=float(row["seconds"]),
                )
            )
        return cls(points, unavailable, **window)


def _value(p: BaselinePoint, holdout: bool) -> float:
    v = p.holdout_r2 if holdout else p.r2
    return math.nan if v is None else float(v)


def _on_front(front: list[tuple[float, float, str]], ratio: float) -> tuple[float, str] | None:
    if not front or ratio > front[-1][0]:
        return None
    if ratio <= front[0][0]:
        return front[0][1], front[0][2]
    for (r0, v0, s0), (r1, v1, s1) in itertools.pairwise(front):
        if ratio == r1:
            return v1, s1
        if r0 < ratio < r1:
            f = math.log(ratio / r0) / math.log(r1 / r0)
            n = nines(v0) + f * (nines(v1) - nines(v0))
            return 1.0 - 10.0 ** (-n), f"{s1} .. {s0}"
    return None  # unreachable: ratio lies within the front's range


# ---------------------------------------------------------------------- table and CSV


def _fmt_r2(x: float) -> str:
    """R² with two digits past its nines (6 to 10 decimals): 0.99999991, not 1.000000."""
    n = nines(x)
    return f"{x:.{min(10, max(6, int(n) + 2)) if math.isfinite(n) else 6}f}"


def format_table(b: Baselines) -> str:
    """Plain-text table: method, setting, ratio, R², held-out R², PSNR, max error."""
    head = ("method", "setting", "ratio", "R²", "held-out R²", "PSNR dB", "max error")
    rows = [
        (
            p.method,
            p.setting,
            f"{p.ratio:.1f}",
            _fmt_r2(p.r2),
            "—" if p.holdout_r2 is None else _fmt_r2(p.holdout_r2),
            f"{p.psnr:.1f}",
            f"{p.max_abs_error:.3g}",
        )
        for p in sorted(b.points, key=lambda p: (p.method, -p.ratio))
    ]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    held = f"every {b.holdout_every}th frame held out" if b.holdout_every else "no holdout"
    lines = [f"baselines of a {b.n_frames}×{b.n_points}×{b.n_components} window ({held})"]
    lines += [line(head), *(line(r) for r in rows)]
    lines += [f"{m}: unavailable ({reason})" for m, reason in b.unavailable.items()]
    return "\n".join(lines)


def write_csv(b: Baselines, path: str | os.PathLike[str]) -> Path:
    """Write ``b.to_rows()`` as CSV (atomically); read back with ``Baselines.from_rows``."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=ROW_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in b.to_rows())
    write_durable(Path(path), buf.getvalue(), unique=True)
    return Path(path)


# ------------------------------------------------------------------------------ cache


def _version_tag() -> str:
    libs = []
    for dist in ("zfpy", "pysz"):
        try:
            libs.append(f"{dist}-{metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            libs.append(f"{dist}-none")
    return f"v{BASELINES_VERSION} " + " ".join(libs)


def load_or_compute(
    dataset_path: str | os.PathLike[str] | None,
    field: str,
    n_frames: int,
    offset: str | int = "center",
    holdout_every: int = 10,
    cache_dir: str | os.PathLike[str] | None = None,
    refresh: bool = False,
) -> Baselines:
    """Baselines of one window of a dataset, cached as JSON under ``cache_dir``.

    ``dataset_path`` None is the default MPM dataset; ``cache_dir`` None is
    ``$INR_TUNE_DATA/baselines``. The cache key is (dataset content hash, field, window
    start, n_frames, holdout_every, baselines and library versions); a cache file is
    written atomically, and one that cannot be read is recomputed. ``refresh`` recomputes
    regardless. Bad input raises ``DataError`` with one line.
    """
    from inr_tune.baselines import compute_baselines
    from inr_tune.data.defaults import cache_dir as data_dir
    from inr_tune.data.defaults import ensure_default_dataset
    from inr_tune.data.split import holdout_frames
    from inr_tune.data.store import open_dataset, resolve_offset

    try:
        holdout_frames(0, holdout_every)
    except ValueError as err:
        raise DataError(str(err)) from None
    ds = open_dataset(ensure_default_dataset("mpm") if dataset_path is None else dataset_path)
    ds.check_field(field)
    start = resolve_offset(offset, n_frames, ds.n_frames)
    key = {
        "dataset": ds.content_hash(),
        "field": field,
        "start": start,
        "n_frames": int(n_frames),
        "holdout_every": int(holdout_every),
        "version": _version_tag(),
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:8]
    safe_field = re.sub(r"[^A-Za-z0-9_.-]", "_", field)
    root = Path(cache_dir) if cache_dir is not None else data_dir() / "baselines"
    path = root / f"{key['dataset']}_{safe_field}_{start}+{n_frames}_h{holdout_every}_{digest}.json"
    if not refresh:
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
            if stored["key"] == key:
                b = Baselines.from_rows(stored["rows"])
                b.cache_path, b.from_cache = path, True
                return b
        except (OSError, ValueError, KeyError, TypeError):
            pass  # missing or unreadable: recompute and overwrite
    values = ds.window(field, n_frames, start).values
    b = compute_baselines(values, holdout_every)
    try:
        write_durable(path, json.dumps({"key": key, "rows": b.to_rows()}, indent=1), unique=True)
        b.cache_path = path
    except OSError:
        b.cache_path = None  # a read-only cache directory only costs the recomputation
    return b
