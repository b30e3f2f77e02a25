"""Typed configuration: one dataclass per section and ``--set`` overrides (YAML files:
``config_files.py``).

Every value is checked when a config is built: an unknown key, a wrong type or an
out-of-range value raises ``ConfigError`` with one line naming the section, the key, what
was given and what is allowed. The older tools' YAML dialect (sections ``graph_model`` /
``training`` / ``claude``) is recognised and mapped onto these sections.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any

import yaml

from inr_tune.config_check import check, coerce
from inr_tune.errors import ConfigError

__all__ = [
    "SECTIONS",
    "BlockConfig",
    "Config",
    "DataConfig",
    "ModelConfig",
    "SearchConfig",
    "TrainingConfig",
    "apply_overrides",
    "config_from_dict",
    "parse_set",
]


def _f(default: Any, doc: str, **check: Any) -> Any:
    """A dataclass field with a docstring and checks (choices, min, max, gt)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"doc": doc, **check})
    return field(default=default, metadata={"doc": doc, **check})


@dataclass
class DataConfig:
    """Which dataset, field and window a training reads."""

    path: str | None = _f(None, "zarr dataset; null = the built-in default MPM dataset")
    field: str = _f("F", "field to fit (MPM: F, Jp, C, S; fly-eye: stimulus)")
    n_frames: int = _f(400, "window length in frames", min=1)
    offset: str | int = _f("center", "window start: center, start or a frame index")
    holdout: int = _f(
        10,
        "hold out every Nth frame of the window (frames k with k % N == N // 2): never "
        "trained on, scored as holdout_r2; 0 = none",
        min=0,
    )

    def __post_init__(self) -> None:
        if isinstance(self.offset, str) and self.offset not in ("center", "start"):
            raise ConfigError(
                f"data.offset={self.offset!r} is not allowed; use center, start or a frame index"
            )
        if isinstance(self.offset, int) and self.offset < 0:
            raise ConfigError(f"data.offset={self.offset} must be ≥ 0")
        if self.holdout == 1:
            raise ConfigError("data.holdout=1 would hold out every frame; use 0 (none) or ≥ 2")


@dataclass
class ModelConfig:
    """The INR variant and its architecture."""

    inr_type: str = _f(
        "siren_txy",
        "INR variant",
        choices=("siren_t", "siren_id", "siren_txy", "ngp", "factorized"),
    )
    hidden_dim: int = _f(256, "hidden width", min=1, max=8192)
    n_layers: int = _f(4, "hidden h→h layers between the first layer and the output", min=0, max=32)
    omega: float = _f(8.0, "SIREN ω of the first layer", gt=0.0, max=1e5)
    # The default (null: hidden layers follow the first layer's ω) is this tool's, kept so
    # results stay comparable; Sitzmann et al. 2020 keep ω=30 in every hidden layer
    # whatever the first layer's ω. With their init W ~ U(±√(6/in)/ω_hidden), ω_hidden
    # leaves a hidden layer's ω·W at init unchanged; it scales how far an optimiser step on
    # W moves ω·W (Adam: by ≈ ω_hidden·lr) and sets the output init bound √(6/h)/ω_hidden.
    # The search spaces offer null and 30 (configs/spaces/*.yaml).
    omega_hidden: float | None = _f(
        None,
        "SIREN ω of the hidden layers; null = omega (this tool's default; the SIREN paper "
        "uses 30 in the hidden layers whatever the first layer's ω)",
        gt=0.0,
    )
    omega_learning: bool = _f(False, "learn ω with its own learning rate")
    lr_omega: float = _f(1.0e-6, "learning rate of ω when omega_learning", gt=0.0, max=1.0)
    t_period: float = _f(1.0, "time encoding τ = k / n_frames / t_period", gt=0.0)
    xy_period: float = _f(1.0, "space encoding (x, y) · scale / xy_period", gt=0.0)
    id_embedding_dim: int = _f(0, "siren_id: 0 = scalar id i/N, > 0 = learned embedding", min=0)
    output_init: str = _f(
        "siren",
        "output layer init (factorized: of the basis, the weights that turn a(τ) into values)",
        choices=("siren", "zeros", "default"),
    )
    ngp_levels: int = _f(16, "hash grid levels", min=1, max=32)
    ngp_log2_hashmap_size: int = _f(19, "log2 of the hash table size per level", min=8, max=24)
    ngp_features_per_level: int = _f(2, "features per hash grid level", min=1, max=8)
    ngp_base_resolution: int = _f(16, "coarsest grid resolution", min=2)
    ngp_max_resolution: int = _f(1024, "finest grid resolution", min=2)
    rank: int = _f(
        8,
        "factorized: terms k of f = Σ_k a_k(τ)·b_k(i); the time net (hidden_dim × n_layers, "
        "omega) outputs a(τ) ∈ R^rank",
        min=1,
        max=4096,
    )
    basis: str = _f(
        "siren",
        "factorized: basis b(i) ∈ R^{rank×C} from a SIREN of the point's reference position "
        "(size independent of N) or a learned table [N, rank·C] (N·C·rank parameters)",
        choices=("siren", "table"),
    )
    basis_hidden_dim: int = _f(128, "factorized, basis siren: hidden width", min=1, max=8192)
    basis_layers: int = _f(
        2, "factorized, basis siren: hidden h→h layers of the basis net", min=0, max=32
    )
    basis_omega: float = _f(
        300.0,
        "factorized, basis siren: ω of the basis net's first layer (its spatial frequencies; "
        "its hidden layers use omega_hidden, null = omega, like the time net)",
        gt=0.0,
        max=1e5,
    )


@dataclass
class TrainingConfig:
    """Optimisation of one trial."""

    lr: float = _f(1.2e-4, "learning rate", gt=0.0, max=1.0)
    total_steps: int = _f(320000, "optimizer steps", min=1)
    batch_size: int = _f(1, "frames per step", min=1, max=4096)
    points_per_step: int | None = _f(None, "points sampled per frame; null = all", min=1)
    optimizer: str = _f("adam", "optimizer", choices=("adam", "adamw", "sgd", "rmsprop"))
    weight_decay: float = _f(0.0, "weight decay (adamw, sgd, rmsprop)", min=0.0)
    schedule: str = _f("cosine", "lr schedule", choices=("constant", "cosine", "warmup_cosine"))
    warmup_steps: int = _f(0, "warmup_cosine: linear warmup steps; 0 = 2 % of total", min=0)
    min_lr_ratio: float = _f(0.01, "cosine floor as a fraction of lr", min=0.0, max=1.0)
    grad_clip: float | None = _f(1.0, "max gradient norm; null or 0 = off", min=0.0)
    loss: str = _f("mse", "loss", choices=("mse", "huber", "l1"))
    huber_delta: float = _f(1.0, "huber delta (standardised units)", gt=0.0)
    seed: int = _f(0, "random seed", min=0)
    eval_every: int = _f(1000, "steps between metric evaluations", min=1)
    steps_per_call: int = _f(16, "optimizer steps per Lightning training_step", min=1, max=10000)
    log_every: int = _f(50, "steps between logged losses", min=1)
    max_minutes: float | None = _f(None, "wall-clock budget of the optimisation loop", gt=0.0)
    device: str = _f("auto", "device", choices=("auto", "cpu", "cuda"))
    # 16-mixed is not offered: float16 autocast needs loss scaling (a GradScaler) the
    # hand-written optimisation loop does not do; bf16 has float32's range and needs none.
    precision: str = _f("32", "float precision", choices=("32", "bf16-mixed"))


@dataclass
class SearchConfig:
    """The UCB tree search."""

    # 0.5, not the older tools' 1.414: with Q scaled to the block's range (Tree.ucb_scores)
    # 1.414 spent every other slot of a 2-wide batch on the block's worst fresh leaf; on
    # synthetic landscapes (benchmarks/searcher_synthetic.py) 0.5 beat it on both spaces
    ucb_c: float = _f(0.5, "UCB exploration constant", min=0.0, max=10.0)
    reward: str = _f("nines", "node reward", choices=("r2", "nines"))
    objective: str = _f(
        "budget",
        "budget: best held-out R² among configs with compression_ratio ≥ min_ratio (others are "
        "refused before they run); pareto: reward = a trial's share of the block's (ratio, "
        "held-out R²) Pareto front, budget still applies; r2: R² alone, size ignored",
        choices=("budget", "pareto", "r2"),
    )
    min_ratio: float | None = _f(
        None,
        "size budget: least compression_ratio a config may have; null = the experiment's",
        gt=0.0,
    )
    searcher: str = _f(
        "ucb",
        "how configs are chosen: ucb (the UCB tree, rule or Claude proposer), random (seeded "
        "configs drawn from the space YAML), tpe (Optuna's TPE through Ray Tune's OptunaSearch; "
        'pip install -e ".[tpe]"), greedy (one move from the best node so far); the same '
        "trainable, budget, journal and reports for all",
        choices=("ucb", "random", "tpe", "greedy"),
    )
    proposer: str = _f("auto", "proposer", choices=("auto", "rule", "llm"))
    llm_model: str = _f("claude-sonnet-4-5", "Anthropic model name")
    llm_timeout_s: float = _f(
        120.0,
        "wall-clock limit of one LLM call, the SDK's retries and their waits included (not "
        "of each socket read); past it the rule proposer fills the batch",
        gt=0.0,
    )
    llm_max_retries: int = _f(2, "SDK retries on 429/529/timeouts", min=0, max=10)
    space: str | None = _f(None, "search space YAML; null = the experiment's")
    seed: int = _f(0, "seed of the rule proposer and of the random/tpe/greedy searchers", min=0)
    seed_reruns: int = _f(
        2,
        "new seeds of the block's best config, run as the block's last batch (within "
        "block.iterations; none when the block is a single batch): they measure the seed "
        "noise the verdicts test against and give the best config as mean ± SD",
        min=0,
        max=16,
    )


@dataclass
class BlockConfig:
    """How the blocks of a search run (``python -m inr_tune.block``; its flags are sugar for
    ``--set block.KEY=…``)."""

    experiment: str = _f(
        "mpm", "experiment: mpm, flyvis, a name under experiments/ or a path to one"
    )
    field: str | None = _f(None, "field of the first block; null = the schedule's first")
    frames: int | None = _f(None, "frames of the first block; null = the schedule's first", min=1)
    iterations: int = _f(8, "trials per block", min=1, max=10000)
    blocks: int = _f(1, "blocks to run, following the schedule", min=1, max=1000)
    parallel: int = _f(4, "concurrent trials", min=1, max=256)
    early_stop: str = _f(
        "none",
        "asha: stop hopeless trials early on their reported R² (Ray's ASHA scheduler)",
        choices=("none", "asha"),
    )
    address: str | None = _f(
        None, "join an existing Ray cluster (auto or HOST:PORT); null = start a local one"
    )
    storage: str | None = _f(
        None,
        "where trial results go: a directory every node sees or an fsspec URL "
        "(s3://…, gs://…); null = inside the run directory",
    )


@dataclass
class Config:
    """The whole configuration of a training or a search."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    block: BlockConfig = field(default_factory=BlockConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)

    def replace(self, **sections: dict[str, Any]) -> Config:
        """A new config with some keys changed: ``cfg.replace(training={"lr": 1e-4})``."""
        raw = self.to_dict()
        for section, values in sections.items():
            raw.setdefault(section, {}).update(values)
        return config_from_dict(raw)

    def get(self, dotted: str) -> Any:
        section, key = _split_key(dotted)
        return getattr(getattr(self, section), key)


SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "model": ModelConfig,
    "training": TrainingConfig,
    "search": SearchConfig,
    "block": BlockConfig,
}

# --------------------------------------------------------------------------- validation


def _build_section(section: str, values: Any) -> Any:
    cls = SECTIONS[section]
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(
            f"section {section!r} must be a mapping of keys, got {type(values).__name__}"
        )
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(
                f"unknown key {key!r} in section {section!r}; allowed: {', '.join(fields)}"
            )
        value = coerce(section, key, value, hints[key])
        check(section, key, value, fields[key].metadata)
        kwargs[key] = value
    return cls(**kwargs)


def config_from_dict(raw: dict[str, Any] | None) -> Config:
    """Build and validate a Config from a mapping of sections (missing keys: defaults)."""
    raw = raw or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"a config must be a mapping of sections, got {type(raw).__name__}")
    unknown = [s for s in raw if s not in SECTIONS]
    if unknown:
        raise ConfigError(
            f"unknown section {unknown[0]!r}; allowed sections: {', '.join(SECTIONS)}"
        )
    cfg = Config(**{s: _build_section(s, raw.get(s)) for s in SECTIONS})
    m = cfg.model
    if m.ngp_max_resolution < m.ngp_base_resolution:
        raise ConfigError(
            f"model.ngp_max_resolution={m.ngp_max_resolution} must be ≥ "
            f"model.ngp_base_resolution={m.ngp_base_resolution}"
        )
    return cfg


# --------------------------------------------------------------------------- files, --set


def _split_key(dotted: str) -> tuple[str, str]:
    parts = dotted.split(".")
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"key {dotted!r} must look like section.key, e.g. training.lr")
    section, key = parts
    if section not in SECTIONS:
        raise ConfigError(
            f"unknown section {section!r} in {dotted!r}; allowed: {', '.join(SECTIONS)}"
        )
    names = [f.name for f in dataclasses.fields(SECTIONS[section])]
    if key not in names:
        raise ConfigError(
            f"unknown key {key!r} in section {section!r}; allowed: {', '.join(names)}"
        )
    return section, key


def parse_set(item: str) -> tuple[str, str, Any]:
    """Parse one ``section.key=value`` (value read as YAML: 1e-4, true, null, [1, 2])."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r} must look like section.key=value, e.g. training.lr=1e-4")
    dotted, text = item.split("=", 1)
    section, key = _split_key(dotted.strip())
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    return section, key, value


def apply_overrides(raw: dict[str, Any], sets: list[str] | None) -> dict[str, Any]:
    """Return ``raw`` (sections mapping) with each ``section.key=value`` applied."""
    raw = {s: dict(v or {}) for s, v in (raw or {}).items()}
    for item in sets or []:
        section, key, value = parse_set(item)
        raw.setdefault(section, {})[key] = value
    return raw
