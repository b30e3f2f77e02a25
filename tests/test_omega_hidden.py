"""model.omega_hidden: null (follow omega, the default) and 30 (the SIREN paper's) are both
reachable by the search, through the same validation the proposers use."""

from __future__ import annotations

from pathlib import Path

import pytest

from inr_tune.config import Config, ModelConfig
from inr_tune.models.siren import SineLayer
from inr_tune.models.variants import FieldSpec, build_model
from inr_tune.search.space import SearchSpace

SPACES = Path(__file__).resolve().parents[1] / "configs" / "spaces"


def _hidden_omegas(cfg: Config) -> list[float]:
    model = build_model(cfg.model, FieldSpec(8, 5, 1))
    return [float(m.omega) for m in model.modules() if isinstance(m, SineLayer)][1:]


def test_default_follows_omega() -> None:
    assert ModelConfig().omega_hidden is None
    assert "SIREN paper uses 30" in ModelConfig.__dataclass_fields__["omega_hidden"].metadata["doc"]


@pytest.mark.parametrize("name", ["mpm.yaml", "flyvis.yaml"])
def test_search_moves_omega_hidden_both_ways(name: str) -> None:
    space = SearchSpace.from_yaml(SPACES / name)
    p = space.param("omega_hidden")
    assert p.key == "model.omega_hidden" and None in p.values and 30 in p.values
    assert p.weight > 0 and "omega_hidden" in space.search_params  # the rule proposer moves it
    root = Config().replace(model={"inr_type": "siren_t", "hidden_dim": 16, "n_layers": 2})
    assert root.model.omega_hidden is None
    # null → 30: one move of the rule proposer, and a valid proposal
    assert 30 in space.neighbours(root, "omega_hidden")
    child, change = space.mutate(root, {"omega_hidden": 30})
    assert change == {"omega_hidden": (None, 30)} and child.model.omega_hidden == 30
    # 30 → null, as a proposer (or Claude, as JSON null or the string "null") writes it
    assert None in space.neighbours(child, "omega_hidden")
    for raw in (None, "null"):
        back, change = space.mutate(child, {"omega_hidden": raw})
        assert change == {"omega_hidden": (30, None)} and back.model.omega_hidden is None
    # the built nets: hidden layers at 30, or at the first layer's ω (8)
    assert _hidden_omegas(child) == [30.0, 30.0]
    assert _hidden_omegas(back) == [root.model.omega] * 2
