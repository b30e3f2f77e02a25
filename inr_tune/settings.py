"""The one config of a search: a YAML, ``--set`` items and the block's flags, resolved in
that order into a list of ``section.key=value`` items and the ``Config`` they make.

Every flag of ``python -m inr_tune.block`` is sugar for one key (``FLAG_KEYS``): the search
reads ``cfg.search`` and ``cfg.block``; the data, model and training keys override every
block's starting config. ``data.field`` and ``data.n_frames`` name the first block's
window, so they are read as ``block.field`` and ``block.frames``. The items, not the
Config, are saved in ``options.json``: a resumed run rebuilds the same settings.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inr_tune.config import (
    SECTIONS,
    Config,
    apply_overrides,
    config_from_dict,
    parse_set,
)
from inr_tune.config_anchor import from_anchor_dialect, is_anchor_dialect
from inr_tune.config_files import read_yaml
from inr_tune.errors import ConfigError

__all__ = [
    "FLAG_KEYS",
    "Settings",
    "check_search",
    "config_sets",
    "describe",
    "flag_sets",
    "new_run_dir",
    "resumed_settings",
    "search_keys_set",
    "settings_from",
    "settings_from_saved",
]

# flag of ``python -m inr_tune.block`` (its argparse dest) → the key it sets
FLAG_KEYS: dict[str, str] = {
    "experiment": "block.experiment",
    "field": "block.field",
    "frames": "block.frames",
    "iterations": "block.iterations",
    "blocks": "block.blocks",
    "parallel": "block.parallel",
    "early_stop": "block.early_stop",
    "address": "block.address",
    "storage": "block.storage",
    "searcher": "search.searcher",
    "proposer": "search.proposer",
    "llm_model": "search.llm_model",
    "ucb_c": "search.ucb_c",
    "reward": "search.reward",
    "objective": "search.objective",
    "min_ratio": "search.min_ratio",
    "seed": "search.seed",
}
# keys read as others by a search: the first block's window
ALIASES = {"data.field": "block.field", "data.n_frames": "block.frames"}


def _item(dotted: str, value: Any) -> str:
    return f"{dotted}={json.dumps(value)}"


def _normalise(item: str) -> str:
    """``item`` checked (known section and key) and with ``ALIASES`` applied."""
    section, key, value = parse_set(item)
    dotted = ALIASES.get(f"{section}.{key}", f"{section}.{key}")
    return _item(dotted, value) if dotted != f"{section}.{key}" else item


def flag_sets(flags: Mapping[str, Any]) -> list[str]:
    """``--set`` items for the block flags given (None = not given)."""
    unknown = sorted(set(flags) - set(FLAG_KEYS))
    if unknown:
        raise ConfigError(
            f"unknown search option {unknown[0]!r}; allowed: {', '.join(FLAG_KEYS)} "
            "(or set=['section.key=value', …])"
        )
    return [_item(FLAG_KEYS[k], v) for k, v in flags.items() if v is not None]


def config_sets(source: str | Path | Config | Mapping[str, Any] | None) -> list[str]:
    """``--set`` items for a YAML file (ours or the older tools'), a mapping of sections or
    a ``Config`` (only its keys that differ from ``Config()``: the rest are defaults, and
    would hide the experiment's starting config)."""
    if source is None:
        return []
    if isinstance(source, Config):
        base, given = Config().to_dict(), source.to_dict()
        raw = {s: {k: v for k, v in given[s].items() if base[s][k] != v} for s in given}
    elif isinstance(source, Mapping):
        raw = dict(source)
    else:
        raw = read_yaml(source) or {}
        if is_anchor_dialect(raw):
            raw = from_anchor_dialect(raw)[0]
        if not isinstance(raw, dict):
            raise ConfigError(f"{source} must be a mapping of sections")
    config_from_dict(raw)  # unknown sections and keys, types, ranges: one line
    return [_item(f"{s}.{k}", v) for s, keys in raw.items() for k, v in (keys or {}).items()]


@dataclass(frozen=True)
class Settings:
    """The ordered ``section.key=value`` items of a search and the Config they make."""

    sets: tuple[str, ...]

    @property
    def config(self) -> Config:
        return config_from_dict(apply_overrides({}, list(self.sets)))

    @property
    def search(self) -> Any:
        return self.config.search

    @property
    def block(self) -> Any:
        return self.config.block

    def with_sets(self, more: Iterable[str]) -> Settings:
        out = Settings((*self.sets, *(_normalise(i) for i in more)))
        out.config  # noqa: B018 -- checks the new values (one line when bad)
        return out

    def to_json(self) -> dict[str, Any]:
        return {"sets": list(self.sets)}


def settings_from(
    config: str | Path | Config | Mapping[str, Any] | None = None,
    sets: Iterable[str] = (),
    flags: Mapping[str, Any] | None = None,
) -> Settings:
    """The settings of a new search: ``config``, then ``sets``, then ``flags`` (later wins)."""
    items = [*config_sets(config), *sets, *flag_sets(flags or {})]
    settings = Settings(()).with_sets(items)
    check_search(settings.search)
    return settings


def check_search(search: Any) -> None:
    """Refuse (one line) search settings that cannot work together, before a run starts:
    ``search.proposer=llm`` with a searcher other than ``ucb`` (it would not be used), and
    ``search.searcher=tpe`` without optuna installed."""
    if search.searcher != "ucb" and search.proposer == "llm":
        raise ConfigError(
            f"search.proposer=llm proposes for the UCB tree only; drop it or use "
            f"search.searcher=ucb (searcher {search.searcher} picks its own configs)"
        )
    if search.searcher == "tpe":
        from inr_tune.search.proposers.tpe import require_optuna

        require_optuna()


def settings_from_saved(saved: Mapping[str, Any]) -> Settings:
    """Settings of a run's ``options.json``: ``{"sets": […]}``, or the options dict that
    older runs saved (flags by name plus a ``set`` list)."""
    if isinstance(saved.get("sets"), list):
        return Settings(()).with_sets(saved["sets"])
    old = [_item(FLAG_KEYS[k], v) for k, v in saved.items() if k in FLAG_KEYS and v is not None]
    return Settings(()).with_sets([*(saved.get("set") or []), *old])


def replace_key(settings: Settings, dotted: str, value: Any) -> Settings:
    """``settings`` with one more item setting ``dotted`` to ``value``."""
    return settings.with_sets([_item(dotted, value)])


def new_run_dir(settings: Settings, out: str | Path | None) -> Path:
    """``out``, or ``runs/<experiment>-<time>``; refused when it holds a run already."""
    import time

    name = settings.block.experiment.replace("/", "_")
    path = Path(out) if out else Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if (path / "journal.jsonl").exists():
        raise ConfigError(
            f"{path} already holds a run; use --resume to continue it or another --out"
        )
    return path


def resumed_settings(out: Path, blocks: int | None = None) -> Settings:
    """The saved settings of the run in ``out``; with ``blocks``, that many blocks in all
    (more than the run had: a finished run gets more blocks of the schedule)."""
    from inr_tune.reports.run_dir import read_options

    saved = settings_from_saved(read_options(out))
    if blocks is None:
        return saved
    if blocks < saved.block.blocks:
        raise ConfigError(
            f"--blocks {blocks} is fewer than the run's {saved.block.blocks}; a resumed run "
            "only adds blocks"
        )
    return saved.with_sets([f"block.blocks={blocks}"])


def search_keys_set(path: str | Path | None, sets: list[str] | None) -> list[str]:
    """The search.* / block.* keys that ``--set`` items or our YAML at ``path`` give a
    value other than the default: a training does nothing with them (the older dialect's
    ``claude`` section maps onto them and is left alone)."""
    default = Config().to_dict()
    given: dict[str, Any] = {}
    raw = read_yaml(path) if path is not None else None
    if isinstance(raw, dict) and not is_anchor_dialect(raw):
        for section in ("search", "block"):
            for key, value in (raw.get(section) or {}).items():
                given[f"{section}.{key}"] = value
    for item in sets or []:
        section, key, value = parse_set(item)
        if section in ("search", "block"):
            given[f"{section}.{key}"] = value
    changed = []
    for dotted, value in given.items():
        section, key = dotted.split(".")
        if key in default[section] and value != default[section][key]:
            changed.append(dotted)
    return changed


def describe(sections: tuple[str, ...] | None = None) -> str:
    """Every key of ``sections`` (default: all) with its default and docstring (for
    ``--help`` epilogs)."""
    lines = []
    for section, cls in SECTIONS.items():
        if sections is not None and section not in sections:
            continue
        lines.append(f"{section}:")
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            lines.append(f"  {f.name} = {default!r}  # {f.metadata.get('doc', '')}")
    return "\n".join(lines)
