"""Celery entry points of governance: publication of approved promotions, expiry, mail and webhook."""

import hashlib
import hmac
import json

import requests
from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail

from apps.registry.gateway import RegistryUnavailable

from . import services
from .models import PromotionRequest


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


@shared_task(autoretry_for=(OSError,), retry_backoff=10, max_retries=8)
def send_email(subject: str, body: str, recipients: list[str]) -> int:
    return send_mail(subject, body, None, recipients)


def webhook_signature(body: bytes) -> str:
    return "sha256=" + hmac.new(settings.GOVERNANCE_WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()


@shared_task(autoretry_for=(requests.RequestException,), retry_backoff=10, max_retries=8)
def post_webhook(payload: dict) -> int:
    """POST the event as JSON, signed with HMAC-SHA256 of the body (header X-Hafnium-Signature)."""
    body = json.dumps(payload, sort_keys=True).encode()
    response = requests.post(
        settings.GOVERNANCE_WEBHOOK_URL,
        data=body,
        headers={"Content-Type": "application/json", "X-Hafnium-Signature": webhook_signature(body)},
        timeout=10,
    )
    response.raise_for_status()
    return response.status_code
