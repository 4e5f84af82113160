"""Celery entry points of deployments: the controller's tick, one rollout's advance, the staging tests,
the `canary` alias. Each loads ids and calls a service; every one is safe to run twice or at once."""

from celery import shared_task
from django.conf import settings

from apps.registry.gateway import RegistryUnavailable

from . import services


@shared_task(acks_late=True)
def controller_tick() -> dict:
    """Beat, every DEPLOYMENTS_TICK_SECONDS: start and advance every active rollout."""
    return services.controller_tick()


@shared_task(acks_late=True)
def advance_rollout(rollout_id: int) -> int:
    """Advance one rollout now (a new rollout, a person's control) instead of at the next tick."""
    return services.rollout_advance(rollout_id=rollout_id)


@shared_task(acks_late=True, soft_time_limit=settings.DEPLOYMENTS_STAGING_TESTS_TIME_LIMIT,
             time_limit=settings.DEPLOYMENTS_STAGING_TESTS_TIME_LIMIT + 30)  # fmt: skip
def run_staging_tests(rollout_id: int, attempt: int) -> int:
    """One attempt of a staging deployment's tests (the controller enqueues it, and again if lost)."""
    results = services.staging_tests_run(rollout_id=rollout_id, attempt=attempt)
    services.rollout_advance(rollout_id=rollout_id)
    return len(results)


@shared_task(autoretry_for=(RegistryUnavailable,), retry_backoff=2, retry_backoff_max=60, max_retries=5)
def publish_canary_alias(rollout_id: int) -> int | None:
    return services.canary_alias_publish(rollout_id=rollout_id)
