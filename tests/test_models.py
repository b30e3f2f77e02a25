"""INR models: SIREN init, parameter counts, the shared encoding, every variant trains,
hash grid, learnable ω, the factorized variant, target standardisation."""

from __future__ import annotations

import io
import itertools
import math
import types
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from inr_tune.config import ModelConfig, config_from_dict
from inr_tune.errors import ConfigError, DataError
from inr_tune.models import (
    INR_TYPES,
    FactorizedField,
    FieldSpec,
    HashGridEncoding,
    SineLayer,
    Siren,
    Standardizer,
    build_model,
    count_params,
    encode_inputs,
    encode_time,
    predict_window,
)
from inr_tune.models.ngp import HASH_PRIMES

T, N, C = 20, 50, 2


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def model_cfg(inr_type: str = "siren_txy", **kw: object) -> types.SimpleNamespace:
    base = dict(
        inr_type=inr_type,
        hidden_dim=64,
        n_layers=2,
        omega=10.0,
        omega_hidden=None,
        omega_learning=False,
        lr_omega=1e-6,
        t_period=1.0,
        xy_period=1.0,
        id_embedding_dim=0,
        output_init="siren",
        ngp_levels=8,
        ngp_log2_hashmap_size=12,
        ngp_features_per_level=2,
        ngp_base_resolution=4,
        ngp_max_resolution=64,
        rank=8,
        basis="siren",
        basis_hidden_dim=32,
        basis_layers=1,
        basis_omega=30.0,
    )
    base.update(kw)
    return types.SimpleNamespace(**base)


def synthetic_field() -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth field of (t, x, y) on drifting points: positions [T, N, 2], values [T, N, C]."""
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(1, N, 2, generator=g) * 0.6 + 0.2
    t = torch.linspace(0.0, 1.0, T)[:, None]
    pos = x0 + 0.1 * t[:, :, None] * torch.tensor([1.0, -0.5])
    x, y = pos[..., 0], pos[..., 1]
    values = torch.stack([torch.sin(3 * x + 2 * t), torch.cos(2 * y - t) * x], -1) * 5 + 3
    return pos, values


# --- SIREN ----------------------------------------------------------------------------


def test_siren_init_bounds() -> None:
    torch.manual_seed(0)
    net = Siren(3, 1024, 1, 2, omega=8.0, omega_hidden=20.0, output_init="siren")
    first, hidden = net.layers[0].linear, net.layers[1].linear
    b_first = 1.0 / 3  # U(−1/in, 1/in)
    b_hidden = math.sqrt(6.0 / 1024) / 20.0  # U(±√(6/in)/ω_hidden)
    for w, b in [(first.weight, b_first), (hidden.weight, b_hidden), (net.output.weight, b_hidden)]:
        m = w.abs().max().item()
        assert m <= b and m > 0.99 * b, (m, b)
    assert net.layers[0].weight_bound == pytest.approx(b_first)
    assert net.layers[1].weight_bound == pytest.approx(b_hidden)
    # Biases keep nn.Linear's default U(±1/√in), as in the reference code.
    assert hidden.bias.abs().max().item() <= 1 / math.sqrt(1024)
    assert first.bias.abs().max().item() <= 1 / math.sqrt(3)
    # ω of the first layer and of the hidden layers.
    assert float(net.layers[0].omega) == 8.0 and float(net.layers[1].omega) == 20.0
    zeros = Siren(3, 16, 1, 2, omega=8.0, output_init="zeros")
    assert zeros.output.weight.abs().sum() == 0 and zeros.output.bias.abs().sum() == 0
    with pytest.raises(ValueError, match="output_init"):
        Siren(3, 16, 1, 2, omega=8.0, output_init="xavier")


def test_sine_layer_is_sin_of_omega_times_affine() -> None:
    layer = SineLayer(3, 5, omega=7.0, is_first=True)
    x = torch.randn(4, 3)
    expected = torch.sin(7.0 * (x @ layer.linear.weight.T + layer.linear.bias))
    torch.testing.assert_close(layer(x), expected)


@pytest.mark.parametrize(
    ("hidden", "layers", "components", "expected"),
    [(256, 4, 4, 265220), (384, 3, 1, 445441)],  # F and Jp in the anchors table
)
def test_param_counts(hidden: int, layers: int, components: int, expected: int) -> None:
    cfg = model_cfg("siren_txy", hidden_dim=hidden, n_layers=layers)
    model = build_model(cfg, FieldSpec(400, 9000, components))
    assert model.total_params == expected
    assert (
        sum(p.numel() for p in Siren(3, hidden, layers, components, 8.0).parameters()) == expected
    )


# --- encoding -------------------------------------------------------------------------


def test_encode_inputs_values_and_shapes() -> None:
    spec = FieldSpec(n_frames=40, n_points=10, n_components=1)
    cfg = model_cfg(t_period=2.0, xy_period=4.0)
    k = torch.tensor([0, 5, 39])
    pidx = torch.tensor([[0, 3], [1, 2], [9, 9]])
    pos = torch.rand(3, 2, 2)
    x = encode_inputs("siren_txy", k, pidx, pos, spec, cfg)
    assert x.shape == (3, 2, 3) and x.dtype == torch.float32
    torch.testing.assert_close(x[:, 0, 0], k.float() / 40 / 2.0)
    torch.testing.assert_close(x[..., 1:], pos / 4.0)
    torch.testing.assert_close(encode_time(k, 40, 2.0), k.float() / 40 / 2.0)
    assert encode_inputs("siren_t", k, pidx, None, spec, cfg).shape == (3, 1, 1)
    ids = encode_inputs("siren_id", k, pidx, None, spec, cfg)
    torch.testing.assert_close(ids[..., 1], pidx.float() / 10)
    # Static positions [P, 2] (fly-eye) broadcast over the batch and are scaled by 1/8.
    fly = FieldSpec(40, 2, 1, position_scale=1 / 8, static_positions=True)
    static = torch.tensor([[8.0, 0.0], [-4.0, 2.0]])
    xs = encode_inputs("siren_txy", k, None, static, fly, model_cfg())
    torch.testing.assert_close(xs[..., 1:], (static / 8).expand(3, 2, 2))
    with pytest.raises(ValueError, match="positions"):
        encode_inputs("ngp", k, pidx, None, spec, cfg)


def test_training_batch_encoding_equals_evaluation_encoding() -> None:
    """A random training batch encodes exactly like the same rows of a full evaluation."""
    pos, _ = synthetic_field()
    spec = FieldSpec(T, N, C)
    cfg = model_cfg(t_period=2.0, xy_period=0.5)
    ref = pos[0]  # read by the factorized siren basis only
    for inr_type in INR_TYPES:
        full = torch.stack(
            [
                encode_inputs(
                    inr_type,
                    torch.tensor([k]),
                    None,
                    pos[k : k + 1],
                    spec,
                    cfg,
                    reference_positions=ref,
                )[0]
                for k in range(T)
            ]
        )  # [T, P, D] one frame at a time, as an evaluation loop does
        k = torch.tensor([3, 17, 3])
        pidx = torch.randint(0, N, (3, 7))
        batch = encode_inputs(
            inr_type, k, pidx, pos[k[:, None], pidx], spec, cfg, reference_positions=ref
        )
        expected = full[k] if inr_type == "siren_t" else full[k[:, None], pidx]
        assert torch.equal(batch, expected), inr_type


# --- every variant trains -------------------------------------------------------------

VARIANTS = {
    "siren_t": dict(inr_type="siren_t"),
    # A scalar id needs a high ω to separate 50 particles in [0, 1).
    "siren_id": dict(inr_type="siren_id", omega=30.0),
    "siren_id_embedding": dict(inr_type="siren_id", id_embedding_dim=8),
    "siren_txy": dict(inr_type="siren_txy"),
    "ngp": dict(inr_type="ngp"),
    "factorized_siren": dict(inr_type="factorized", basis="siren"),
    "factorized_table": dict(inr_type="factorized", basis="table"),
}
LOSS_FACTOR = 100
"""Each variant must lower its full-window MSE (standardised units, initially ≈ 1) by at
least this factor in 200 full-batch Adam steps (observed: 1300× to 350000×)."""


def full_loss(model: torch.nn.Module, pos: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Training-style loss: one batch holding every frame and every point."""
    k = torch.arange(T)
    return ((model(k, torch.arange(N).expand(T, N), pos) - target) ** 2).mean()


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_variant_trains(variant: str) -> None:
    pos, values = synthetic_field()
    std = Standardizer.fit(values)
    target = std.normalize(values)
    torch.manual_seed(0)
    model = build_model(model_cfg(**VARIANTS[variant]), FieldSpec(T, N, C), pos[0])
    # Uniform interface: any subset of points, [B, P, C] out.
    k, pidx = torch.tensor([1, 4]), torch.tensor([[0, 5, 7], [2, 2, 49]])
    assert model(k, pidx, pos[k[:, None], pidx]).shape == (2, 3, C)
    lr = 1e-2 if variant == "ngp" else 1e-3  # hash tables want a large lr (paper: 1e-2)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    with torch.no_grad():
        initial = full_loss(model, pos, target).item()
    for _ in range(200):
        loss = full_loss(model, pos, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        final = full_loss(model, pos, target).item()
    assert initial > 0.3
    assert final < initial / LOSS_FACTOR, (variant, initial, final)


def test_siren_t_gathers_the_requested_points() -> None:
    model = build_model(model_cfg("siren_t"), FieldSpec(T, N, C))
    k = torch.tensor([0, 9])
    pidx = torch.tensor([[4, 0, 4], [49, 1, 2]])
    full = model(k)  # [B, N, C]
    torch.testing.assert_close(model(k, pidx), full[torch.arange(2)[:, None], pidx])


def test_t_period_training_and_evaluation_agree() -> None:
    """The older tool divided τ by T_period in training only. Train with T_period = 2 on
    random minibatches, then evaluate frame by frame through ``predict_window``: the loss
    must equal the training-path loss on the same frames, and an evaluation that drops
    the period (the old bug) must be far off."""
    pos, values = synthetic_field()
    std = Standardizer.fit(values)
    target = std.normalize(values)
    torch.manual_seed(0)
    spec = FieldSpec(T, N, C)
    model = build_model(model_cfg("siren_txy", t_period=2.0), spec)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(1)
    for _ in range(150):
        k = torch.randint(0, T, (4,), generator=g)
        pidx = torch.randint(0, N, (4, 25), generator=g)
        loss = ((model(k, pidx, pos[k[:, None], pidx]) - target[k[:, None], pidx]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        train_loss = full_loss(model, pos, target).item()
    eval_pred = predict_window(model, pos, chunk_frames=1)  # [T, N, C], one frame a call
    eval_loss = ((eval_pred - target) ** 2).mean().item()
    assert eval_loss == pytest.approx(train_loss, rel=1e-5)
    assert train_loss < 0.05
    # The old evaluation: τ = k / T without the period.
    with torch.no_grad():
        x = encode_inputs("siren_txy", torch.arange(T), None, pos, spec, model_cfg(t_period=1.0))
        buggy_loss = ((model.decode(x, torch.arange(N).expand(T, N)) - target) ** 2).mean()
    assert buggy_loss.item() > 10 * train_loss
    # Raw units through the Standardizer: the same number for both paths.
    raw = std.denormalize(eval_pred)
    torch.testing.assert_close(std.normalize(raw), eval_pred, atol=1e-5, rtol=1e-5)


def test_predict_window_static_positions() -> None:
    spec = FieldSpec(6, 4, 1, position_scale=1 / 8, static_positions=True, position_range=(-1, 1))
    static = torch.tensor([[8.0, 0.0], [-8.0, 1.0], [0.0, 0.0], [3.0, -7.0]])
    for inr_type in INR_TYPES:
        model = build_model(model_cfg(inr_type), spec, reference_positions=static)
        out = predict_window(model, static, chunk_frames=4)
        assert out.shape == (6, 4, 1)
        k = torch.tensor([5])
        torch.testing.assert_close(out[5:], model(k, None, static))


# --- registry and errors --------------------------------------------------------------


def test_unknown_inr_type_lists_valid_names() -> None:
    with pytest.raises(ConfigError) as err:
        build_model(model_cfg("siren_xyz"), FieldSpec(T, N, C))
    for name in ("siren_t", "siren_id", "siren_txy", "ngp"):
        assert name in str(err.value)
    assert "siren_xyz" in str(err.value)
    with pytest.raises(ConfigError, match="output_init"):
        build_model(model_cfg(output_init="xavier"), FieldSpec(T, N, C))


# --- hash grid ------------------------------------------------------------------------


def test_hash_encoding_shape_determinism_and_gradients() -> None:
    torch.manual_seed(0)
    enc = HashGridEncoding(
        3,
        n_levels=6,
        features_per_level=2,
        log2_hashmap_size=10,
        base_resolution=4,
        max_resolution=128,
    )
    assert enc.level_resolutions[0] == 4 and enc.level_resolutions[-1] == 128
    assert enc.level_sizes[0] == 5**3 and enc.level_sizes[-1] == 2**10  # dense, then hashed
    assert enc.table.abs().max().item() <= 1e-4  # paper: U(−1e-4, 1e-4)
    x = torch.rand(5, 7, 3)
    out = enc(x)
    assert out.shape == (5, 7, 12)
    assert torch.equal(out, enc(x))
    torch.manual_seed(0)
    again = HashGridEncoding(
        3,
        n_levels=6,
        features_per_level=2,
        log2_hashmap_size=10,
        base_resolution=4,
        max_resolution=128,
    )
    assert torch.equal(again(x), out)
    out.square().sum().backward()
    grad = enc.table.grad
    assert grad is not None and grad.abs().sum() > 0
    touched = (grad.abs().sum(1) > 0).sum().item()
    assert 0 < touched <= 5 * 7 * 6 * 8  # only the looked-up corners get a gradient


def test_hash_encoding_vertices_follow_dense_index_and_paper_hash() -> None:
    enc = HashGridEncoding(
        3,
        n_levels=2,
        features_per_level=1,
        log2_hashmap_size=8,
        base_resolution=4,
        max_resolution=64,
    )
    with torch.no_grad():
        enc.table.copy_(torch.randn_like(enc.table))
    # A grid vertex returns exactly its own table entry (interpolation weights 1, 0, …).
    v = torch.tensor([1, 2, 3])
    out = enc((v.float() / 64)[None])[0]  # level 0 (res 4): not a vertex; level 1 (res 64)
    table_size = 2**8
    h = 0
    for c, p in zip(v.tolist(), HASH_PRIMES, strict=False):
        h ^= c * p
    level1 = enc.level_sizes[0]
    torch.testing.assert_close(out[1], enc.table[level1 + h % table_size, 0])
    w = torch.tensor([2, 1, 3])  # level 0 is dense: index x + 5 y + 25 z
    out0 = enc((w.float() / 4)[None])[0]
    torch.testing.assert_close(out0[0], enc.table[2 + 5 * 1 + 25 * 3, 0])
    # Continuous across cells and defined on the boundary (x = 1 and outside are clamped).
    a = torch.tensor([[0.5 - 1e-6, 0.3, 0.3]])
    b = torch.tensor([[0.5 + 1e-6, 0.3, 0.3]])
    assert (enc(a) - enc(b)).abs().max() < 1e-3
    torch.testing.assert_close(enc(torch.ones(1, 3)), enc(torch.full((1, 3), 2.0)))


def test_hash_encoding_matches_a_naive_reference() -> None:
    """Loop over levels and corners as the paper writes it; compare at random points."""
    torch.manual_seed(0)
    enc = HashGridEncoding(
        3,
        n_levels=5,
        features_per_level=2,
        log2_hashmap_size=9,
        base_resolution=3,
        max_resolution=100,
    )
    x = torch.rand(64, 3)
    expected = []
    offset = 0
    for res, size in zip(enc.level_resolutions, enc.level_sizes, strict=True):
        scaled = x * res
        cell = scaled.floor().long().clamp(max=res - 1)
        frac = scaled - cell
        level = torch.zeros(64, 2)
        for corner in range(8):
            bits = torch.tensor([(corner >> i) & 1 for i in range(3)])
            c = cell + bits
            if (res + 1) ** 3 <= 2**9:
                idx = c[:, 0] + (res + 1) * c[:, 1] + (res + 1) ** 2 * c[:, 2]
            else:
                idx = (c[:, 0] * 1) ^ (c[:, 1] * 2654435761) ^ (c[:, 2] * 805459861)
                idx = idx % 2**9
            w = torch.where(bits.bool(), frac, 1 - frac).prod(-1)
            level += w[:, None] * enc.table[offset + idx]
        expected.append(level)
        offset += size
    torch.testing.assert_close(enc(x), torch.cat(expected, -1))


def test_ngp_periods_do_not_change_the_model() -> None:
    pos, _ = synthetic_field()
    outs = []
    for t_period, xy_period in [(1.0, 1.0), (2.0, 0.5)]:
        torch.manual_seed(0)
        model = build_model(
            model_cfg("ngp", t_period=t_period, xy_period=xy_period), FieldSpec(T, N, C)
        )
        outs.append(predict_window(model, pos))
    torch.testing.assert_close(outs[0], outs[1])


# --- learnable ω ----------------------------------------------------------------------


def test_learnable_omega_gets_a_gradient() -> None:
    pos, values = synthetic_field()
    model = build_model(model_cfg("siren_txy", omega_learning=True, n_layers=2), FieldSpec(T, N, C))
    omegas = model.omega_parameters()
    assert len(omegas) == 3  # first layer + 2 hidden
    base = model.base_parameters()
    assert {id(p) for p in omegas}.isdisjoint(id(p) for p in base)
    assert len(omegas) + len(base) == len(list(model.parameters()))
    assert model.total_params == 8706 + 3
    loss = full_loss(model, pos, values)
    loss.backward()
    for w in omegas:
        assert w.grad is not None and w.grad.abs().item() > 0
    fixed = build_model(model_cfg("siren_txy"), FieldSpec(T, N, C))
    assert fixed.omega_parameters() == [] and fixed.total_params == 8706
    assert "net.layers.0.omega" in fixed.state_dict()
    # ω lives under the same key either way: a learned-ω checkpoint loads into a fixed-ω model.
    fixed.load_state_dict(model.state_dict())
    assert fixed.net.layers[0].omega.item() == omegas[0].detach().item()
    assert build_model(model_cfg("ngp"), FieldSpec(T, N, C)).omega_parameters() == []


# --- parameter count ------------------------------------------------------------------

SHAPES = [(7, 13, 1), (20, 50, 2), (400, 1800, 4)]


def _count_grid() -> Iterator[dict[str, object]]:
    for h, layers, learn in itertools.product((1, 16, 33), (0, 3), (False, True)):
        common = dict(hidden_dim=h, n_layers=layers, omega_learning=learn)
        yield dict(inr_type="siren_t", **common)
        yield dict(inr_type="siren_txy", **common)
        for emb in (0, 3, 16):
            yield dict(inr_type="siren_id", id_embedding_dim=emb, **common)
        for rank, basis_h, basis_l in itertools.product((1, 5), (1, 24), (0, 2)):
            yield dict(
                inr_type="factorized",
                rank=rank,
                basis="siren",
                basis_hidden_dim=basis_h,
                basis_layers=basis_l,
                **common,
            )
        for rank in (1, 5):
            yield dict(inr_type="factorized", rank=rank, basis="table", **common)
    for levels, log2, (lo, hi), feats, h, layers in itertools.product(
        (1, 3, 8), (8, 12), ((2, 2), (4, 64), (16, 1024), (5, 37)), (1, 2, 4), (8,), (0, 2)
    ):
        yield dict(
            inr_type="ngp",
            ngp_levels=levels,
            ngp_log2_hashmap_size=log2,
            ngp_base_resolution=lo,
            ngp_max_resolution=hi,
            ngp_features_per_level=feats,
            hidden_dim=h,
            n_layers=layers,
        )


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_count_params_equals_the_built_model(shape: tuple[int, int, int]) -> None:
    spec = FieldSpec(*shape)
    n = 0
    for kw in _count_grid():
        cfg = model_cfg(**kw)
        model = build_model(cfg, spec)
        assert count_params(cfg, spec) == model.total_params, kw
        n += 1
    assert n > 200
    # The config dataclass itself (every default, incl. the 11.7 M-parameter ngp).
    for inr_type in INR_TYPES:
        for basis in ("siren", "table"):
            cfg = ModelConfig(inr_type=inr_type, basis=basis, hidden_dim=24, n_layers=1)
            assert count_params(cfg, spec) == build_model(cfg, spec).total_params, cfg


def test_count_params_is_pure_arithmetic(monkeypatch: pytest.MonkeyPatch) -> None:
    """No module is built and nothing allocated: counting a 2^24-entry hash grid is free."""

    def built(*args: object, **kwargs: object) -> None:
        raise AssertionError("count_params built a module")

    monkeypatch.setattr(torch.nn.Module, "__init__", built)
    monkeypatch.setattr(torch, "empty", built)
    spec = FieldSpec(400, 1800, 4)
    huge = ModelConfig(inr_type="ngp", ngp_levels=32, ngp_log2_hashmap_size=24)
    assert count_params(huge, spec) > 32 * 2**23
    assert count_params(ModelConfig(inr_type="siren_t", hidden_dim=16, n_layers=2), spec) == (
        16 + 16 + 2 * (16 * 16 + 16) + 17 * 1800 * 4
    )
    table = ModelConfig(inr_type="factorized", basis="table", rank=3, hidden_dim=8, n_layers=0)
    assert count_params(table, spec) == (8 + 8) + (8 * 3 + 3) + 4 + 1800 * 4 * 3
    with pytest.raises(ConfigError, match="siren_xyz"):
        count_params(model_cfg("siren_xyz"), spec)


# --- factorized ------------------------------------------------------------------------


def _factorized(basis: str, **kw: object) -> FactorizedField:
    pos, _ = synthetic_field()
    torch.manual_seed(0)
    model = build_model(
        model_cfg("factorized", basis=basis, rank=4, **kw), FieldSpec(T, N, C), pos[0]
    )
    assert isinstance(model, FactorizedField)
    return model


@pytest.mark.parametrize("basis", ["siren", "table"])
def test_factorized_paths_agree_and_run_each_net_once(basis: str) -> None:
    """Shared points, B·P ≥ N and B·P < N give the rows of the full prediction; the time
    net sees B inputs and the basis net one pass over P shared, all N or B·P points."""
    model = _factorized(basis)
    seen: dict[str, list[tuple[int, ...]]] = {"time": [], "basis": []}
    model.time_net.register_forward_hook(lambda m, i, o: seen["time"].append(tuple(i[0].shape)))
    if model.basis_net is not None:
        model.basis_net.register_forward_hook(
            lambda m, i, o: seen["basis"].append(tuple(i[0].shape))
        )
    k = torch.tensor([3, 17, 0])
    with torch.no_grad():
        full = model(k)  # [B, N, C], points shared (expanded arange)
        assert full.shape == (3, N, C) and torch.isfinite(full).all()
        g = torch.Generator().manual_seed(0)
        for p, expect in [(7, (3, 7, 2)), (20, (N, 2))]:
            pidx = torch.randint(0, N, (3, p), generator=g)
            torch.testing.assert_close(model(k, pidx), full[torch.arange(3)[:, None], pidx])
            if basis == "siren":
                assert seen["basis"][-1] == expect
        shared = torch.tensor([5, 1, 5]).expand(3, 3)
        torch.testing.assert_close(model(k, shared), full[:, [5, 1, 5]])
    assert set(seen["time"]) == {(3, 1)}
    if basis == "siren":
        assert seen["basis"][0] == (N, 2) and seen["basis"][-1] == (3, 2)
        assert len(seen["basis"]) == 4  # one basis pass per forward


def test_factorized_encoding_reads_reference_positions() -> None:
    pos, _ = synthetic_field()
    spec = FieldSpec(T, N, C, position_scale=0.5)
    cfg = model_cfg("factorized", t_period=2.0, xy_period=4.0)
    k, pidx = torch.tensor([0, 9]), torch.tensor([[3, 4], [49, 0]])
    x = encode_inputs("factorized", k, pidx, pos[k[:, None], pidx], spec, cfg, pos[0])
    torch.testing.assert_close(x[..., 0], (k.float() / T / 2.0)[:, None].expand(2, 2))
    torch.testing.assert_close(x[..., 1:], pos[0][pidx] * 0.5 / 4.0)  # frame 0, not frame k
    ids = encode_inputs("factorized", k, pidx, None, spec, model_cfg("factorized", basis="table"))
    torch.testing.assert_close(ids[..., 1], pidx.float() / N)
    with pytest.raises(ValueError, match="reference_positions"):
        encode_inputs("factorized", k, pidx, None, spec, cfg)


@pytest.mark.parametrize("basis", ["siren", "table"])
def test_factorized_checkpoint_decodes_on_its_own(basis: str) -> None:
    """Reference positions are a buffer: not trainable, not counted, in the state_dict."""
    model = _factorized(basis)
    state = model.state_dict()
    assert ("reference_positions" in state) == (basis == "siren")
    assert all("reference" not in name for name, _ in model.named_parameters())
    bare = build_model(model_cfg("factorized", basis=basis, rank=4), FieldSpec(T, N, C))
    k = torch.arange(T)
    if basis == "siren":
        assert torch.isnan(bare(k)).all()  # no positions yet: loudly unusable
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    bare.load_state_dict(torch.load(buf))
    torch.testing.assert_close(predict_window(bare), predict_window(model))


def test_factorized_keys_change_the_model() -> None:
    spec = FieldSpec(T, N, C)
    base = model_cfg("factorized")
    n0 = count_params(base, spec)
    for key, value in [
        ("rank", 3),
        ("basis", "table"),
        ("basis_hidden_dim", 16),
        ("basis_layers", 2),
        ("hidden_dim", 32),
        ("n_layers", 1),
    ]:
        assert count_params(model_cfg("factorized", **{key: value}), spec) != n0, key
    a, b = _factorized("siren"), _factorized("siren", basis_omega=60.0)
    assert float(b.basis_net.layers[0].omega) == 60.0
    assert float(b.basis_net.layers[1].omega) == 10.0  # hidden: omega_hidden, null = omega
    assert float(b.time_net.layers[0].omega) == 10.0  # the time net keeps omega
    assert not torch.allclose(a(torch.arange(3)), b(torch.arange(3)))
    c = _factorized("siren", omega_hidden=20.0)
    assert float(c.basis_net.layers[1].omega) == 20.0 and float(c.basis_net.layers[0].omega) == 30.0
    assert float(c.time_net.layers[1].omega) == 20.0
    for basis in ("siren", "table"):  # output_init sets the basis: zeros starts at the mean
        zero = _factorized(basis, output_init="zeros")
        assert zero(torch.arange(3)).abs().max() == 0
        small, default = _factorized(basis), _factorized(basis, output_init="default")
        assert 0 < small(torch.arange(3)).abs().max() < default(torch.arange(3)).abs().max()
    learn = _factorized("siren", omega_learning=True)
    assert len(learn.omega_parameters()) == (1 + 2) + (1 + 1)  # time net 2 hidden, basis 1


def test_bad_basis_is_refused_with_one_line() -> None:
    with pytest.raises(ConfigError) as err:
        config_from_dict({"model": {"inr_type": "factorized", "basis": "pca"}})
    msg = str(err.value)
    assert "\n" not in msg and "model.basis='pca'" in msg and "siren, table" in msg
    with pytest.raises(ConfigError, match=r"model\.rank=0"):
        config_from_dict({"model": {"rank": 0}})
    with pytest.raises(ConfigError, match=r"model\.basis"):
        build_model(model_cfg("factorized", basis="pca"), FieldSpec(T, N, C))


# --- standardisation ------------------------------------------------------------------


def test_standardizer_round_trip_and_state_dict() -> None:
    _, values = synthetic_field()
    values = torch.cat([values, torch.full((T, N, 1), 7.0)], -1)  # a constant component
    std = Standardizer.fit(values, chunk_frames=3)
    y = std.normalize(values)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y[..., :2].mean((0, 1)), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        y[..., :2].std((0, 1), unbiased=False), torch.ones(2), atol=1e-4, rtol=0
    )
    assert std.std[2].item() == pytest.approx(7e-6 + 1e-12)  # the floor
    torch.testing.assert_close(std.denormalize(y), values, atol=1e-5, rtol=1e-6)
    # numpy input gives the same statistics.
    from_np = Standardizer.fit(values.numpy())
    torch.testing.assert_close(from_np.mean, std.mean)
    # Buffers travel through state_dict / torch.save.
    buf = io.BytesIO()
    torch.save(std.state_dict(), buf)
    buf.seek(0)
    loaded = Standardizer.identity(3)
    loaded.load_state_dict(torch.load(buf))
    torch.testing.assert_close(loaded.mean, std.mean)
    torch.testing.assert_close(loaded.std, std.std)
    assert set(std.state_dict()) == {"mean", "std"}
    with pytest.raises(DataError, match="NaN"):
        Standardizer.fit(np.full((2, 3, 1), np.nan, np.float32))
    with pytest.raises(DataError):
        Standardizer.fit(np.zeros((0, 3, 1), np.float32))
