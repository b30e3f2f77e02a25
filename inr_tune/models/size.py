"""Trainable parameters of a config, from arithmetic alone (no module built).

``count_params(model_cfg, spec)`` equals ``build_model(model_cfg, spec).total_params``
exactly for every variant (tested over a grid of configs), so the search can refuse a
config over its size budget before it trains. The growth of each variant's count with
T, N and C is tabulated in ``inr_tune.models.variants``.
"""

from __future__ import annotations

import math
from typing import Any

from inr_tune.errors import ConfigError
from inr_tune.models.variants import BASIS_TYPES, FieldSpec, _check_inr_type, _get

__all__ = ["count_params"]


def _siren_params(
    in_features: int, hidden: int, n_layers: int, out_features: int, omega_learning: bool
) -> int:
    """Trainable scalars of ``Siren`` (one learned ω per sine layer when omega_learning)."""
    n = in_features * hidden + hidden  # first sine layer
    n += n_layers * (hidden * hidden + hidden)  # hidden sine layers
    n += hidden * out_features + out_features  # linear output
    return n + ((1 + n_layers) if omega_learning else 0)


def _hash_table_rows(
    n_input_dims: int, n_levels: int, log2_hashmap_size: int, base: int, finest: int
) -> int:
    """Σ_l min(2^log2, (N_l + 1)^d): rows of ``HashGridEncoding``'s table (same arithmetic)."""
    # the growth factor b and N_l = ⌊N_min · b^l + 1e-6⌋ exactly as HashGridEncoding
    log_growth = (math.log(finest) - math.log(base)) / (n_levels - 1) if n_levels > 1 else 0.0
    growth = math.exp(log_growth) if n_levels > 1 else 1.0
    table_size = 2**log2_hashmap_size
    rows = 0
    for level in range(n_levels):
        res = math.floor(base * growth**level + 1e-6)
        rows += min((res + 1) ** n_input_dims, table_size)
    return rows


def count_params(cfg: Any, spec: FieldSpec) -> int:
    """Trainable parameters of ``build_model(cfg, spec)``, from arithmetic alone.

    A pure function of the model config and the window shape (T, N, C): nothing is built
    or allocated, so a search can refuse a config over its size budget before training
    it. Equals ``build_model(cfg, spec).total_params`` exactly (learned ω and embeddings
    included; reference positions, standardisation and other buffers are not trainable).
    """
    inr_type = cfg.inr_type
    _check_inr_type(inr_type)
    h, n_layers = int(cfg.hidden_dim), int(cfg.n_layers)
    learn = bool(_get(cfg, "omega_learning"))
    n, c = spec.n_points, spec.n_components
    if inr_type == "siren_t":
        return _siren_params(1, h, n_layers, n * c, learn)
    if inr_type == "siren_id":
        emb = int(_get(cfg, "id_embedding_dim"))
        if emb > 0:
            return _siren_params(1 + emb, h, n_layers, c, learn) + n * emb
        return _siren_params(2, h, n_layers, c, learn)
    if inr_type == "siren_txy":
        return _siren_params(3, h, n_layers, c, learn)
    if inr_type == "ngp":
        levels = int(_get(cfg, "ngp_levels"))
        feats = int(_get(cfg, "ngp_features_per_level"))
        rows = _hash_table_rows(
            3,
            levels,
            int(_get(cfg, "ngp_log2_hashmap_size")),
            int(_get(cfg, "ngp_base_resolution")),
            int(_get(cfg, "ngp_max_resolution")),
        )
        mlp = levels * feats * h + h + n_layers * (h * h + h) + h * c + c
        return rows * feats + mlp
    # factorized
    basis = _get(cfg, "basis")
    if basis not in BASIS_TYPES:
        raise ConfigError(f"model.basis={basis!r} is unknown; valid: {', '.join(BASIS_TYPES)}")
    rank = int(_get(cfg, "rank"))
    total = _siren_params(1, h, n_layers, rank, learn) + c
    if basis == "table":
        return total + n * rank * c
    return total + _siren_params(
        2, int(_get(cfg, "basis_hidden_dim")), int(_get(cfg, "basis_layers")), rank * c, learn
    )
