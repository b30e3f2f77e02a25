"""A trial's identity: ``config_key`` (what a trial trains, hashed), ``as_config`` (a node's
stored mapping as a Config) and ``stored`` (both, kept per node config for the searcher).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

from inr_tune.config import SECTIONS, Config, config_from_dict

__all__ = ["StoredConfig", "as_config", "config_key", "stored"]


def _canonical(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(f"{value:.10g}") if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


_KEY_SECTIONS = ("data", "model", "training")
_FIELDS = {s: {f.name for f in dataclasses.fields(SECTIONS[s])} for s in _KEY_SECTIONS}


@functools.lru_cache(maxsize=4096)
def _config_from_json(text: str) -> Config:
    return config_from_dict(json.loads(text))


def as_config(raw: Config | Mapping[str, Any]) -> Config:
    """A Config from a Config or a sections mapping (a node's stored config).

    Parsing is cached on the mapping's content; each call returns a fresh copy, so the
    caller may not alter a shared object by accident.
    """
    if isinstance(raw, Config):
        return raw
    return copy.deepcopy(_config_from_json(json.dumps(raw, sort_keys=True)))


def config_key(config: Config | Mapping[str, Any]) -> str:
    """A canonical hash of what a trial trains (sections data, model, training).

    Numbers are compared to 10 significant digits and ints equal their floats (``8`` and
    ``8.0`` hash alike). The search and block sections do not change a trial's result
    and are left out. Two configs with the same key are the same trial; only a
    robustness-test (a new seed, hence a new key) re-runs a config. A mapping missing
    keys gets the defaults filled in first.
    """
    return _body_key(_key_body(config))


def _key_body(config: Config | Mapping[str, Any]) -> dict[str, Any]:
    """The canonical sections ``config_key`` hashes."""
    raw = config.to_dict() if isinstance(config, Config) else config
    complete = all(
        isinstance(raw.get(s), Mapping) and set(raw[s]) == _FIELDS[s] for s in _KEY_SECTIONS
    )
    if not complete:
        raw = as_config(raw).to_dict()
    return {s: _canonical(raw[s]) for s in _KEY_SECTIONS}


def _body_key(body: Mapping[str, Any]) -> str:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(text.encode()).hexdigest()[:16]


class StoredConfig:
    """A node's stored config as the search reads it: its ``config_key``, its Config and
    the keys of its one-value children, each computed once per content (``stored``)."""

    __slots__ = ("_body", "_children", "_config", "_text", "_values", "key")

    def __init__(self, raw: Mapping[str, Any], text: str | None) -> None:
        self._text = text  # the content as parsed (None: not JSON-able, parse ``raw``)
        self._body = _key_body(raw)
        self.key = _body_key(self._body)
        self._config: Config | None = None if text is not None else as_config(raw)
        self._children: dict[tuple[str, type, str], str] = {}
        self._values: dict[str, Any] = {}

    @property
    def config(self) -> Config:
        """The parsed Config, shared: read it, never change it (``as_config`` copies)."""
        if self._config is None:
            assert self._text is not None
            self._config = _config_from_json(self._text)
        return self._config

    def get(self, key: str) -> Any:
        """``config.get(key)`` (dotted), kept: the value is shared, never change it."""
        try:
            return self._values[key]
        except KeyError:
            value = self._values[key] = self.config.get(key)
            return value

    def child_key(self, key: str, value: Any) -> str:
        """``config_key`` of this config with ``key`` (dotted) set to ``value`` (already
        coerced by its Param), without building the child Config.

        It equals ``config_key(space.apply(config, …))`` whenever that child is a valid
        Config: building one only checks values and turns ints into floats, which the key
        does not tell apart (``test_space`` checks this on the shipped spaces).
        """
        canon = _canonical(value)
        memo = (key, type(canon), repr(canon))
        out = self._children.get(memo)
        if out is None:
            section, name = key.split(".")
            if section not in _KEY_SECTIONS:
                out = self.key
            else:
                body = dict(self._body)
                body[section] = {**body[section], name: canon}
                out = _body_key(body)
            self._children[memo] = out
        return out


_STORED_BY_ID: dict[int, tuple[Mapping[str, Any], StoredConfig]] = {}
_STORED_BY_TEXT: dict[str, StoredConfig] = {}
_STORED_MAX = 5_000  # entries per map (a config and its parse are a few kB)


def stored(raw: Mapping[str, Any]) -> StoredConfig:
    """The ``StoredConfig`` of a node's config mapping (``Node.config``), cached.

    Node configs are never edited (a tree invariant), so the cache is looked up first
    by the mapping's identity (it keeps the mapping alive, so the id is not reused), then
    by its content (a copied tree's nodes find their originals' entries).
    """
    hit = _STORED_BY_ID.get(id(raw))
    if hit is not None and hit[0] is raw:
        return hit[1]
    try:
        text = json.dumps(raw, sort_keys=True)
    except (TypeError, ValueError):
        return StoredConfig(raw, None)
    out = _STORED_BY_TEXT.get(text)
    if out is None:
        if len(_STORED_BY_TEXT) >= _STORED_MAX:
            _STORED_BY_TEXT.clear()
        out = _STORED_BY_TEXT[text] = StoredConfig(raw, text)
    if len(_STORED_BY_ID) >= _STORED_MAX:
        _STORED_BY_ID.clear()
    _STORED_BY_ID[id(raw)] = (raw, out)
    return out
