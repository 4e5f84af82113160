"""Celery entry points of governance: publication of approved promotions, expiry, the notification outbox.

Every task is safe to run twice (its service claims the work first) and retries a bounded number of
times; the sweeps resume what an outage left, without piling up copies (a schedule marker per row).
"""

from celery import shared_task

from apps.registry.gateway import RegistryUnavailable

from . import services
from .models import PromotionRequest

PUBLISH_RETRIES = 6  # 5 s, 10 s ... 160 s: about five minutes, then the sweep takes over
NOTIFICATION_RETRIES = 8


@shared_task(bind=True, max_retries=PUBLISH_RETRIES)
def publish_promotion(self, request_id: int) -> bool:
    """Set the MLflow alias of an approved request, retrying while MLflow is away; then complete it."""
    request = PromotionRequest.objects.select_related("version__model").filter(pk=request_id).first()
    if request is None:
        return False
    try:
        return services.promotion_publish(request=request)
    except RegistryUnavailable as exc:
        countdown = min(5 * 2**self.request.retries, 300)
        services.promotion_publish_postpone(request_id=request_id, seconds=countdown)
        raise self.retry(exc=exc, countdown=countdown) from exc


@shared_task
def publish_pending_promotions() -> list[int]:
    """Sweep (beat): approved requests whose publication is not scheduled (lost, or out of retries)."""
    return services.promotions_publish_schedule()


@shared_task
def expire_promotions() -> int:
    return services.promotions_expire()


@shared_task(bind=True, max_retries=NOTIFICATION_RETRIES)
def deliver_notification(self, notification_id: int) -> bool:
    """Send one mail or webhook call of the outbox; a failure is recorded on it and retried with backoff."""
    try:
        return services.notification_deliver(notification_id=notification_id)
    except services.DeliveryFailed as failure:
        raise self.retry(exc=failure, countdown=failure.retry_in) from failure


@shared_task
def deliver_pending_notifications() -> list[int]:
    """Sweep (beat): unsent notifications no delivery is scheduled for (lost to an outage, out of retries)."""
    return services.notifications_schedule_due()
