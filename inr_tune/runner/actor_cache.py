"""Trial actors kept between batches, so a worker imports torch and Lightning once a block.

Ray Tune's ``reuse_actors=True`` caches a finished trial's actor only for a trial already
waiting for the same resources, and keeps at most one spare otherwise
(``ray.tune.utils.object_cache._ObjectCache(may_keep_one=True)``). The UCB searcher
proposes a batch only once the whole batch before it has finished, so when the last trials
of a batch end no trial is waiting yet: Tune keeps one of their actors and stops the rest,
and every later batch starts ``parallel - 1`` fresh workers that import torch and Lightning
again (3.5 s of a 10–20 s CPU trial, 9 s with four workers importing on two cores; issue 14
§5).

``keep_actors(n)`` lets the controller that ``Tuner.fit`` builds keep up to ``n`` spare
actors of one resource shape. A spare actor holds its trial's resources, so with ``n`` the
block's concurrency no trial waits for resources a spare holds. Ray has no public setting
for this; the cache class is swapped in the controller's module for the duration of the
``with`` block. If a Ray version lacks that class, nothing is changed (Ray's own policy
applies) and ``keep_actors`` yields False. When the search is over Tune still evicts every
cached actor (``force_all``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

__all__ = ["keep_actors"]


def _cache_class(base: type, keep: int) -> type:
    class KeepSpares(base):  # type: ignore[misc, valid-type]
        """``_ObjectCache`` that keeps up to ``keep`` spare objects per key."""

        def cache_object(self, key: Any, obj: Any) -> bool:
            if len(self._cached_objects[key]) < max(keep, self._max_num_objects[key]):
                self._cached_objects[key].append(obj)
                self._num_cached_objects += 1
                return True
            return bool(super().cache_object(key, obj))

        def flush_cached_objects(self, force_all: bool = False) -> Iterator[Any]:
            if force_all:
                yield from super().flush_cached_objects(force_all=True)
                return
            for key, objs in self._cached_objects.items():
                while len(objs) > max(keep, self._max_num_objects[key]):
                    self._num_cached_objects -= 1
                    yield objs.pop(0)

    return KeepSpares


@contextlib.contextmanager
def keep_actors(keep: int) -> Iterator[bool]:
    """Within the block, Tune controllers built by ``Tuner.fit`` keep up to ``keep``
    spare trial actors between batches (module docstring). Yields whether the policy is
    in effect."""
    try:
        from ray.tune.execution import tune_controller
        from ray.tune.utils.object_cache import _ObjectCache
    except ImportError:
        yield False
        return
    if keep <= 1 or getattr(tune_controller, "_ObjectCache", None) is not _ObjectCache:
        yield False
        return
    tune_controller._ObjectCache = _cache_class(_ObjectCache, keep)  # type: ignore[attr-defined]
    try:
        yield True
    finally:
        tune_controller._ObjectCache = _ObjectCache  # type: ignore[attr-defined]
