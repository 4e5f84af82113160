"""SLO actions: setting a model's objectives, rolling the request log up per minute, and the evaluation
tick that measures budgets and burn rates and fires and resolves the burn-rate alerts.

The tick (beat, every minute) is safe to run twice: it claims its minute with a compare-and-set first,
the roll-up rewrites whole minutes (never adds), and alerts are deduplicated on (source, key) by the
alerts app, so a redelivered or overlapping tick changes nothing.
"""

import math
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Max, Min, Q
from django.urls import reverse
from django.utils import timezone

from apps.alerts.services import alert_raise, alert_resolve
from apps.audit.services import audit_record
from apps.registry.models import RegisteredModel
from apps.serving.models import PredictionLog
from hafnium_portal.errors import DomainError

from .. import slo
from ..models import SLOMinute, SLOObjective, SLOStatus, SLOTick
from ..selectors_slo import (
    ALERT_SOURCE,
    PRODUCTION,
    floor_minute,
    log_minutes,
    objectives_for,
    production_models,
    slo_buckets,
)

SLOS = ("availability", "latency")
# A log batch committed out of id order (two writers) lands in these last minutes: they are re-read
# every tick, so such a batch is counted even though its ids are below the watermark.
LATE_COMMIT = timedelta(minutes=5)
WINDOW = timedelta(minutes=slo.SLO_WINDOW_MINUTES)
KEEP = WINDOW + timedelta(days=1)  # minutes older than this are deleted from the roll-up


# --- objectives -------------------------------------------------------------------------------------


def slo_objective_validate(
    *, availability: float, latency_ms: float, latency_quantile: float, min_events: int
) -> None:
    """Raise DomainError, saying why, for objectives that cannot be met or measured."""
    try:
        slo.Objectives(availability=availability, latency_ms=latency_ms, latency_quantile=latency_quantile)
    except ValueError as exc:
        raise DomainError(str(exc)) from exc
    if not (math.isfinite(latency_ms) and latency_ms > 0):
        raise DomainError("The latency objective must be a positive number of milliseconds.")
    if min_events < 1:
        raise DomainError("A burn-rate rule needs at least one request in its windows.")


def slo_objective_set(
    *,
    actor,
    model: RegisteredModel,
    availability: float,
    latency_ms: float,
    latency_quantile: float = 0.99,
    min_events: int = 100,
    note: str = "",
) -> SLOObjective:
    """A new version of the model's objectives (the old ones stay, for the record); audited."""
    slo_objective_validate(
        availability=availability,
        latency_ms=latency_ms,
        latency_quantile=latency_quantile,
        min_events=min_events,
    )
    with transaction.atomic():
        RegisteredModel.objects.select_for_update().filter(pk=model.pk).first()  # one version at a time
        latest = SLOObjective.objects.filter(model=model).aggregate(Max("version"))["version__max"] or 0
        objective = SLOObjective.objects.create(
            model=model,
            version=latest + 1,
            availability=availability,
            latency_ms=latency_ms,
            latency_quantile=latency_quantile,
            min_events=min_events,
            note=note,
            created_by=actor if getattr(actor, "is_authenticated", False) else None,
        )
        audit_record(
            actor=actor,
            action="monitoring.slo_objective_set",
            obj=objective,
            after={
                "model": model.name,
                "version": objective.version,
                "availability": availability,
                "latency_ms": latency_ms,
                "latency_quantile": latency_quantile,
                "min_events": min_events,
                "note": note,
            },
        )
    return objective


# --- the roll-up ------------------------------------------------------------------------------------


def slo_rollup(*, now: datetime) -> int:
    """Rewrite the minutes of the production request log that changed since the last tick; the number
    of minutes written.

    New log rows are found by id above the watermark (the primary key's index, not a scan); for each
    model they touch, every minute from the oldest new row on is re-aggregated from the log and
    upserted whole, so running this twice writes the same rows. The last minutes are re-read anyway
    (LATE_COMMIT). Serialised on the tick's row: two ticks never interleave their watermarks.
    """
    oldest = floor_minute(now) - WINDOW
    with transaction.atomic():
        tick = SLOTick.objects.select_for_update().get_or_create(pk=1)[0]
        newest = PredictionLog.objects.aggregate(Max("id"))["id__max"] or 0
        touched = dict(
            PredictionLog.objects.filter(
                id__gt=tick.last_log_id, id__lte=newest, environment=PRODUCTION, created_at__gte=oldest
            )
            .order_by()
            .values("model_id")
            .annotate(since=Min("created_at"))
            .values_list("model_id", "since")
        )
        recent = floor_minute(now - LATE_COMMIT)
        # Production models (their last minutes), and any model the new rows belong to.
        models = {model.pk: model for model in production_models()}
        models.update({model.pk: model for model in RegisteredModel.objects.filter(pk__in=touched)})
        written = 0
        for model in models.values():
            since = floor_minute(min(touched.get(model.pk, recent), recent))
            slow_ms = objectives_for(model).objectives.latency_ms
            rows = log_minutes(model, since=since, until=now + timedelta(minutes=1), slow_ms=slow_ms)
            SLOMinute.objects.bulk_create(
                [
                    SLOMinute(
                        model=model,
                        minute=row["at"],
                        requests=row["requests"],
                        errors=row["errors"],
                        slow=row["slow"],
                        fallbacks=row["fallbacks"],
                    )
                    for row in rows
                ],
                update_conflicts=True,
                unique_fields=["model", "minute"],
                update_fields=["requests", "errors", "slow", "fallbacks"],
            )
            written += len(rows)
        SLOTick.objects.filter(pk=tick.pk).update(last_log_id=max(newest, tick.last_log_id))
        SLOMinute.objects.filter(minute__lt=floor_minute(now) - KEEP).delete()
    return written


# --- evaluation -------------------------------------------------------------------------------------


def _finite(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _rule_row(name: str, result: slo.RuleResult) -> dict:
    return {
        "slo": name,
        "rule": result.rule.name,
        "severity": result.rule.severity,
        "factor": result.rule.factor,
        "long_minutes": result.rule.long_minutes,
        "short_minutes": result.rule.short_minutes,
        "state": result.state,
        "burn_long": _finite(result.burn_long),
        "burn_short": _finite(result.burn_short),
        "requests_long": result.requests_long,
        "requests_short": result.requests_short,
        "reason": result.reason,
    }


def _alert_key(model: RegisteredModel, name: str, severity: str) -> str:
    return f"{model.name}:{name}:{severity}"


def _alerts_apply(model: RegisteredModel, name: str, results, objective: float) -> None:
    """Fire or resolve the page and the ticket of one SLO of one model from its rules' states.

    A page supersedes the ticket of the same SLO (one alert for one burn). An alert resolves when every
    rule of its severity is back under its factor; a rule that cannot be judged for low traffic neither
    fires nor resolves: what is open stays open until traffic says otherwise or a person resolves it.
    """
    link = reverse("monitoring:slo-dashboard", args=[model.name])
    what = "error budget" if name == "availability" else "latency budget"
    by_severity = {
        severity: [result for result in results if result.rule.severity == severity]
        for severity in (slo.PAGE, slo.TICKET)
    }
    paging = any(result.firing for result in by_severity[slo.PAGE])
    for severity, rules in by_severity.items():
        key = _alert_key(model, name, severity)
        firing = [result for result in rules if result.firing]
        if firing and not (severity == slo.TICKET and paging):
            alert_raise(
                source=ALERT_SOURCE,
                key=key,
                severity=severity,
                title=f"{model.name}: {what} burning ({', '.join(result.rule.name for result in firing)})",
                detail=(
                    f"The {name} SLO of {model.name} (objective {objective:g} over 30 days) is burning its "
                    f"{what} too fast: " + "; ".join(result.reason for result in firing) + "."
                ),
                model=model,
                link=link,
            )
        elif all(result.state == slo.OK for result in rules) or (firing and severity == slo.TICKET):
            note = (
                "superseded by the page of the same SLO"
                if firing
                else "burn rates back under their thresholds: " + "; ".join(r.reason for r in rules)
            )
            alert_resolve(source=ALERT_SOURCE, key=key, note=note)


def slo_evaluate_model(*, model: RegisteredModel, now: datetime) -> SLOStatus:
    """Measure one model's SLOs over 30 days from the roll-up, record its status, fire/resolve alerts."""
    force = objectives_for(model)
    buckets = slo_buckets(model, now=now)
    report = slo.slo_report(
        buckets.total, buckets.errors, buckets.slow, objectives=force.objectives, min_events=force.min_events
    )
    rules = [_rule_row("availability", result) for result in report.availability_alerts] + [
        _rule_row("latency", result) for result in report.latency_alerts
    ]
    with transaction.atomic():
        status, _ = SLOStatus.objects.update_or_create(
            model=model,
            defaults={
                "evaluated_at": now,
                "objectives": force.as_dict(),
                "requests": report.requests,
                "errors": report.errors,
                "slow": report.slow,
                "availability": _finite(report.availability),
                "availability_budget": _finite(report.availability_budget.remaining),
                "latency_budget": _finite(report.latency_budget.remaining),
                "alert": report.alert or "",
                "low_traffic": report.low_traffic,
                "rules": rules,
            },
        )
        _alerts_apply(model, "availability", report.availability_alerts, force.objectives.availability)
        _alerts_apply(model, "latency", report.latency_alerts, force.objectives.latency_quantile)
    return status


def slo_tick_claim(*, now: datetime) -> bool:
    """Claim the evaluation of `now`'s minute (compare-and-set): False when a tick already has it."""
    minute = floor_minute(now)
    SLOTick.objects.get_or_create(pk=1)
    unclaimed = Q(minute__isnull=True) | Q(minute__lt=minute)
    return SLOTick.objects.filter(unclaimed, pk=1).update(minute=minute) == 1


def slo_evaluate(*, now: datetime | None = None) -> list[SLOStatus]:
    """The tick: claim the minute, roll the log up, evaluate every production model ([] if claimed)."""
    now = now or timezone.now()
    if not slo_tick_claim(now=now):
        return []
    slo_rollup(now=now)
    statuses = [slo_evaluate_model(model=model, now=now) for model in production_models()]
    # A model that left production takes its status and its open SLO alerts with it.
    for status in SLOStatus.objects.exclude(model__in=production_models()).select_related("model"):
        for name in SLOS:
            for severity in (slo.PAGE, slo.TICKET):
                alert_resolve(
                    source=ALERT_SOURCE,
                    key=_alert_key(status.model, name, severity),
                    note="the model has no version in Production any more",
                )
        status.delete()
    return statuses
