"""Drift run schedules: one django-celery-beat entry per production model, which admins then edit.

The sweep creates a model's entry once (every DRIFT_RUN_INTERVAL_MINUTES) and never touches it again,
so what an administrator set in the admin (the interval, a crontab, disabled) stands. It also resumes
runs an outage left behind: queued ones nobody picked up, running ones whose delivery died (its lease
ended); their claim is a compare-and-set, so a copy that runs twice does nothing the second time.
"""

import json
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from apps.audit.services import audit_record
from apps.registry.models import RegisteredModel, Stage
from hafnium_portal.enqueue import enqueue

from ..models import DriftRun

SCHEDULED_TASK = "apps.monitoring.tasks_drift.drift_run_scheduled"
STALE_QUEUED = timedelta(minutes=5)


def schedule_name(model: RegisteredModel) -> str:
    return f"drift run: {model.name}"


@transaction.atomic
def drift_schedule_ensure(*, model: RegisteredModel) -> PeriodicTask:
    """The model's beat entry, created (enabled, every DRIFT_RUN_INTERVAL_MINUTES) if it has none."""
    existing = PeriodicTask.objects.filter(name=schedule_name(model)).first()
    if existing is not None:
        return existing
    interval, _ = IntervalSchedule.objects.get_or_create(
        every=settings.DRIFT_RUN_INTERVAL_MINUTES, period=IntervalSchedule.MINUTES
    )
    task = PeriodicTask.objects.create(
        name=schedule_name(model),
        task=SCHEDULED_TASK,
        interval=interval,
        kwargs=json.dumps({"model_id": model.pk}),
        description=f"Drift run of {model.name}'s production version (edit the schedule here).",
    )
    audit_record(
        actor=None,
        action="monitoring.drift_schedule_created",
        obj=task,
        after={"model": model.name, "every_minutes": settings.DRIFT_RUN_INTERVAL_MINUTES},
    )
    return task


def drift_schedules_sweep() -> dict:
    """Beat: a schedule for each production model without one; re-enqueue the runs an outage left."""
    created = 0
    for model in RegisteredModel.objects.filter(versions__stage=Stage.PRODUCTION).distinct():
        if not PeriodicTask.objects.filter(name=schedule_name(model)).exists():
            drift_schedule_ensure(model=model)
            created += 1
    now = timezone.now()
    # One filter, not a union: SQLite (make run's database) refuses the model's ordering in a union.
    resumed = list(
        DriftRun.objects.filter(
            Q(status=DriftRun.Status.QUEUED, created_at__lt=now - STALE_QUEUED)
            | Q(status=DriftRun.Status.RUNNING, claimed_until__lt=now)
        ).values_list("pk", flat=True)
    )
    for pk in resumed:
        enqueue("apps.monitoring.tasks_drift.drift_run_execute", pk, task_id=f"drift-run-{pk}-resume")
    return {"schedules_created": created, "runs_resumed": resumed}
