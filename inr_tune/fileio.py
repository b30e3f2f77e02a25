"""Files: the one atomic writer, the one JSON sanitiser, reading a local path or an fsspec
URL, one-line errors."""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any

__all__ = ["is_url", "jsonable", "one_line", "open_bytes", "write_durable"]


def is_url(spec: str | None) -> bool:
    return bool(spec) and "://" in str(spec)


def one_line(err: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none)."""
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def jsonable(value: Any) -> Any:
    """A JSON-safe copy of ``value`` (``json.dumps(..., allow_nan=False)`` takes it):
    non-finite floats become None, tuples lists, mapping keys strings, paths strings,
    numpy (or torch) scalars and arrays Python numbers and lists. Anything else is left
    as it is (``json.dumps`` then says what it cannot write)."""
    if value is None or type(value) in (str, bool, int):
        return value
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k if isinstance(k, str) else str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, PurePath):
        return str(value)
    for method in ("tolist", "item"):  # numpy scalars and arrays, torch tensors
        convert = getattr(value, method, None)
        if callable(convert):
            return jsonable(convert())
    return value


def write_durable(path: str | os.PathLike[str], data: str | bytes, *, unique: bool = False) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` atomically and durably: a temp file
    beside it, flushed to disk, renamed over ``path``; a kill leaves the old file or the
    new one (and at most the temp file, ``.NAME.tmp``, which a run's resume removes).

    ``unique``: a temp file of its own (``.NAME.PID.XXXXXXXX.tmp``), for a file that
    several processes may write at once (a shared cache)."""
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    if unique:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    else:
        tmp = path.with_name(f".{path.name}.tmp")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    try:
        with open(os.open(tmp, flags, 0o666), "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:  # the rename itself on disk
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def open_bytes(path: str) -> bytes:
    """The bytes of a local path or of an fsspec URL (OSError when unreadable)."""
    if not is_url(path):
        return Path(path).read_bytes()
    try:
        import fsspec

        with fsspec.open(path, "rb") as f:
            return f.read()
    except OSError:
        raise
    except Exception as err:  # backend errors (missing object, no credentials, …)
        raise OSError(one_line(err)) from err
