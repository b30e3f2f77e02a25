"""What stays fixed for a whole search run (``RunContext``), the journal replay a resumed
run starts from, and user_input.md: ``set`` lines that pin a config key for later
proposals or change a live search/block setting (``LIVE_KEYS``)."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inr_tune.config import Config, parse_set
from inr_tune.errors import ConfigError
from inr_tune.journal import (
    BatchAdded,
    Event,
    Journal,
    NodeCompleted,
    NoProposal,
    UserInput,
    as_records,
)
from inr_tune.search.experiment import Experiment
from inr_tune.search.proposers.base import Proposer
from inr_tune.search.tree import Tree

__all__ = ["LIVE_KEYS", "RunContext", "check_setting", "replay_tree", "unreviewed", "with_space"]


def replay_tree(events: list[Any]) -> Tree:
    """Rebuild the tree from journal events (records, or lines as read)."""
    return Tree.replay(events)


def unreviewed(events: list[Any], block: int) -> list[int]:
    """Nodes of ``block`` that finished but that no proposer call has seen yet (they get
    their observations at the next call), from the journal: a ``batch_added`` or
    ``no_proposal`` line lists in ``reviewed`` the finished nodes its call was shown. A
    line without that list (journals older than it) saw every node finished before it."""
    finished: list[int] = []
    seen: set[int] = set()
    ours: set[int] = set()
    for e in as_records(events):
        if isinstance(e, BatchAdded) and e.block == block:
            ours.update(n["id"] for n in e.nodes)
        if isinstance(e, NodeCompleted) and e.node_id in ours:
            finished.append(e.node_id)
        elif isinstance(e, (BatchAdded, NoProposal)) and e.block == block:
            seen.update(finished if e.reviewed is None else e.reviewed)
    return [i for i in dict.fromkeys(finished) if i not in seen]


@dataclass
class RunContext:
    """What stays fixed for a whole run."""

    run_dir: Path
    journal: Journal
    tree: Tree
    experiment: Experiment
    proposer: Proposer
    parallel: int
    n_iter: int
    reward: str
    pinned: dict[str, Any] = field(default_factory=dict)
    rules: list[str] = field(default_factory=list)
    memory: Callable[[], str] = lambda: ""
    on_event: Callable[[str, dict[str, Any]], None] = lambda name, data: None
    check_config: Callable[[Config], str | None] = lambda cfg: None  # e.g. "does not fit"
    # search.* / block.* keys set in user_input.md (LIVE_KEYS): they change the running
    # search from the next proposal (search.*, block.iterations) or the next block
    overrides: dict[str, Any] = field(default_factory=dict)
    _user_hash: str = ""

    def log(self, event: str | Event, **data: Any) -> dict[str, Any]:
        record = self.journal.append(event, **data)
        self.on_event(record["event"], record)
        return record

    def read_user_input(self) -> str:
        """New text in ``user_input.md`` since the last read ('' when unchanged).

        Lines ``set section.key=value`` pin a data/model/training key for all later
        proposals and blocks, or change a search/block setting of the running search
        (``LIVE_KEYS``; the others are refused with the reason, in the journal).
        """
        path = self.run_dir / "user_input.md"
        if not path.is_file():
            return ""
        text = path.read_text().strip()
        digest = hashlib.sha256(text.encode()).hexdigest()
        if not text or digest == self._user_hash:
            return ""
        self._user_hash = digest
        pins, settings, problems = {}, {}, []
        for line in text.splitlines():
            line = line.strip()
            if not line.lower().startswith("set "):
                continue
            try:
                section, key, value = parse_set(line[4:].strip())
                dotted = f"{section}.{key}"
                if section in ("search", "block"):
                    check_setting(dotted, value)
                    settings[dotted] = value
                else:
                    pins[dotted] = value
            except ConfigError as err:
                problems.append(f"{line!r}: {err}")
        self.apply_user_input(pins, settings)
        self.log(
            UserInput(text=text, digest=digest, pins=pins, settings=settings, problems=problems)
        )
        return text

    def apply_user_input(self, pins: dict[str, Any], settings: dict[str, Any]) -> None:
        """Take in the pins and settings of one ``user_input`` (also on ``--resume``)."""
        self.pinned.update(pins)
        self.overrides.update(settings)
        if "block.iterations" in settings:
            self.n_iter = int(settings["block.iterations"])
        if "search.reward" in settings:
            self.reward = str(settings["search.reward"])
        if "search.space" in settings:
            self.experiment = with_space(self.experiment, settings["search.space"])


# search.* / block.* keys that user_input.md may change while the search runs; the others
# (which data, cluster, proposer) are fixed when the run starts
LIVE_KEYS = {
    "search.ucb_c": "from the next proposal",
    "search.reward": "from the next proposal",
    "search.objective": "from the next proposal",
    "search.min_ratio": "from the next proposal",
    "search.seed_reruns": "from the block's seed-rerun round",
    "search.space": "from the next proposal",
    "block.iterations": "in the running block",
    "block.blocks": "after the running block",
    "block.parallel": "from the next block",
    "block.early_stop": "from the next block",
}


def check_setting(dotted: str, value: Any) -> None:
    """Refuse (ConfigError) a search/block key user_input.md cannot change, or a bad value."""
    if dotted not in LIVE_KEYS:
        raise ConfigError(
            f"{dotted} is fixed when the run starts (start a new run with --set {dotted}=…); "
            f"user_input.md may set {', '.join(LIVE_KEYS)}"
        )
    section, key = dotted.split(".")
    Config().replace(**{section: {key: value}})  # type and range: one line when bad
    if dotted == "search.space":
        with_space(None, value)


def with_space(experiment: Any, path: Any) -> Any:
    """``experiment`` searching the space YAML at ``path`` (None: the check only)."""
    from inr_tune.search.experiment import load_space

    space = load_space(path)
    return None if experiment is None else dataclasses.replace(experiment, space=space)
