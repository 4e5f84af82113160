"""Celery entry points of serving: load ids, call a service; retries live here."""

from celery import shared_task
from django.conf import settings

from apps.registry import gateway
from apps.registry.models import ModelVersion
from hafnium_portal.enqueue import enqueue

from . import compile as scorer_compilation
from . import routing, services


@shared_task(
    acks_late=True,
    autoretry_for=(gateway.RegistryUnavailable,),
    max_retries=5,
    retry_backoff=10,
    retry_backoff_max=300,
    retry_jitter=True,
    time_limit=15 * 60,
    soft_time_limit=14 * 60,
)
def compile_scorer(version_id: int) -> dict | None:
    """Compile and log the fast scorer of a version (safe twice: the artifact's presence is the claim)."""
    version = ModelVersion.objects.select_related("model", "dataset").filter(pk=version_id).first()
    if version is None:
        return None
    return scorer_compilation.scorer_compile(version=version)


@shared_task(ignore_result=True, acks_late=False)
def publish_routing_tables() -> int:
    """Beat: every routing table in force, from PostgreSQL to Redis again (a revision Redis holds is kept)."""
    return routing.routes_publish_all()


@shared_task(ignore_result=True, acks_late=False)
def compile_missing_scorers() -> int:
    """Beat: compile the servable versions whose compilation at registration was lost (broker down)."""
    pending = scorer_compilation.versions_to_compile()
    for version_id in pending:
        enqueue("apps.serving.tasks.compile_scorer", version_id, task_id=f"compile-scorer-{version_id}")
    return len(pending)


@shared_task(acks_late=True, time_limit=10 * 60, soft_time_limit=9 * 60)
def logs_maintain() -> dict:
    """Prediction log days: partitions made ahead, old ones dropped (safe twice: what is done is skipped)."""
    done = services.logs_maintain(
        days_ahead=settings.SERVING_LOG_PARTITIONS_AHEAD, retention_days=settings.SERVING_LOG_RETENTION_DAYS
    )
    return {key: [str(day) for day in days] if isinstance(days, list) else days for key, days in done.items()}
