"""Where a block's results go: the run directory itself, a shared directory, or an
object store named by an fsspec URL (``s3://bucket/runs``, ``gs://…``, ``file:///…``).

Every form gives the same layout, ``<storage>/<run name>/trials/iter_NNN/``. With a
directory, trials write there directly (on a cluster every node must see it). With a URL,
a trial writes into its Ray working directory on its own node and Ray Tune uploads it to
the store (``storage_filesystem`` built from the fsspec filesystem, ``sync_artifacts``);
the last report of a trial carries a checkpoint, which makes Ray finish the upload before
the driver sees the result. The driver copies its reports (journal, analysis, memory,
UCB scores, tree) to ``<storage>/<run name>/`` after each block.

Credentials never pass through here: the filesystem is built from the URL alone and
each node's fsspec backend reads its own (AWS_* variables, ~/.aws, a GCP service
account, …), so nothing secret is pickled into Ray's state.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inr_tune.errors import InrTuneError
from inr_tune.fileio import is_url, one_line

__all__ = ["Storage", "is_url", "resolve_storage"]

# Files of the driver's run directory mirrored to an object store (not configs/: small,
# but one per trial; they are in every trial's config.yaml already).
REPORT_FILES = (
    "journal.jsonl",
    "analysis.md",
    "memory.md",
    "ucb_scores.txt",
    "options.json",
    "results.csv",
    "tree.png",
)


@dataclass(frozen=True)
class Storage:
    """The results location of one run (``url`` is None for a directory)."""

    run_dir: Path  # the driver's run directory (journal and reports)
    local: Path | None  # <dir>/<run name> when results go to a directory
    url: str | None  # <url>/<run name> when they go to an object store
    fs: Any = None  # the fsspec filesystem of ``url``
    root: str | None = None  # ``url`` without its protocol, as ``fs`` names it

    def trial_dir(self, node_id: int) -> str:
        """Where trial ``node_id``'s files end up (a path or a URL)."""
        name = f"iter_{node_id:03d}"
        if self.url is None:
            assert self.local is not None
            return str(self.local / "trials" / name)
        return f"{self.url}/trials/{name}"

    def clear_trial(self, node_id: int, ray_name: str | None = None) -> None:
        """Remove what an earlier attempt at trial ``node_id`` left (a run killed while it
        trained): a trial starts from an empty directory, so TensorBoard never shows the
        killed attempt's curves beside the new ones. ``ray_name`` is Ray's own directory of
        the trial under the local ``ray/`` (with an object store it is the trial's)."""
        if self.url is None:
            assert self.local is not None
            dirs = [Path(self.trial_dir(node_id))]
            if ray_name:
                dirs.append(self.local / "ray" / ray_name)
            for d in dirs:
                if d.is_dir():
                    shutil.rmtree(d)
            return
        path = f"{self.root}/trials/iter_{node_id:03d}"
        try:
            if self.fs.exists(path):
                self.fs.rm(path, recursive=True)
        except Exception as err:
            raise InrTuneError(
                f"--storage {self.url}: cannot clear trial {node_id}: {one_line(err)}"
            ) from err

    def ray_storage(self) -> dict[str, Any]:
        """``storage_path`` (and ``storage_filesystem``) for Ray Tune's RunConfig."""
        if self.url is None:
            assert self.local is not None
            return {"storage_path": str(self.local / "ray")}
        from pyarrow.fs import FSSpecHandler, PyFileSystem

        return {
            "storage_path": self.root,
            "storage_filesystem": PyFileSystem(FSSpecHandler(self.fs)),
        }

    def upload_reports(self) -> None:
        """Copy the driver's reports to ``<url>/`` (no-op for a directory)."""
        if self.url is None:
            return
        try:
            for name in REPORT_FILES:
                src = self.run_dir / name
                if src.is_file():
                    self.fs.put_file(str(src), f"{self.root}/{name}")
        except Exception as err:  # network, permissions, quota: say which store and why
            raise InrTuneError(
                f"--storage {self.url}: cannot write reports: {one_line(err)}"
            ) from err


def resolve_storage(spec: str | None, run_dir: Path) -> Storage:
    """The results location for ``--storage spec`` (None: inside the run directory).

    A URL's backend is loaded and a test object written and removed here, so an unknown
    protocol, a missing backend (``pip install s3fs``) or a store that takes no writes
    stops the block with one line before anything is written.
    """
    if not spec:
        return Storage(run_dir=run_dir, local=run_dir.resolve(), url=None)
    if not is_url(spec):
        return Storage(run_dir=run_dir, local=(Path(spec) / run_dir.name).resolve(), url=None)
    try:
        from fsspec.core import url_to_fs

        fs, root = url_to_fs(spec)
    except (ImportError, ValueError) as err:
        raise InrTuneError(f"--storage {spec}: {one_line(err)}") from err
    root = f"{root.rstrip('/')}/{run_dir.name}"
    storage = Storage(
        run_dir=run_dir,
        local=None,
        url=f"{spec.rstrip('/')}/{run_dir.name}",
        fs=fs,
        root=root,
    )
    try:  # a wrong bucket, no credentials, no network: found now, not after the first trial
        fs.makedirs(f"{root}/trials", exist_ok=True)
        fs.pipe_file(f"{root}/.write_check", b"inr_tune")
        fs.rm_file(f"{root}/.write_check")
    except Exception as err:
        raise InrTuneError(f"--storage {spec}: cannot write there: {one_line(err)}") from err
    return storage
