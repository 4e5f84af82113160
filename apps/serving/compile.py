"""Compiling a registered version's fast scorer into its MLflow run, and loading scorers in a process.

`scorer_compile` derives the compiled scorer from the logged model, checks parity on the holdout of the
version's dataset (the split training made: same seed and fraction) and logs it to the same run as
`fast_scorer/` (the Treelite model, scorer.json, parity.json). parity.json is written last, so its
presence means a complete artifact: a second call finds it and does nothing.

`scorer_load` gives the scorer a process serves a version with: the compiled one when its parity
passed, else the logged model itself (PyfuncScorer). The artifact is downloaded once into a cache under
VAR_DIR, so a restarted process loads it again without MLflow. `ScorerCache` keeps a bounded number of
loaded versions per process and remembers, for a while, a version that failed to load, so that a broken
version costs a request nothing but the fallback.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.registry import gateway
from hafnium_portal.errors import ServiceUnavailable

from . import runtime

log = logging.getLogger(__name__)

ARTIFACT_PATH = "fast_scorer"
PARITY_FILE = "parity.json"
# Enough rows to catch a wrong split or encoding, few enough to compile in seconds.
MAX_PARITY_ROWS = 20_000


class ScorerUnavailable(ServiceUnavailable):
    """The version's scorer cannot be loaded (now): the caller answers with the fallback."""


def _model_uri(version) -> str:
    return version.source_uri or gateway.run_model_uri(version.run_id)


def _holdout(version):
    """The holdout rows of the version's dataset, split as training split them; None without a dataset."""
    import pandas as pd

    from apps.training import pipeline

    dataset = getattr(version, "dataset", None)
    if dataset is None or not dataset.path or not dataset.file.is_file():
        return None
    frame = pd.read_parquet(dataset.file)
    params = version.params or {}
    if pipeline.LABEL not in frame.columns:
        return None
    _, holdout = pipeline.split(
        frame,
        holdout_fraction=float(params.get("holdout_fraction", 0.25)),
        seed=int(params.get("seed", 0)),
    )
    return holdout.head(MAX_PARITY_ROWS)


def scorer_compile(*, version, force: bool = False) -> dict:
    """Compile, parity-check and log the fast scorer of a ModelVersion. Idempotent (see the module doc).

    Returns {"status": "exists" | "compiled" | "not_compilable" | "no_holdout", "passed", "max_abs_diff",
    "rows", "reason"}; MLflow failures raise RegistryUnavailable (the task retries).
    """
    if not version.run_id:
        return {"status": "not_compilable", "passed": False, "max_abs_diff": None, "rows": 0,
                "reason": "the version has no MLflow run"}  # fmt: skip
    parity_path = f"{ARTIFACT_PATH}/{PARITY_FILE}"
    if not force and gateway.run_artifact_exists(version.run_id, parity_path):
        recorded = _read_parity(version.run_id)
        return {
            "status": "exists",
            **{k: recorded.get(k) for k in ("passed", "max_abs_diff", "rows", "reason")},
        }

    pipeline_model = gateway.load_sklearn_model(_model_uri(version))
    result = {"status": "compiled", "passed": False, "max_abs_diff": None, "rows": 0, "reason": ""}
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / ARTIFACT_PATH
        out.mkdir()
        try:
            scorer = runtime.compile_pipeline(pipeline_model, runtime.schema_of_signature(version.signature))
        except runtime.NotCompilable as exc:
            result.update(status="not_compilable", reason=str(exc))
        else:
            holdout = _holdout(version)
            if holdout is None or len(holdout) == 0:
                result.update(status="no_holdout", reason="the version has no dataset to check parity on")
            else:
                diff = runtime.parity(pipeline_model, scorer, holdout)
                passed = diff <= runtime.PARITY_TOLERANCE
                result.update(
                    passed=passed,
                    max_abs_diff=diff if math.isfinite(diff) else None,
                    rows=len(holdout),
                    reason=f"max abs diff {diff:.3g} {'<=' if passed else '>'} {runtime.PARITY_TOLERANCE:g}",
                )
            scorer.save(out)
        record = {
            "max_abs_diff": result["max_abs_diff"],
            "rows": result["rows"],
            "passed": result["passed"],
            "tolerance": runtime.PARITY_TOLERANCE,
            "status": result["status"],
            "reason": result["reason"],
            "compiled_at": timezone.now().isoformat(),
            "runtime": _runtime_versions(),
        }
        # Everything else first, parity.json last: its presence marks a complete artifact.
        if any(out.iterdir()):
            gateway.log_run_artifacts(version.run_id, out, ARTIFACT_PATH)
        last = Path(folder) / "last"
        last.mkdir()
        (last / PARITY_FILE).write_text(json.dumps(record, indent=2))
        gateway.log_run_artifacts(version.run_id, last, ARTIFACT_PATH)
    with transaction.atomic():
        audit_record(actor=None, action="serving.scorer_compiled", obj=version, after=record)
    log.info("fast scorer of %s: %s", version, result)
    return result


def _read_parity(run_id: str) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        local = gateway.download_run_artifacts(run_id, f"{ARTIFACT_PATH}/{PARITY_FILE}", folder)
        return json.loads(local.read_text())


def _runtime_versions() -> dict:
    import sklearn
    import treelite

    return {"treelite": treelite.__version__, "sklearn": sklearn.__version__}


def versions_to_compile(limit: int = 50) -> list[int]:
    """Ids of versions that may answer traffic and have no compilation recorded (the sweep's work)."""
    from django.db.models import CharField, Exists, OuterRef
    from django.db.models.functions import Cast

    from apps.audit.models import AuditEvent
    from apps.registry.models import ModelVersion

    from .config import SERVABLE_STAGES

    compiled = AuditEvent.objects.filter(
        action="serving.scorer_compiled",
        object_type="registry.modelversion",
        object_id=Cast(OuterRef("pk"), CharField()),
    )
    pending = ModelVersion.objects.filter(stage__in=SERVABLE_STAGES).exclude(run_id="")
    pending = pending.filter(~Exists(compiled))
    return list(pending.order_by("-pk").values_list("pk", flat=True)[:limit])


# --- loading, per process ----------------------------------------------------------------------------


def _cache_root() -> Path:
    return Path(getattr(settings, "SERVING_SCORER_CACHE", None) or Path(settings.VAR_DIR) / "scorers")


def _local_artifact(run_id: str) -> Path | None:
    """The run's fast_scorer folder in the local cache, downloaded once; None when the run has none."""
    target = _cache_root() / run_id / ARTIFACT_PATH
    if (target / PARITY_FILE).is_file():
        return target
    if not gateway.run_artifact_exists(run_id, f"{ARTIFACT_PATH}/{PARITY_FILE}"):
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".download-", dir=target.parent))
    try:
        downloaded = gateway.download_run_artifacts(run_id, ARTIFACT_PATH, staging)
        try:
            # Atomic: another process sees the whole folder or none of it.
            os.rename(downloaded, target)
        except OSError:
            if not (target / PARITY_FILE).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def scorer_load(*, version) -> runtime.Scorer:
    """The scorer to serve a version with (anything with run_id, source_uri and signature will do).

    The compiled scorer when its parity passed; else the logged model (PyfuncScorer). Raises
    ScorerUnavailable when neither can be loaded.
    """
    try:
        local = _local_artifact(version.run_id) if version.run_id else None
        if local is not None:
            record = json.loads((local / PARITY_FILE).read_text())
            if record.get("passed"):
                try:
                    return runtime.CompiledScorer.load(local)
                except Exception:
                    log.exception(
                        "the compiled scorer of run %s does not load; serving the model", version.run_id
                    )
        features = runtime.features_from_schema(runtime.schema_of_signature(version.signature))
        return runtime.PyfuncScorer(gateway.load_sklearn_model(_model_uri(version)), features)
    except (gateway.RegistryUnavailable, gateway.RegistryNotFound, runtime.NotCompilable) as exc:
        raise ScorerUnavailable(f"cannot load the scorer of {version}: {exc}") from exc
    except Exception as exc:  # a corrupt artifact, an unpicklable model: not this request's fault
        log.exception("cannot load the scorer of %s", version)
        raise ScorerUnavailable(f"cannot load the scorer of {version}: {type(exc).__name__}: {exc}") from exc


class ScorerCache:
    """A bounded LRU of loaded scorers per process, keyed by e.g. (model name, version number).

    `get(key, version)` loads on a miss (one load per key at a time; other callers of the same key wait
    for it), and remembers a failed load for `retry_after` seconds, during which `get` raises
    ScorerUnavailable at once instead of trying again.
    """

    def __init__(
        self,
        max_versions: int = 8,
        *,
        loader: Callable[..., runtime.Scorer] | None = None,
        retry_after: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        if max_versions < 1:
            raise ValueError(f"max_versions must be >= 1, got {max_versions!r}")
        self.max_versions = max_versions
        self.loader = loader or (lambda version: scorer_load(version=version))
        self.retry_after = retry_after
        self.clock = clock
        self._scorers: OrderedDict[Hashable, runtime.Scorer] = OrderedDict()
        self._failures: dict[Hashable, tuple[float, str]] = {}
        self._lock = threading.Lock()
        self._loading: dict[Hashable, threading.Lock] = {}

    def get(self, key: Hashable, version) -> runtime.Scorer:
        with self._lock:
            scorer = self._cached(key)
            if scorer is not None:
                return scorer
            key_lock = self._loading.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                scorer = self._cached(key)
                if scorer is not None:
                    return scorer
            try:
                scorer = self.loader(version)
            except Exception as exc:
                message = str(exc) if isinstance(exc, ScorerUnavailable) else f"{type(exc).__name__}: {exc}"
                with self._lock:
                    self._failures[key] = (self.clock() + self.retry_after, message)
                raise ScorerUnavailable(message) from exc
            with self._lock:
                self._failures.pop(key, None)
                self._scorers[key] = scorer
                self._scorers.move_to_end(key)
                while len(self._scorers) > self.max_versions:
                    self._scorers.popitem(last=False)
            return scorer

    def _cached(self, key):
        """Under the lock: the loaded scorer, None to load, or ScorerUnavailable while a failure is fresh."""
        scorer = self._scorers.get(key)
        if scorer is not None:
            self._scorers.move_to_end(key)
            return scorer
        failure = self._failures.get(key)
        if failure is not None:
            until, message = failure
            if self.clock() < until:
                raise ScorerUnavailable(message)
            del self._failures[key]
        return None

    def warm(self, key: Hashable, version) -> bool:
        """Load ahead of traffic; False (logged) when it cannot be loaded."""
        try:
            self.get(key, version)
        except ScorerUnavailable as exc:
            log.warning("could not warm the scorer %s: %s", key, exc)
            return False
        return True

    def evict(self, key: Hashable) -> None:
        with self._lock:
            self._scorers.pop(key, None)
            self._failures.pop(key, None)

    def keys(self) -> list:
        with self._lock:
            return list(self._scorers)

    def __len__(self) -> int:
        with self._lock:
            return len(self._scorers)
