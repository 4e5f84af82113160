"""Reads of the SLOs: objectives in force, a model's per-minute buckets, the statuses the home page shows,
and the aggregates of the request log the serving selectors do not give (slow requests per minute, the
model-wide latency quantile).

The logs are read as SQL aggregates (GROUP BY minute), never row by row; the 30-day figures are sums of
the per-minute roll-up (SLOMinute), which the evaluation tick keeps current.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from django.conf import settings
from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.db.models.functions import Trunc

from apps.registry.models import RegisteredModel, Stage
from apps.serving.models import PredictionLog

from . import slo
from .models import SLOMinute, SLOObjective, SLOStatus

PRODUCTION = "production"  # the environment whose requests the SLOs count (staging traffic is not served)
ALERT_SOURCE = "slo"  # the source of the burn-rate alerts (apps/alerts); keys "<model>:<slo>:<severity>"


@dataclass(frozen=True)
class ObjectivesInForce:
    objectives: slo.Objectives
    min_events: int
    version: int  # 0: the settings' defaults

    def as_dict(self) -> dict:
        return {
            "version": self.version,
            "availability": self.objectives.availability,
            "latency_ms": self.objectives.latency_ms,
            "latency_quantile": self.objectives.latency_quantile,
            "min_events": self.min_events,
        }


def objectives_default() -> ObjectivesInForce:
    return ObjectivesInForce(
        objectives=slo.Objectives(
            availability=settings.SLO_AVAILABILITY_TARGET,
            latency_ms=settings.SLO_LATENCY_MS,
            latency_quantile=settings.SLO_LATENCY_QUANTILE,
        ),
        min_events=settings.SLO_MIN_EVENTS,
        version=0,
    )


def objectives_for(model: RegisteredModel) -> ObjectivesInForce:
    """The model's newest objectives, or the defaults when it has none."""
    latest = SLOObjective.objects.filter(model=model).order_by("-version").first()
    if latest is None:
        return objectives_default()
    return ObjectivesInForce(
        objectives=slo.Objectives(
            availability=latest.availability,
            latency_ms=latest.latency_ms,
            latency_quantile=latest.latency_quantile,
        ),
        min_events=latest.min_events,
        version=latest.version,
    )


def production_models() -> QuerySet[RegisteredModel]:
    """The models with a version in Production: those held to SLOs."""
    return RegisteredModel.objects.filter(versions__stage=Stage.PRODUCTION).distinct().order_by("name")


def floor_minute(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


# --- the request log, aggregated per minute --------------------------------------------------------


def log_minutes(model: RegisteredModel, *, since: datetime, until: datetime, slow_ms: float) -> list[dict]:
    """Per minute of [since, until) with traffic: requests, errors (status "error"), slow (latency above
    `slow_ms`) and fallbacks of the model's production requests. One GROUP BY query.

    An answer of the rules while the breaker is open is a fallback, not an error: the caller got its
    decision. A model error is an error whatever was answered (the design's definition).
    """
    rows = (
        PredictionLog.objects.filter(
            model=model, environment=PRODUCTION, created_at__gte=since, created_at__lt=until
        )
        .annotate(at=Trunc("created_at", "minute", tzinfo=UTC))
        .order_by()
        .values("at")
        .annotate(
            requests=Count("id"),
            errors=Count("id", filter=Q(status=PredictionLog.Status.ERROR)),
            slow=Count("id", filter=Q(latency_ms__gt=slow_ms)),
            fallbacks=Count("id", filter=Q(fallback=True)),
        )
    )
    return list(rows)


def latency_quantile(model: RegisteredModel, *, since: datetime, until: datetime, q: float) -> float | None:
    """The exact q-quantile of the model's production latency over [since, until) (all versions together;
    the serving selectors give it per version). Linear interpolation, as numpy's percentile."""
    if connection.vendor == "postgresql":
        table = PredictionLog._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT percentile_cont(%s) WITHIN GROUP (ORDER BY latency_ms) FROM {table} "  # noqa: S608
                "WHERE model_id = %s AND environment = %s AND created_at >= %s AND created_at < %s",
                [q, model.pk, PRODUCTION, since, until],
            )
            value = cursor.fetchone()[0]
        return None if value is None else float(value)
    logs = PredictionLog.objects.filter(
        model=model, environment=PRODUCTION, created_at__gte=since, created_at__lt=until
    )
    latencies = np.fromiter(logs.values_list("latency_ms", flat=True), dtype=float)
    return float(np.percentile(latencies, q * 100)) if latencies.size else None


# --- the roll-up ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Buckets:
    """A model's minutes from `start` (oldest first, one entry per minute, zeros without traffic)."""

    start: datetime
    total: np.ndarray
    errors: np.ndarray
    slow: np.ndarray
    fallbacks: np.ndarray

    @property
    def minutes(self) -> int:
        return int(self.total.size)


def _minute_rows(model: RegisteredModel, *, start: datetime, end: datetime) -> np.ndarray:
    """The roll-up's minutes in [start, end) as an (n, 5) array: minute index from `start`, requests,
    errors, slow, fallbacks. On PostgreSQL the index is computed in SQL: 43,200 rows of integers read
    back without building a datetime each (which cost most of a tick)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            table = SLOMinute._meta.db_table
            cursor.execute(
                f"SELECT (extract(epoch FROM minute - %s) / 60)::int, requests, errors, slow, fallbacks "  # noqa: S608
                f"FROM {table} WHERE model_id = %s AND minute >= %s AND minute < %s",
                [start, model.pk, start, end],
            )
            rows = cursor.fetchall()
    else:
        rows = [
            (int((minute - start).total_seconds() // 60), *counts)
            for minute, *counts in SLOMinute.objects.filter(
                model=model, minute__gte=start, minute__lt=end
            ).values_list("minute", "requests", "errors", "slow", "fallbacks")
        ]
    return np.array(rows, dtype=np.int64).reshape(-1, 5)


def slo_buckets(model: RegisteredModel, *, now: datetime, minutes: int = slo.SLO_WINDOW_MINUTES) -> Buckets:
    """The last `minutes` minutes of the roll-up, the last one being the minute of `now` (still filling)."""
    end = floor_minute(now) + timedelta(minutes=1)
    start = end - timedelta(minutes=minutes)
    rows = _minute_rows(model, start=start, end=end)
    arrays = {}
    for column, name in enumerate(("total", "errors", "slow", "fallbacks"), start=1):
        arrays[name] = np.zeros(minutes, dtype=np.int64)
        arrays[name][rows[:, 0]] = rows[:, column]
    return Buckets(start=start, **arrays)


# --- what the home page and the lists show ----------------------------------------------------------


def slo_statuses(models: QuerySet[RegisteredModel]) -> list[dict]:
    """Each production model among `models` with its last SLO status (None: not evaluated yet), by name.
    Two queries whatever the number of models."""
    chosen = list(models.filter(versions__stage=Stage.PRODUCTION).distinct().order_by("name"))
    statuses = {status.model_id: status for status in SLOStatus.objects.filter(model__in=chosen)}
    return [{"model": model, "status": statuses.get(model.pk)} for model in chosen]


# --- the dashboard ----------------------------------------------------------------------------------

LATENCY_STEP = timedelta(hours=6)  # the p99 chart's buckets: 120 over 30 days


def slo_dashboard(user, model: RegisteredModel, *, now: datetime) -> dict:
    """Everything the SLO dashboard of `model` shows, measured now from the roll-up (as the tick does),
    with the exact p99 and the per-version figures read from the log, and the open SLO alerts."""
    from apps.alerts.selectors import alerts_open
    from apps.registry.selectors import production_version
    from apps.serving.selectors import timeseries, version_stats

    force = objectives_for(model)
    buckets = slo_buckets(model, now=now)
    report = slo.slo_report(
        buckets.total, buckets.errors, buckets.slow, objectives=force.objectives, min_events=force.min_events
    )
    until = floor_minute(now) + timedelta(minutes=1)
    since = until - timedelta(minutes=slo.SLO_WINDOW_MINUTES)
    has_traffic = report.requests > 0
    return {
        "objectives": force,
        "buckets": buckets,
        "report": report,
        "has_traffic": has_traffic,
        "since": since,
        "until": until,
        "production": production_version(model),
        "status": SLOStatus.objects.filter(model=model).first(),
        "alerts": list(alerts_open(user).filter(model=model, source=ALERT_SOURCE).order_by("severity", "id")),
        "p99_ms": latency_quantile(model, since=since, until=until, q=force.objectives.latency_quantile)
        if has_traffic
        else None,
        "versions": version_stats(model, since=since, until=until) if has_traffic else {},
        "latency_series": timeseries(
            model,
            since=since,
            until=until,
            step_seconds=int(LATENCY_STEP.total_seconds()),
        )
        if has_traffic
        else {},
    }
