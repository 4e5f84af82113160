"""Celery entry points of governance: publication of approved promotions, expiry, the notification outbox."""

from celery import shared_task

from apps.registry.gateway import RegistryUnavailable

from . import services
from .models import Notification, PromotionRequest


@shared_task(autoretry_for=(RegistryUnavailable,), retry_backoff=5, retry_backoff_max=300, max_retries=None)
def publish_promotion(request_id: int) -> bool:
    """Set the MLflow alias of an approved request, retrying until MLflow takes it; then complete it."""
    request = PromotionRequest.objects.select_related("version__model").filter(pk=request_id).first()
    return request is not None and services.promotion_publish(request=request)


@shared_task
def publish_pending_promotions() -> int:
    """Sweep (beat): approved requests whose publication was never enqueued or has not finished."""
    pending = PromotionRequest.objects.filter(status=PromotionRequest.Status.PUBLISHING).values_list(
        "pk", flat=True
    )
    for request_id in pending:
        publish_promotion.delay(request_id)
    return len(pending)


@shared_task
def expire_promotions() -> int:
    return services.promotions_expire()


@shared_task(autoretry_for=(Exception,), retry_backoff=10, retry_backoff_max=600, max_retries=8)
def deliver_notification(notification_id: int) -> bool:
    """Send one mail or webhook call of the outbox; failures are recorded on it and retried."""
    notification = Notification.objects.filter(pk=notification_id, sent_at__isnull=True).first()
    return notification is not None and services.notification_deliver(notification=notification)


@shared_task
def deliver_pending_notifications() -> int:
    """Sweep (beat): notifications whose delivery was never enqueued or ran out of retries for now."""
    pending = services.notifications_pending()
    for notification_id in pending:
        deliver_notification.delay(notification_id)
    return len(pending)
