"""Files: the one atomic writer, reading a local path or an fsspec URL, one-line errors."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["is_url", "one_line", "open_bytes", "write_durable"]


def is_url(spec: str | None) -> bool:
    return bool(spec) and "://" in str(spec)


def one_line(err: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none)."""
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def write_durable(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically and durably: a temp file beside it, flushed
    to disk, renamed over ``path``; a kill leaves the old file or the new one."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
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
