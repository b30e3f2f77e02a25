"""Experiments: a study's brief, knowledge appendix, search space, block schedule and
starting configs, read from ``experiments/<name>/experiment.yaml``.

A block is one (field, n_frames) of the schedule. Its root config is, in order: the
experiment's ``defaults``, the starting config for ``FIELD@FRAMES`` (or the nearest
lower frame count of that field), and — when the experiment says ``carry_best`` — the
best config of the previous block; then the machine profile (``cpu`` on machines without
a GPU) and the user's ``--set`` overrides.

Time is encoded as τ = k / n_frames / t_period (k = 0..n_frames−1, models/variants.py), so
a fixed ``model.t_period`` gives τ ∈ [0, 1/t_period) at every frame count (the MPM
study: t_period 1, τ ∈ [0, 1)). An experiment may instead fix the step of τ per frame,
``tau_per_frame``: each block's starting config gets t_period = 1 / (tau_per_frame ·
n_frames), so τ ∈ [0, tau_per_frame · n_frames) and a SIREN's ω means the same temporal
resolution (radians per frame) at every frame count; a carried config's t_period is
rescaled by (its frame count / the new one), which keeps its own τ per frame, also
after the search changed t_period. The older ``t_period_follows_frames`` (t_period =
n_frames, τ ∈ [0, 1/n_frames): blind to time) is refused with a message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from inr_tune.config import SECTIONS, Config, apply_overrides, config_from_dict
from inr_tune.errors import ConfigError
from inr_tune.search.space import SearchSpace

__all__ = ["BlockSpec", "Experiment", "experiments_dir", "load_experiment", "load_space"]

KEYS = {
    "name",
    "kind",
    "description",
    "space",
    "classes",
    "brief",
    "knowledge",
    "schedule",
    "defaults",
    "start",
    "cpu",
    "carry_best",
    "tau_per_frame",
}

# Keys of older experiment files that no longer do anything: refused with the reason.
RETIRED_KEYS = {
    "t_period_follows_frames": (
        "is no longer supported (t_period = n_frames squashed τ = k / n_frames / t_period "
        "into [0, 1/n_frames)); remove it and set tau_per_frame (τ step per frame at every "
        "frame count, e.g. 0.0062832 = 2π/1000) or model.t_period in defaults (1.0: τ ∈ [0, 1))"
    ),
}


def _shipped(name: str) -> Path:
    """``experiments/`` or ``configs/`` of the checkout (editable install), else the copy
    that a wheel carries inside the package (``inr_tune/_shipped/``, see pyproject.toml)."""
    package = Path(__file__).resolve().parents[1]
    checkout = package.parent / name
    return checkout if checkout.is_dir() else package / "_shipped" / name


def experiments_dir() -> Path:
    """The shipped experiments (``experiments/`` beside the package in a checkout)."""
    return _shipped("experiments")


def _spaces_dir() -> Path:
    return _shipped("configs") / "spaces"


def load_space(spec: str | Path) -> SearchSpace:
    """The search space of ``search.space``: a YAML path, or a name under configs/spaces/
    (``mpm``, ``flyvis``)."""
    path = Path(str(spec))
    if not path.suffix:
        path = _spaces_dir() / f"{spec}.yaml"
    if not path.is_file():
        shipped = sorted(f.stem for f in _spaces_dir().glob("*.yaml"))
        raise ConfigError(
            f"search.space {spec}: no such file; give a space YAML or one of {', '.join(shipped)}"
        )
    return SearchSpace.from_yaml(path)


@dataclass(frozen=True)
class BlockSpec:
    """One block of the schedule."""

    field: str
    n_frames: int


@dataclass
class Experiment:
    name: str
    kind: str
    path: Path
    space: SearchSpace
    classes: dict[str, float]
    brief: str
    knowledge: str
    schedule: list[BlockSpec]
    defaults: dict[str, Any] = field(default_factory=dict)
    start: dict[str, dict[str, Any]] = field(default_factory=dict)
    cpu: dict[str, Any] = field(default_factory=dict)
    carry_best: bool = False
    tau_per_frame: float | None = None

    def fields(self) -> list[str]:
        return list(dict.fromkeys(b.field for b in self.schedule))

    def blocks_from(self, field: str | None, frames: int | None, count: int) -> list[BlockSpec]:
        """``count`` blocks of the schedule, starting at the first matching field/frames.

        A (field, frames) pair not in the schedule starts a block of its own, followed
        by the schedule's blocks after the first entry with that field (or frames).
        """
        if count < 1:
            return []
        start = next(
            (
                i
                for i, b in enumerate(self.schedule)
                if (field is None or b.field == field) and (frames is None or b.n_frames == frames)
            ),
            None,
        )
        if start is not None:
            picked = self.schedule[start : start + count]
        else:
            first = BlockSpec(field or self.schedule[0].field, frames or self.schedule[0].n_frames)
            rest = [
                b
                for b in self.schedule
                if b.n_frames > first.n_frames
                or (b.n_frames == first.n_frames and b.field != first.field)
            ]
            picked = [first, *rest][:count]
        while len(picked) < count:  # past the end of the schedule: repeat the last block
            picked.append(picked[-1])
        return picked

    def start_config(self, block: BlockSpec) -> dict[str, Any]:
        """Sections of the starting config for ``block`` (before machine profile and --set)."""
        candidates = sorted(
            (int(key.split("@")[1]), sections)
            for key, sections in self.start.items()
            if key.split("@")[0] == block.field and int(key.split("@")[1]) <= block.n_frames
        )
        raw = _merge({}, self.defaults)
        if candidates:
            raw = _merge(raw, candidates[-1][1])
        return raw

    def t_period(self, n_frames: int) -> float | None:
        """The block's ``model.t_period`` under ``tau_per_frame`` (None without it)."""
        if self.tau_per_frame is None:
            return None
        return 1.0 / (self.tau_per_frame * n_frames)

    def root_config(
        self,
        block: BlockSpec,
        *,
        gpu: bool,
        sets: list[str] | None = None,
        carried: Config | None = None,
    ) -> Config:
        raw = self.start_config(block)
        if self.tau_per_frame is not None:
            raw = _merge(raw, {"model": {"t_period": self.t_period(block.n_frames)}})
        if carried is not None and self.carry_best:
            kept = {s: v for s, v in carried.to_dict().items() if s in ("model", "training")}
            if self.tau_per_frame is not None:  # keep the carried config's τ per frame
                scale = carried.data.n_frames / block.n_frames
                kept["model"] = {**kept["model"], "t_period": carried.model.t_period * scale}
            raw = _merge(raw, kept)
        if not gpu:
            raw = _merge(raw, self.cpu)
        raw = _merge(raw, {"data": {"field": block.field, "n_frames": block.n_frames}})
        try:
            return config_from_dict(apply_overrides(raw, sets))
        except ConfigError as err:
            raise ConfigError(
                f"{err} (block {block.field}@{block.n_frames} of {self.name})"
            ) from None


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for section, values in (extra or {}).items():
        if isinstance(values, dict):
            out.setdefault(section, {}).update(values)
        else:
            out[section] = values
    return out


def _check_sections(where: str, raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping of config sections")
    try:
        config_from_dict({k: v for k, v in raw.items()})
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
    bad = [k for k in raw if k not in SECTIONS]
    if bad:
        raise ConfigError(f"{where}: unknown section {bad[0]!r}")
    return raw


def load_experiment(name_or_path: str) -> Experiment:
    """Load ``experiments/<name>/experiment.yaml`` or a path to such a file or directory."""
    aliases = {"mpm": "mpm_high_frames", "flyvis": "flyvis_stimulus"}
    name_or_path = aliases.get(name_or_path, name_or_path)
    p = Path(name_or_path)
    if not p.exists():
        p = experiments_dir() / name_or_path
    if p.is_dir():
        p = p / "experiment.yaml"
    if not p.is_file():
        shipped = sorted(
            d.name for d in experiments_dir().iterdir() if (d / "experiment.yaml").is_file()
        )
        raise ConfigError(
            f"experiment {name_or_path!r} not found; use mpm, flyvis, one of {', '.join(shipped)}, "
            "or a path to an experiment.yaml"
        )
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError:
        raise ConfigError(f"{p} is not valid YAML") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{p} must be a mapping")
    retired = sorted(set(raw) & set(RETIRED_KEYS))
    if retired:
        raise ConfigError(f"{p}: {retired[0]} {RETIRED_KEYS[retired[0]]}")
    unknown = sorted(set(raw) - KEYS)
    if unknown:
        raise ConfigError(f"{p}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(KEYS))}")
    for key in ("name", "kind", "space", "classes", "schedule", "brief"):
        if key not in raw:
            raise ConfigError(f"{p}: missing key {key!r}")
    if raw["kind"] not in ("mpm", "flyvis"):
        raise ConfigError(f"{p}: kind {raw['kind']!r} must be mpm or flyvis")
    space_path = Path(raw["space"])
    if not space_path.suffix:
        space_path = _spaces_dir() / f"{raw['space']}.yaml"
    elif not space_path.is_absolute():
        space_path = p.parent / space_path
    space = SearchSpace.from_yaml(space_path)
    schedule = []
    for i, item in enumerate(raw["schedule"] or []):
        if not isinstance(item, dict) or set(item) != {"field", "n_frames"}:
            raise ConfigError(f"{p}: schedule entry {i} must be {{field: NAME, n_frames: INT}}")
        if not isinstance(item["n_frames"], int) or item["n_frames"] < 1:
            raise ConfigError(f"{p}: schedule entry {i}: n_frames must be a positive int")
        schedule.append(BlockSpec(str(item["field"]), int(item["n_frames"])))
    if not schedule:
        raise ConfigError(f"{p}: the schedule is empty")
    classes = raw["classes"]
    if not isinstance(classes, dict) or not all(
        isinstance(v, (int, float)) for v in classes.values()
    ):
        raise ConfigError(f"{p}: classes must map class names to R² thresholds")
    start = {}
    for key, sections in (raw.get("start") or {}).items():
        frames = str(key).partition("@")[2]
        if not frames.isdigit():
            raise ConfigError(f"{p}: start key {key!r} must look like FIELD@FRAMES, e.g. F@400")
        start[str(key)] = _check_sections(f"{p}: start {key}", sections)

    tau_per_frame = raw.get("tau_per_frame")
    if tau_per_frame is not None:
        if isinstance(tau_per_frame, bool) or not isinstance(tau_per_frame, (int, float)):
            raise ConfigError(f"{p}: tau_per_frame must be a number > 0, e.g. 0.0062832")
        if not tau_per_frame > 0:
            raise ConfigError(f"{p}: tau_per_frame={tau_per_frame} must be > 0")
        where = [("defaults", raw.get("defaults")), ("cpu", raw.get("cpu"))]
        where += [(f"start {k}", v) for k, v in start.items()]
        for name, sections in where:
            model = sections.get("model") if isinstance(sections, dict) else None
            if isinstance(model, dict) and "t_period" in model:
                raise ConfigError(
                    f"{p}: {name} sets model.t_period, which tau_per_frame sets per block "
                    "(t_period = 1 / (tau_per_frame · n_frames)); remove one of them"
                )

    def text(key: str) -> str:
        if not raw.get(key):
            return ""
        f = p.parent / raw[key]
        if not f.is_file():
            raise ConfigError(f"{p}: {key} file {raw[key]} does not exist")
        return f.read_text()

    return Experiment(
        name=str(raw["name"]),
        kind=raw["kind"],
        path=p,
        space=space,
        classes={str(k): float(v) for k, v in classes.items()},
        brief=text("brief"),
        knowledge=text("knowledge"),
        schedule=schedule,
        defaults=_check_sections(f"{p}: defaults", raw.get("defaults")),
        start=start,
        cpu=_check_sections(f"{p}: cpu", raw.get("cpu")),
        carry_best=bool(raw.get("carry_best", False)),
        tau_per_frame=None if tau_per_frame is None else float(tau_per_frame),
    )
