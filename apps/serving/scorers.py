"""Each process's loaded scorers: one load per version, in the background, bounded, never hanging a request.

A request waits at most SERVING_LOAD_WAIT seconds for a version still loading (then the rules answer
it); a load that failed is a breaker failure of the version and is tried again after
SERVING_LOAD_RETRY seconds. At most SERVING_MAX_LOADED versions stay loaded (least recently used
go first).
"""

import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from django.conf import settings

from .config import VersionConfig

log = logging.getLogger(__name__)


class ScorerLoading(Exception):
    """The version is still loading: answer this request without it (not the model's failure)."""


class ScorerLoadFailed(Exception):
    """The version could not be loaded (a failure of the version, counted by its breaker)."""


def load_scorer(model_name: str, version: VersionConfig):
    """The fast scorer of a version (compiled if its parity check passed, else the MLflow model)."""
    from .compile import scorer_load

    scorer = scorer_load(version=version)
    # The first call of a fresh scorer is slow (lazy imports, allocations): not the first request's.
    row = {
        f.name: ("" if f.kind == "string" else False if f.kind == "boolean" else 0) for f in version.features
    }
    try:
        scorer.predict_proba([row])
    except Exception as exc:  # a warm-up row the model refuses says nothing about real rows
        log.info("warm-up call of %s v%s failed: %s", model_name, version.number, exc)
    return scorer


class _Entry:
    def __init__(self, future: Future):
        self.future = future
        self.failed_at: float | None = None


class ScorerPool:
    def __init__(self, loader=load_scorer):
        self._loader = loader
        self._entries: OrderedDict[tuple[str, int], _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="scorer-load")

    def _submit(self, key, version: VersionConfig) -> _Entry:
        entry = _Entry(self._executor.submit(self._loader, key[0], version))
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > settings.SERVING_MAX_LOADED:
            self._entries.popitem(last=False)
        return entry

    def warm(self, model_name: str, version: VersionConfig) -> Future:
        """Start loading a version (at process start, for the versions with traffic)."""
        key = (model_name, version.number)
        with self._lock:
            entry = self._entries.get(key) or self._submit(key, version)
        return entry.future

    def get(self, model_name: str, version: VersionConfig):
        key = (model_name, version.number)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or (
                entry.failed_at is not None
                and time.monotonic() - entry.failed_at > settings.SERVING_LOAD_RETRY
            ):
                entry = self._submit(key, version)
            else:
                self._entries.move_to_end(key)
        try:
            return entry.future.result(timeout=settings.SERVING_LOAD_WAIT)
        except FutureTimeout as exc:
            raise ScorerLoading(f"{model_name} v{version.number} is still loading") from exc
        except Exception as exc:
            if entry.failed_at is None:
                entry.failed_at = time.monotonic()
                log.warning("cannot load %s v%s: %s", model_name, version.number, exc)
            raise ScorerLoadFailed(f"{model_name} v{version.number} cannot be loaded: {exc}") from exc

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


pool = ScorerPool()
