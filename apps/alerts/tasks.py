"""Celery entry points of alerts: deliver one notification to on-call; the sweep of undelivered ones.

Both are safe to run twice: a delivery claims its row first (apps/outbox/delivery.py).
"""

from celery import shared_task

from apps.outbox import delivery

from .models import AlertNotification

DELIVERY_RETRIES = 8


@shared_task(bind=True, max_retries=DELIVERY_RETRIES)
def deliver_alert_notification(self, notification_id: int) -> bool:
    """Send one mail or webhook call about an alert; a failure is recorded on it and retried with backoff."""
    try:
        return delivery.message_deliver(AlertNotification, notification_id)
    except delivery.DeliveryFailed as failure:
        raise self.retry(exc=failure, countdown=failure.retry_in) from failure


@shared_task
def deliver_pending_alert_notifications() -> list[int]:
    """Sweep (beat): undelivered alert notifications no delivery is scheduled for."""
    return delivery.messages_schedule_due(AlertNotification)
