"""Ray Tune adapter: ``UCBTreeSearcher`` wraps a ``BlockSession`` (the UCB tree has no Ray).

Per Ray's Searcher contract: ``suggest`` returns a trial config, ``None`` (not now: the
batch is still running) or ``Searcher.FINISHED``; ``on_trial_complete`` copes with errored
trials and missing or NaN metrics; ``save`` writes atomically (``fileio.write_durable``).
The journal, not this state, is the source of truth on ``--resume``.
"""

from __future__ import annotations

import json
import logging
import math
import pickle
from collections.abc import Callable
from typing import Any

from ray.tune.search import Searcher

from inr_tune.fileio import write_durable
from inr_tune.runner.trainable import record_unfinished_trial
from inr_tune.search.session import FINISHED, BlockSession
from inr_tune.search.tree import Node
from inr_tune.training.result import TrialResult, partial_metrics

__all__ = ["UCBTreeSearcher", "early_stopped_metrics", "result_to_outcome"]

logger = logging.getLogger(__name__)


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def early_stopped_metrics(result: dict[str, Any]) -> dict[str, Any]:
    """The metrics of a trial a scheduler (ASHA) stopped: its last intermediate report
    (``training.result.partial_metrics``: ``partial`` true, ``partial_reason`` saying
    what the R² is)."""
    return partial_metrics(result)


def result_to_outcome(
    result: dict[str, Any] | None, error: bool
) -> tuple[str, dict[str, Any], str | None]:
    """(status, metrics, error) of a finished Ray trial."""
    if error or not result:
        return (
            "failed",
            {},
            "the trial process errored or died before reporting (see Ray's error.txt)",
        )
    raw = result.get("metrics_json")
    if raw is None:  # only intermediate reports arrived: the trial was stopped early
        metrics = early_stopped_metrics(result)
        held = metrics["holdout_r2"]
        if _finite(held if held is not None else metrics["final_r2"]):
            return "early_stopped", metrics, None
        return "failed", metrics, "stopped before any finite R² was reported"
    try:
        metrics = json.loads(raw)  # a TrialResult's flat layout (TrialResult.to_json)
        trial = TrialResult.from_dict(metrics)
    except (TypeError, ValueError) as err:  # not JSON, not a result, an unknown status
        return "failed", {}, f"the trial's result could not be read: {err}"
    if trial.status == "ok" and not _finite(metrics.get("final_r2")):
        return "failed", metrics, "no finite final_r2 in the trial's metrics"
    return trial.status, metrics, trial.error


class UCBTreeSearcher(Searcher):
    """Hands out the block session's trials to Ray Tune, one node per Ray trial."""

    def __init__(
        self,
        session: BlockSession,
        trial_config: Callable[[Node], dict[str, Any]],
        on_start: Callable[[Node], None] | None = None,
        on_done: Callable[[Node], None] | None = None,
    ) -> None:
        super().__init__(metric="final_r2", mode="max")
        self.session = session
        self.trial_config = trial_config
        self.on_start = on_start
        self.on_done = on_done
        self.trials: dict[str, int] = {}  # Ray trial id → node id
        self.configs: dict[str, dict[str, Any]] = {}  # Ray trial id → its trainable config

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        nxt = self.session.next_trial()
        if nxt == FINISHED:
            return Searcher.FINISHED
        if nxt is None:
            return None
        assert isinstance(nxt, Node)
        self.trials[trial_id] = nxt.id
        if self.on_start is not None:
            self.on_start(nxt)
        config = self.trial_config(nxt)
        self.configs[trial_id] = config
        return config

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        node_id = self.trials.pop(trial_id, None)
        config = self.configs.pop(trial_id, None)
        if node_id is None:
            return
        status, metrics, err = result_to_outcome(result, error)
        if config is not None and not (result or {}).get("metrics_json"):
            # stopped by ASHA or died: the trial wrote neither metrics.json nor its
            # HParams row (Ray ends a stopped trial's process at once)
            try:
                record_unfinished_trial(config, status, metrics, err)
            except Exception as exc:  # the files are a convenience; the journal has it
                logger.warning("node %s: could not write its trial files: %s", node_id, exc)
        node = self.session.complete(node_id, status, metrics, err)
        if self.on_done is not None:
            self.on_done(node)

    def __getstate__(self) -> dict[str, Any]:
        """Ray pickles its experiment state: keep the id map, not the live session."""
        state = self.__dict__.copy()
        for live in ("session", "trial_config", "on_start", "on_done"):
            state[live] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def save(self, checkpoint_path: str) -> None:
        write_durable(checkpoint_path, pickle.dumps({"trials": dict(self.trials)}))

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as fh:
            self.trials = dict(pickle.load(fh)["trials"])
