"""Importers for the older tools' files.

- ``import_mpm``: their ``x_list_*.npy`` array ``[T, N, 21]`` float32 with columns
  0 id, 1–2 x y, 3–4 vx vy, 5–8 C, 9–12 F, 13 Jp, 14 material, 15 mass, 16–19 S, 20 disc.
- ``import_flyvis``: their zarr v2 stimulus array ``[T, 13741]`` (only the first 1736
  columns — the photoreceptors, type-major — are used).

Both read frame blocks (memory-mapped or chunked) and write through ``DatasetWriter``,
so a bad or interrupted import leaves nothing at the output path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from inr_tune.data.store import CHUNK_FRAMES, DatasetWriter, FrameArray
from inr_tune.errors import DataError

__all__ = ["MPM_COLUMNS", "import_flyvis", "import_mpm"]

#: Column slices of the older MPM tool's x_list array.
MPM_COLUMNS: dict[str, slice] = {
    "id": slice(0, 1),
    "positions": slice(1, 3),
    "velocity": slice(3, 5),
    "C": slice(5, 9),
    "F": slice(9, 13),
    "Jp": slice(13, 14),
    "material": slice(14, 15),
    "mass": slice(15, 16),
    "S": slice(16, 20),
    "disc": slice(20, 21),
}
MPM_COMPONENTS = {
    "F": ["F00", "F01", "F10", "F11"],
    "C": ["C00", "C01", "C10", "C11"],
    "S": ["S00", "S01", "S10", "S11"],
    "Jp": ["Jp"],
}
N_FLYVIS_NEURONS = 1736
REFERENCE_MPM_FRAME_DT = 7.5e-5


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="frame", disable=not enabled, leave=False)


def import_mpm(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    frame_dt: float = REFERENCE_MPM_FRAME_DT,
    progress: bool = True,
) -> Path:
    """Convert an older-tool ``[T, N, 21]`` .npy array into an MPM dataset at ``out``."""
    src = Path(src)
    if not src.is_file():
        raise DataError(f"{src} does not exist")
    try:
        arr = np.load(src, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise DataError(
            f"{src} is not a readable .npy array ({err.__class__.__name__}: {err})"
        ) from None
    if arr.ndim != 3 or arr.shape[2] != 21 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise DataError(
            f"{src}: expected an array [T, N, 21] (frames, particles, columns), got {list(arr.shape)}"
        )
    if arr.dtype.kind != "f":
        raise DataError(f"{src}: expected a float array, got dtype {arr.dtype}")
    n_frames, n_points, _ = arr.shape
    first = np.asarray(arr[0], dtype=np.float64)
    material = first[:, MPM_COLUMNS["material"]].ravel()
    disc = first[:, MPM_COLUMNS["disc"]].ravel()
    mass = first[:, MPM_COLUMNS["mass"]].ravel()
    for name, values in (("material", material), ("disc", disc), ("mass", mass)):
        if not np.all(np.isfinite(values)):
            raise DataError(f"{src}: column {name!r} has NaN or inf values in frame 0")
    if not np.all(np.isin(material, (0, 1, 2))):
        raise DataError(
            f"{src}: column 14 (material) must hold 0, 1 or 2; found {np.unique(material)[:5]}"
        )
    per_frame = ("positions", "velocity", "F", "C", "S", "Jp")
    names = {k: (k if k in ("positions", "velocity") else f"fields/{k}") for k in per_frame}
    writer = DatasetWriter(
        out,
        kind="mpm",
        n_frames=n_frames,
        n_points=n_points,
        frame_dt=frame_dt,
        frame_arrays={
            names[k]: FrameArray((n_points, MPM_COLUMNS[k].stop - MPM_COLUMNS[k].start))
            for k in per_frame
        },
        static={
            "material": material.astype(np.int8),
            "disc": disc.astype(np.int16),
            "mass": mass.astype(np.float32),
        },
        components=MPM_COMPONENTS,
        attrs={
            "generator": {
                "name": "import-mpm",
                "parameters": {"source": src.name, "frame_dt": frame_dt},
            }
        },
    )
    with writer, _progress(n_frames, "import-mpm", progress) as bar:
        for start in range(0, n_frames, CHUNK_FRAMES):
            block = np.asarray(arr[start : start + CHUNK_FRAMES], dtype=np.float32)
            try:
                writer.write(start, {names[k]: block[:, :, MPM_COLUMNS[k]] for k in per_frame})
            except DataError as err:
                raise DataError(f"{src}: {err}") from None
            bar.update(len(block))
    return Path(out)


def import_flyvis(
    src: str | os.PathLike[str], out: str | os.PathLike[str], *, progress: bool = True
) -> Path:
    """Convert an older-tool zarr v2 stimulus array ``[T, ≥1736]`` into a fly-eye dataset."""
    import zarr

    from inr_tune.data.flyvis import neuron_positions

    src = Path(src)
    if not src.exists():
        raise DataError(f"{src} does not exist")
    try:
        node = zarr.open(str(src), mode="r")
    except Exception as err:  # zarr raises several types for non-zarr paths
        raise DataError(f"{src} is not a zarr array ({type(err).__name__})") from None
    if isinstance(node, zarr.Group):
        arrays = [k for k, v in node.members() if isinstance(v, zarr.Array)]
        if len(arrays) != 1:
            raise DataError(
                f"{src} is a zarr group with arrays {arrays}; point to the stimulus array"
            )
        node = node[arrays[0]]
    if node.ndim != 2 or node.shape[1] < N_FLYVIS_NEURONS or node.shape[0] < 1:
        raise DataError(
            f"{src}: expected a stimulus array [T, ≥{N_FLYVIS_NEURONS}] (frames, neurons), got {list(node.shape)}"
        )
    n_frames = int(node.shape[0])
    read_block = max(CHUNK_FRAMES, (int(node.chunks[0]) // CHUNK_FRAMES) * CHUNK_FRAMES)
    writer = DatasetWriter(
        out,
        kind="flyvis",
        n_frames=n_frames,
        n_points=N_FLYVIS_NEURONS,
        frame_dt=0.02,
        frame_arrays={"fields/stimulus": FrameArray((N_FLYVIS_NEURONS, 1))},
        static={"positions": neuron_positions().astype(np.float32)},
        components={"stimulus": ["stimulus"]},
        attrs={
            "n_columns": 217,
            "n_types": 8,
            "generator": {"name": "import-flyvis", "parameters": {"source": src.name}},
        },
    )
    with writer, _progress(n_frames, "import-flyvis", progress) as bar:
        for start in range(0, n_frames, read_block):
            try:
                block = np.asarray(
                    node[start : start + read_block, :N_FLYVIS_NEURONS], dtype=np.float32
                )
            except Exception as err:
                raise DataError(
                    f"{src}: frames {start}.. could not be read (truncated or corrupt chunk: {type(err).__name__})"
                ) from None
            try:
                writer.write(start, {"fields/stimulus": block[:, :, None]})
            except DataError as err:
                raise DataError(f"{src}: {err}") from None
            bar.update(len(block))
    return Path(out)
