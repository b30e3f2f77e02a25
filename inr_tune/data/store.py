"""Zarr store for field datasets: atomic writes, validated reads, frame windows.

Layout (zarr-python 3 group, see DESIGN.md):

- root attrs: ``format_version``, ``kind`` (``mpm`` | ``flyvis``), ``n_frames``, ``n_points``,
  ``frame_dt``, ``components`` ({field: [names]}), ``generator`` ({name, parameters}).
- ``positions`` float32 ``[T, N, 2]`` (MPM) or ``[N, 2]`` (fly-eye, static).
- ``fields/<name>`` float32 ``[T, N, C]``; more per-frame or static arrays per kind.

Writes go to a hidden temporary directory beside the target that is renamed into place
only when every frame has been written, so an interrupted write leaves no half dataset.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from inr_tune.errors import DataError

__all__ = [
    "FORMAT_VERSION",
    "Dataset",
    "DatasetWriter",
    "FrameArray",
    "Window",
    "file_stamp",
    "open_dataset",
    "resolve_offset",
]

FORMAT_VERSION = 1
CHUNK_FRAMES = 256
KINDS = ("mpm", "flyvis")


@dataclass(frozen=True)
class FrameArray:
    """Declaration of one per-frame array: stored shape is ``[T, *shape]``."""

    shape: tuple[int, ...]
    dtype: str = "float32"


def _compressors() -> Any:
    from zarr.codecs import BloscCodec

    return [BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")]


class DatasetWriter:
    """Write a dataset frame-chunk by frame-chunk into a temporary path, then rename.

    Use as a context manager::

        with DatasetWriter(path, kind="mpm", n_frames=T, n_points=N, frame_dt=dt,
                           frame_arrays={"positions": FrameArray((N, 2)), ...},
                           static={"material": mat}, components={"F": [...]},
                           attrs={"generator": {...}}) as w:
            w.write(0, {"positions": pos[0:256], ...})

    On a clean exit every per-frame array must be fully written (checked), the root
    attrs are finalised and the temporary directory replaces ``path``. On an exception
    the temporary directory is removed and ``path`` is left as it was.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        kind: str,
        n_frames: int,
        n_points: int,
        frame_dt: float,
        frame_arrays: Mapping[str, FrameArray],
        static: Mapping[str, np.ndarray] | None = None,
        components: Mapping[str, list[str]],
        attrs: Mapping[str, Any] | None = None,
        overwrite: bool = True,
        chunk_frames: int = CHUNK_FRAMES,
    ) -> None:
        if kind not in KINDS:
            raise DataError(f"dataset kind {kind!r} is unknown; allowed: {', '.join(KINDS)}")
        if n_frames < 1 or n_points < 1:
            raise DataError(f"a dataset needs ≥ 1 frame and ≥ 1 point, got {n_frames}×{n_points}")
        self.path = Path(path)
        if self.path.exists() and not overwrite:
            raise DataError(f"{self.path} already exists; choose another --out or remove it")
        self.kind = kind
        self.n_frames = int(n_frames)
        self.n_points = int(n_points)
        self.frame_dt = float(frame_dt)
        self.frame_arrays = dict(frame_arrays)
        self.static = dict(static or {})
        self.components = {k: list(v) for k, v in components.items()}
        self.attrs = dict(attrs or {})
        self.chunk_frames = max(1, min(int(chunk_frames), CHUNK_FRAMES))
        self._tmp = self.path.parent / f".{self.path.name}.tmp-{os.getpid()}"
        self._written: dict[str, np.ndarray] = {}
        self._group: zarr.Group | None = None

    def __enter__(self) -> DatasetWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._tmp.exists():
            shutil.rmtree(self._tmp)
        group = zarr.open_group(str(self._tmp), mode="w")
        for name, spec in self.frame_arrays.items():
            shape = (self.n_frames, *spec.shape)
            chunks = (self.chunk_frames, *spec.shape)
            group.create_array(
                name, shape=shape, chunks=chunks, dtype=spec.dtype, compressors=_compressors()
            )
            self._written[name] = np.zeros(self.n_frames, dtype=bool)
        for name, value in self.static.items():
            value = np.asarray(value)
            arr = group.create_array(name, shape=value.shape, chunks=value.shape, dtype=value.dtype)
            arr[...] = value
        self._group = group
        return self

    def write(self, start: int, arrays: Mapping[str, np.ndarray]) -> None:
        """Write frames ``start : start + k`` of each named per-frame array."""
        assert self._group is not None, "DatasetWriter.write outside its context"
        for name, value in arrays.items():
            if name not in self.frame_arrays:
                raise DataError(
                    f"array {name!r} was not declared; declared: {sorted(self.frame_arrays)}"
                )
            value = np.asarray(value)
            spec = self.frame_arrays[name]
            if value.shape[1:] != spec.shape or start < 0 or start + len(value) > self.n_frames:
                raise DataError(
                    f"array {name!r}: block of shape {value.shape} at frame {start} does not fit "
                    f"[{self.n_frames}, {', '.join(map(str, spec.shape))}]"
                )
            if not np.all(np.isfinite(value)):
                raise DataError(
                    f"array {name!r} has NaN or inf values in frames {start}..{start + len(value) - 1}"
                )
            self._group[name][start : start + len(value)] = value.astype(spec.dtype, copy=False)
            self._written[name][start : start + len(value)] = True

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None:
                self._finalise()
        finally:
            if self._tmp.exists():
                shutil.rmtree(self._tmp, ignore_errors=True)

    def _finalise(self) -> None:
        assert self._group is not None
        missing = [n for n, done in self._written.items() if not done.all()]
        if missing:
            raise DataError(f"dataset not complete: frames missing in {', '.join(missing)}")
        ranges = {}
        for field in self.components:
            ranges[field] = _value_range(self._group[f"fields/{field}"])
        self._group.attrs.update(
            {
                **self.attrs,
                "format_version": FORMAT_VERSION,
                "kind": self.kind,
                "n_frames": self.n_frames,
                "n_points": self.n_points,
                "frame_dt": self.frame_dt,
                "components": self.components,
                "value_range": ranges,
            }
        )
        old = None
        if self.path.exists():
            old = self.path.parent / f".{self.path.name}.old-{os.getpid()}"
            os.replace(self.path, old)
        os.replace(self._tmp, self.path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _value_range(array: zarr.Array) -> list[list[float]]:
    """Per-component [min, max] of a ``[T, N, C]`` array, read chunk by chunk."""
    c = array.shape[-1]
    lo = np.full(c, np.inf)
    hi = np.full(c, -np.inf)
    step = array.chunks[0]
    for s in range(0, array.shape[0], step):
        block = array[s : s + step].reshape(-1, c)
        lo = np.minimum(lo, block.min(axis=0))
        hi = np.maximum(hi, block.max(axis=0))
    return [[float(a), float(b)] for a, b in zip(lo, hi, strict=True)]


@dataclass(frozen=True)
class Window:
    """A window of consecutive frames of one field, ready for training.

    ``values`` is ``[n, N, C]``; ``positions`` is ``[n, N, 2]`` (MPM) or ``[N, 2]`` (static);
    ``start`` is the first frame's index in the dataset.
    """

    field: str
    start: int
    values: np.ndarray
    positions: np.ndarray
    components: list[str]
    kind: str
    frame_dt: float

    @property
    def n_frames(self) -> int:
        return int(self.values.shape[0])

    @property
    def n_points(self) -> int:
        return int(self.values.shape[1])


def resolve_offset(offset: str | int, n_window: int, n_total: int) -> int:
    """First frame of a window of ``n_window`` frames: ``center``, ``start`` or an int."""
    if n_window < 1:
        raise DataError(f"window of {n_window} frames: need at least 1")
    if n_window > n_total:
        raise DataError(
            f"window of {n_window} frames is longer than the data ({n_total} frames); "
            f"use data.n_frames ≤ {n_total} or a longer dataset"
        )
    if offset == "center":
        return (n_total - n_window) // 2
    if offset == "start":
        return 0
    try:
        start = int(offset)
    except (TypeError, ValueError):
        raise DataError(
            f"data.offset={offset!r} is not allowed; use center, start or a frame index"
        ) from None
    if start < 0 or start + n_window > n_total:
        raise DataError(
            f"data.offset={start} with {n_window} frames runs past the data ({n_total} frames); "
            f"allowed offsets: 0..{n_total - n_window}"
        )
    return start


class Dataset:
    """Read-only view of a dataset directory; validates the layout on open."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise DataError(f"dataset {self.path} does not exist")
        try:
            self.group = zarr.open_group(str(self.path), mode="r")
            attrs = dict(self.group.attrs)
        except Exception as err:  # zarr raises several types for a non-zarr directory
            raise DataError(
                f"{self.path} is not an inr_tune dataset ({type(err).__name__})"
            ) from None
        missing = [
            k
            for k in ("format_version", "kind", "n_frames", "n_points", "components")
            if k not in attrs
        ]
        if missing:
            raise DataError(
                f"{self.path} is not an inr_tune dataset (attrs missing: {', '.join(missing)})"
            )
        self.attrs = attrs
        self.kind: str = attrs["kind"]
        self.n_frames = int(attrs["n_frames"])
        self.n_points = int(attrs["n_points"])
        self.frame_dt = float(attrs.get("frame_dt", 1.0))
        self.components: dict[str, list[str]] = {k: list(v) for k, v in attrs["components"].items()}
        for field, comps in self.components.items():
            shape = self._array(f"fields/{field}").shape
            if shape != (self.n_frames, self.n_points, len(comps)):
                raise DataError(
                    f"{self.path}: fields/{field} has shape {shape}, expected "
                    f"{(self.n_frames, self.n_points, len(comps))}"
                )

    def _array(self, name: str) -> zarr.Array:
        try:
            return self.group[name]  # type: ignore[return-value]
        except KeyError:
            raise DataError(f"{self.path}: array {name!r} is missing") from None

    @property
    def fields(self) -> list[str]:
        return list(self.components)

    def check_field(self, field: str) -> None:
        if field not in self.components:
            raise DataError(
                f"field {field!r} is not in {self.path.name}; valid fields: {', '.join(self.fields)}"
            )

    def window_problem(self, field: str, n_frames: int) -> str | None:
        """Why this dataset cannot give a ``field`` window of ``n_frames``, or None."""
        if field not in self.components:
            return f"field {field!r} is not in {self.path.name}; valid fields: {', '.join(self.fields)}"
        if n_frames > self.n_frames:
            return (
                f"block {field}@{n_frames} needs {n_frames} frames but {self.path} has "
                f"{self.n_frames}; generate a longer dataset and pass --set data.path=PATH"
            )
        return None

    def read(self, name: str, start: int | None = None, stop: int | None = None) -> np.ndarray:
        """Read array ``name`` (frames ``start:stop`` when given), checking it is finite."""
        arr = self._array(name)
        try:
            data = arr[start:stop] if (start is not None or stop is not None) else arr[...]
        except Exception as err:
            raise DataError(
                f"{self.path}: array {name!r} could not be read (truncated or corrupt chunk: "
                f"{type(err).__name__})"
            ) from None
        data = np.asarray(data)
        if data.dtype.kind == "f" and not np.all(np.isfinite(data)):
            raise DataError(f"{self.path}: array {name!r} holds NaN or inf values")
        return data

    def window(self, field: str, n_frames: int, offset: str | int = "center") -> Window:
        """Read ``n_frames`` consecutive frames of ``field`` (and positions) only."""
        self.check_field(field)
        start = resolve_offset(offset, n_frames, self.n_frames)
        stop = start + n_frames
        values = self.read(f"fields/{field}", start, stop).astype(np.float32, copy=False)
        pos_arr = self._array("positions")
        positions = (
            self.read("positions", start, stop) if pos_arr.ndim == 3 else self.read("positions")
        )
        return Window(
            field=field,
            start=start,
            values=values,
            positions=positions.astype(np.float32, copy=False),
            components=self.components[field],
            kind=self.kind,
            frame_dt=self.frame_dt,
        )

    def content_hash(self) -> str:
        """SHA-256 over the stored metadata and chunk bytes (stable across copies)."""
        h = hashlib.sha256()
        root = self.path
        for file in sorted(p for p in root.rglob("*") if p.is_file()):
            rel = file.relative_to(root).as_posix()
            if rel.endswith("zarr.json") and "/" not in rel:
                # Root metadata: hash the attrs canonically.
                h.update(json.dumps(self.attrs, sort_keys=True).encode())  # attrs order may vary
                continue
            h.update(rel.encode())
            h.update(file.read_bytes())
        return h.hexdigest()[:16]

    def summary(self) -> dict[str, Any]:
        """What ``info`` prints: kind, frames, points, fields with components and ranges."""
        ranges = self.attrs.get("value_range", {})
        return {
            "path": str(self.path),
            "kind": self.kind,
            "n_frames": self.n_frames,
            "n_points": self.n_points,
            "frame_dt": self.frame_dt,
            "fields": {
                f: {"components": c, "range": ranges.get(f)} for f, c in self.components.items()
            },
            "generator": self.attrs.get("generator"),
        }


def file_stamp(root: str | os.PathLike[str]) -> list[list[Any]]:
    """Every file of a dataset directory with its size, mtime and inode: a dataset written
    again (the store writes a new directory and renames it into place) or a file changed
    in place gives another stamp."""
    base = Path(root)
    rows = []
    for file in sorted(q for q in base.rglob("*") if q.is_file()):
        st = file.stat()
        rows.append([file.relative_to(base).as_posix(), st.st_size, st.st_mtime_ns, st.st_ino])
    return rows


def open_dataset(path: str | os.PathLike[str]) -> Dataset:
    """Open and validate a dataset; raises ``DataError`` with one line on any problem."""
    return Dataset(path)
