"""Health of the portal's parts: /healthz, the worker heartbeat task, and /metrics for Prometheus."""

import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

import redis
import requests
from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

HEARTBEAT_KEY = "hafnium:worker-heartbeat"
PROBE_TIMEOUT_SECONDS = 2


def _redis_client() -> redis.Redis:
    return redis.Redis.from_url(
        settings.REDIS_URL,
        socket_connect_timeout=PROBE_TIMEOUT_SECONDS,
        socket_timeout=PROBE_TIMEOUT_SECONDS,
    )


@shared_task(ignore_result=True, acks_late=False)
def record_worker_heartbeat(hostname: str | None = None) -> None:
    """Scheduled by beat every WORKER_HEARTBEAT_INTERVAL seconds: proves a worker consumes the queue."""
    name = hostname or record_worker_heartbeat.request.hostname or "unknown"
    _redis_client().hset(HEARTBEAT_KEY, mapping={"hostname": name, "at": datetime.now(UTC).isoformat()})


@worker_ready.connect
def _heartbeat_on_start(sender, **kwargs):
    """A worker that just started is up now, not at the next beat tick."""
    record_worker_heartbeat(sender.hostname)


def check_database() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"vendor": connection.vendor}


def check_redis() -> dict:
    _redis_client().ping()
    return {}


def check_worker() -> dict:
    beat = {k.decode(): v.decode() for k, v in _redis_client().hgetall(HEARTBEAT_KEY).items()}
    if not beat:
        raise RuntimeError("no worker heartbeat recorded yet")
    at = datetime.fromisoformat(beat["at"])
    age = (datetime.now(UTC) - at).total_seconds()
    if age > settings.WORKER_HEARTBEAT_STALE_AFTER:
        raise RuntimeError(f"last heartbeat from {beat['hostname']} is {age:.0f}s old")
    return {"hostname": beat["hostname"], "last_heartbeat": beat["at"], "age_seconds": round(age, 1)}


def check_mlflow() -> dict:
    """Probe the MLflow store without importing mlflow (seconds to import; not on a health probe)."""
    uri = settings.MLFLOW_TRACKING_URI
    parsed = urlparse(uri)
    if parsed.scheme in ("http", "https"):
        response = requests.get(uri.rstrip("/") + "/health", timeout=PROBE_TIMEOUT_SECONDS)
        response.raise_for_status()
        return {"store": "server"}
    if parsed.scheme == "sqlite":
        path = Path(uri[len("sqlite:///") :])  # SQLAlchemy's form: four slashes for an absolute path
        if not path.exists():
            raise RuntimeError(
                f"MLflow store {path} does not exist (run `python manage.py init_mlflow_store`)"
            )
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=PROBE_TIMEOUT_SECONDS) as db:
            db.execute("SELECT count(*) FROM experiments").fetchone()
        return {"store": "sqlite"}
    if parsed.scheme in ("", "file"):
        path = Path(parsed.path)
        if not path.is_dir():
            raise RuntimeError(f"MLflow file store {path} does not exist")
        return {"store": "file"}
    raise RuntimeError(f"cannot probe an MLflow store with scheme {parsed.scheme!r}")


CHECKS = {
    "database": check_database,
    "redis": check_redis,
    "mlflow": check_mlflow,
    "worker": check_worker,
}


def run_checks() -> dict[str, dict]:
    results = {}
    for name, check in CHECKS.items():
        try:
            results[name] = {"ok": True, **check()}
        except Exception as exc:  # any failure of a part is reported, never raised
            results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return results


# Without Redis the portal still serves its pages and the scoring service still answers (no cache,
# per-process breakers, logs held in the process); only background work waits (the broker is Redis,
# so the worker cannot be seen either). That is degraded, not unavailable.
REDIS_DOWN_REASON = (
    "Redis is down: pages and scoring go on; background tasks, the response cache and shared breakers "
    "wait for it"
)


def status_of(checks: dict[str, dict]) -> tuple[str, str]:
    """("ok" | "degraded" | "unavailable", the reason) of the checks' results."""
    down = {name for name, result in checks.items() if not result["ok"]}
    if not down:
        return "ok", ""
    if "redis" in down and down <= {"redis", "worker"}:
        return "degraded", REDIS_DOWN_REASON
    return "unavailable", f"down: {', '.join(sorted(down))}"


@never_cache
@require_GET
def healthz(request):
    """200 "ok", 200 "degraded" (Redis down: the portal works without it), 503 "unavailable"."""
    checks = run_checks()
    down = [name for name, result in checks.items() if not result["ok"]]
    status, reason = status_of(checks)
    body = {"status": status, "down": down, "checks": checks}
    if reason:
        body["reason"] = reason
    return JsonResponse(body, status=503 if status == "unavailable" else 200)


@never_cache
@require_GET
def metrics(request):
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # gunicorn runs several worker processes: merge what each of them recorded.
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
