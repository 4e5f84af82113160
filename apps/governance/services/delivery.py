"""Delivery of the notification outbox: claim a notification, send it with its idempotency key, record it.

Exactly one delivery holds a notification at a time (a compare-and-set on its `claimed_until` lease),
so a retry, the sweep and a redelivered task racing each other send it once. A crash between sending
and recording can still send it again once the lease passes: the receiver drops that copy by its key
(`Idempotency-Key` on the webhook, the `Message-ID` of the mail).
"""

import hashlib
import hmac
import json
from datetime import timedelta

import requests
from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db.models import F, Q
from django.utils import timezone

from hafnium_portal.enqueue import enqueue

from ..models import Notification

NOTIFICATION_ATTEMPTS = 20
# Longer than one send can take (its timeout), so a live delivery never loses its claim.
SEND_TIMEOUT = 10
CLAIM_LEASE = timedelta(minutes=2)
# The first delivery is enqueued at the commit; the sweep leaves a new notification alone this long.
FIRST_GRACE = timedelta(minutes=1)
# Once the sweep enqueued a delivery, it enqueues no other for this long (a worker outage piles nothing).
SCHEDULE_LEASE = timedelta(minutes=10)
DELIVER_TASK = "apps.governance.tasks.deliver_notification"


class DeliveryFailed(Exception):
    """The mail server or the webhook refused or did not answer; try again in `retry_in` seconds."""

    def __init__(self, message: str, retry_in: float):
        super().__init__(message)
        self.retry_in = retry_in


def webhook_signature(body: bytes) -> str:
    return "sha256=" + hmac.new(settings.GOVERNANCE_WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()


def notification_retry_in(attempts: int) -> float:
    """Exponential backoff from GOVERNANCE_NOTIFICATION_RETRY_SECONDS, at most ten minutes."""
    return min(settings.GOVERNANCE_NOTIFICATION_RETRY_SECONDS * 2 ** max(attempts - 1, 0), 600.0)


def _claim(notification_id: int) -> Notification | None:
    now = timezone.now()
    free = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    claimed = Notification.objects.filter(
        free, pk=notification_id, sent_at__isnull=True, attempts__lt=NOTIFICATION_ATTEMPTS
    ).update(claimed_until=now + CLAIM_LEASE, attempts=F("attempts") + 1)
    return Notification.objects.get(pk=notification_id) if claimed else None


def _send(notification: Notification) -> None:
    key = str(notification.key)
    if notification.channel == Notification.Channel.EMAIL:
        EmailMessage(
            notification.subject,
            notification.body,
            None,
            notification.recipients,
            headers={"Message-ID": f"<{key}@hafnium-portal>", "X-Hafnium-Notification": key},
            connection=get_connection(timeout=SEND_TIMEOUT),
        ).send()
    else:
        body = json.dumps(notification.payload, sort_keys=True).encode()
        response = requests.post(
            settings.GOVERNANCE_WEBHOOK_URL,
            data=body,
            headers={
                "Content-Type": "application/json",
                "X-Hafnium-Signature": webhook_signature(body),
                "Idempotency-Key": key,
            },
            timeout=SEND_TIMEOUT,
        )
        response.raise_for_status()


def notification_deliver(*, notification_id: int) -> bool:
    """Claim, send, record. False when it is sent already, used up its attempts, or another delivery
    holds it; DeliveryFailed (recorded on the row, with when to try again) when the send failed."""
    notification = _claim(notification_id)
    if notification is None:
        return False
    try:
        _send(notification)
    except Exception as exc:
        retry_in = notification_retry_in(notification.attempts)
        error = f"{type(exc).__name__}: {exc}"[:2000]
        # The task retries in `retry_in`; the sweep stays away until a minute after that.
        Notification.objects.filter(pk=notification_id).update(
            last_error=error,
            claimed_until=None,
            next_attempt_at=timezone.now() + timedelta(seconds=retry_in) + FIRST_GRACE,
        )
        raise DeliveryFailed(error, retry_in) from exc
    Notification.objects.filter(pk=notification_id).update(sent_at=timezone.now(), claimed_until=None)
    return True


def _due(now) -> Q:
    scheduled = Q(next_attempt_at__isnull=True, created_at__lt=now - FIRST_GRACE) | Q(
        next_attempt_at__lte=now
    )
    free = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    return scheduled & free & Q(sent_at__isnull=True, attempts__lt=NOTIFICATION_ATTEMPTS)


def notifications_schedule_due(*, now=None, limit: int = 500) -> list[int]:
    """Sweep: enqueue a delivery of each unsent notification no delivery is scheduled for.

    Each is claimed for scheduling with a compare-and-set on `next_attempt_at` first: the sweep run
    again, or twice at once, enqueues nothing more for it until SCHEDULE_LEASE passes.
    """
    now = now or timezone.now()
    scheduled = []
    for notification_id in list(Notification.objects.filter(_due(now)).values_list("pk", flat=True)[:limit]):
        if not Notification.objects.filter(_due(now), pk=notification_id).update(
            next_attempt_at=now + SCHEDULE_LEASE
        ):
            continue
        if enqueue(DELIVER_TASK, notification_id):
            scheduled.append(notification_id)
        else:  # the broker is down: due again at the next sweep
            Notification.objects.filter(pk=notification_id).update(next_attempt_at=now)
    return scheduled
