"""Celery entry points of the SLOs."""

from celery import shared_task

from .services.slo import slo_evaluate


@shared_task(acks_late=True, soft_time_limit=50, time_limit=55)
def evaluate_slos() -> int:
    """Beat, every minute: roll the request log up and evaluate every production model's SLOs (burn-rate
    alerts fire and resolve). Safe to run twice: the minute is claimed first. The number of models."""
    return len(slo_evaluate())
