"""``used_model_keys``: each claim checked by building both models — a model key the
variant does not read leaves the trainable parameters, the size and the predictions
unchanged (buffers may differ: ngp keeps its input bounds in τ units); one it reads
changes at least one of them."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from inr_tune.config import ModelConfig
from inr_tune.model_keys import used_model_keys
from inr_tune.models import FieldSpec, build_model, count_params, predict_window
from tests.test_models import C, N, T, model_cfg, synthetic_field

# another valid value for every model key (inr_type aside: it picks the variant)
OTHER = {
    "hidden_dim": 16,
    "n_layers": 1,
    "omega": 3.0,
    "omega_hidden": 30.0,
    "omega_learning": True,
    "t_period": 2.0,
    "xy_period": 3.0,
    "id_embedding_dim": 4,
    "output_init": "default",
    "ngp_levels": 4,
    "ngp_log2_hashmap_size": 10,
    "ngp_features_per_level": 1,
    "ngp_base_resolution": 8,
    "ngp_max_resolution": 32,
    "rank": 3,
    "basis": "table",
    "basis_hidden_dim": 16,
    "basis_layers": 2,
    "basis_omega": 7.0,
}
CASES = [
    ("siren_t", {}),
    ("siren_id", {}),
    ("siren_txy", {}),
    ("ngp", {}),
    ("factorized", {"basis": "siren"}),
    ("factorized", {"basis": "table"}),
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _built(cfg: object) -> tuple[int, dict[str, torch.Tensor], torch.Tensor]:
    pos, _ = synthetic_field()
    spec = FieldSpec(T, N, C, position_range=(0.0, 1.0))
    torch.manual_seed(0)
    model = build_model(cfg, spec, reference_positions=pos[0])
    state = {k: v.detach().clone() for k, v in model.named_parameters()}
    return count_params(cfg, spec), state, predict_window(model, pos)


def _same(a: tuple, b: tuple) -> bool:
    if a[0] != b[0] or a[1].keys() != b[1].keys():
        return False
    if any(a[1][k].shape != b[1][k].shape or not torch.equal(a[1][k], b[1][k]) for k in a[1]):
        return False
    # ngp maps τ ∈ [0, 1/t_period] onto its grid: the same point, up to float rounding
    return torch.allclose(a[2], b[2], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("inr_type", "extra"), CASES)
def test_a_key_the_variant_does_not_read_changes_nothing(inr_type: str, extra: dict) -> None:
    base = model_cfg(inr_type, **extra)
    used = used_model_keys(base)
    assert {"inr_type", "hidden_dim", "n_layers"} <= used
    ref = _built(base)
    for key, value in OTHER.items():
        if key == "basis" and extra.get("basis") == "table":
            value = "siren"
        same = _same(ref, _built(model_cfg(inr_type, **{**extra, key: value})))
        if key not in used:
            assert same, f"{inr_type} {extra}: {key} is said to do nothing but changed the model"
        elif key != "omega_learning":  # it makes ω a parameter, at the same value
            assert not same, f"{inr_type} {extra}: {key} is said to be read but changed nothing"


def test_lr_omega_counts_only_while_omega_is_learned() -> None:
    assert "lr_omega" not in used_model_keys(model_cfg("siren_txy"))
    assert "lr_omega" in used_model_keys(model_cfg("siren_txy", omega_learning=True))
    assert "lr_omega" not in used_model_keys(model_cfg("ngp", omega_learning=True))


def test_every_model_config_key_is_covered() -> None:
    names = {f.name for f in dataclasses.fields(ModelConfig)}
    assert names - {"inr_type", "lr_omega"} == set(OTHER)
    assert used_model_keys(ModelConfig()) <= names
    with pytest.raises(ValueError, match="unknown inr_type"):
        used_model_keys(model_cfg("siren"))
