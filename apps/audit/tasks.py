"""Celery entry points of the audit trail: "Verify chain" runs and the periodic signed checkpoint."""

import logging

from celery import shared_task

from . import services

log = logging.getLogger(__name__)


@shared_task(acks_late=True, max_retries=0)
def verify_trail(run_id: int) -> bool:
    """Verify the whole trail for a run; a second delivery of the same run finds it claimed."""
    return services.verification_run(run_id=run_id)


@shared_task(acks_late=True, autoretry_for=(OSError,), retry_backoff=30, retry_backoff_max=300, max_retries=5)
def write_checkpoint() -> int | None:
    """Beat, every AUDIT_CHECKPOINT_INTERVAL: sign the chain's head to the checkpoint sinks.

    Safe to run twice: it signs the head as it is (a second run with no new events writes nothing).
    A sink that cannot be written (webhook down, volume gone) is retried with backoff (OSError covers
    requests' errors); a trail that no longer extends the last checkpoint raises Conflict, logged.
    """
    checkpoint = services.audit_checkpoint()
    return None if checkpoint is None else checkpoint["event_id"]
