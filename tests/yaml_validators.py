"""Validators for every kind of YAML the project ships (used by test_config)."""

from __future__ import annotations

from pathlib import Path

import yaml

from inr_tune.config import SECTIONS, config_from_dict
from inr_tune.config_files import load_config


def validate_shipped_yaml(path: Path) -> None:
    """Load ``path`` with the loader of its kind; raise on any problem."""
    raw = yaml.safe_load(path.read_text())
    assert isinstance(raw, dict), f"{path}: top level must be a mapping"
    in_spaces = path.parent.name == "spaces" and path.parent.parent.name == "configs"
    if in_spaces or ("params" in raw and set(raw) <= {"name", "params", "doc"}):
        from inr_tune.search.space import SearchSpace

        SearchSpace.from_yaml(path)  # search spaces: params with bounds/values and moves
        return
    if path.name == "experiment.yaml":
        from inr_tune.search.experiment import load_experiment

        exp = load_experiment(str(path))  # schedule, classes, space, brief, start configs
        for block in exp.schedule:  # every block's root config validates, CPU and GPU
            for gpu in (False, True):
                exp.root_config(block, gpu=gpu)
        return
    if set(raw) <= set(SECTIONS):
        load_config(path)
        return
    raise AssertionError(f"{path}: no validator knows this kind of YAML (keys {sorted(raw)})")


__all__ = ["config_from_dict", "validate_shipped_yaml"]
