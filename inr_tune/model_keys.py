"""Which ``model.*`` keys each INR variant reads (``used_model_keys``); torch-free, so
the search can ask without importing the models."""

from __future__ import annotations

from typing import Any

__all__ = ["used_model_keys"]

_SIREN_KEYS = frozenset(
    {"inr_type", "hidden_dim", "n_layers", "omega", "omega_hidden", "omega_learning"}
    | {"output_init", "t_period"}
)
_NGP_KEYS = frozenset(
    {"inr_type", "hidden_dim", "n_layers", "ngp_levels", "ngp_log2_hashmap_size"}
    | {"ngp_features_per_level", "ngp_base_resolution", "ngp_max_resolution"}
)
_FACTORIZED_SIREN_BASIS = frozenset(
    {"xy_period", "basis_hidden_dim", "basis_layers", "basis_omega"}
)
_ONLY = {
    "siren_t": frozenset(),
    "siren_id": frozenset({"id_embedding_dim"}),
    "siren_txy": frozenset({"xy_period"}),
    "factorized": frozenset({"rank", "basis"}),
}


def used_model_keys(cfg: Any) -> frozenset[str]:
    """The ``model.*`` keys the variant of ``cfg`` (a ``ModelConfig`` or anything with its
    attributes) reads. Any other model key does nothing for it: changing it leaves the
    built model, its training and its size as they were. For example ``rank`` for a
    siren_id model, ``t_period`` and ``omega`` for ngp (its grid is fitted to the window,
    its MLP is ReLU), ``basis_omega`` for a factorized model with a table basis,
    ``lr_omega`` unless ``omega_learning``. The search skips mutations of such keys, which
    would only train the parent's model again (``tests/test_models.py`` checks each claim
    by building both models)."""
    inr_type = cfg.inr_type
    if inr_type == "ngp":
        return _NGP_KEYS
    if inr_type not in _ONLY:
        raise ValueError(f"unknown inr_type {inr_type!r}")
    keys = _SIREN_KEYS | _ONLY[inr_type]
    if getattr(cfg, "omega_learning", False):
        keys |= {"lr_omega"}
    if inr_type == "factorized" and getattr(cfg, "basis", "siren") == "siren":
        keys |= _FACTORIZED_SIREN_BASIS
    return keys
