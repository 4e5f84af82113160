"""Delivery of any outbox table: claim a message, send it with its idempotency key, record it.

Exactly one delivery holds a message at a time (a compare-and-set on its `claimed_until` lease), so a
retry, the sweep and a redelivered task racing each other send it once. A crash between sending and
recording can still send it again once the lease passes: the receiver drops that copy by its key
(`Idempotency-Key` on the webhook, the `Message-ID` of the mail). Governance's notifications and the
alerts' notifications both go through these functions (see `models.OutboxMessage`).
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

from .models import OutboxMessage

ATTEMPTS = 20
# Longer than one send can take (its timeout), so a live delivery never loses its claim.
SEND_TIMEOUT = 10
CLAIM_LEASE = timedelta(minutes=2)
# The first delivery is enqueued at the commit; the sweep leaves a new message alone this long.
FIRST_GRACE = timedelta(minutes=1)
# Once the sweep enqueued a delivery, it enqueues no other for this long (a worker outage piles nothing).
SCHEDULE_LEASE = timedelta(minutes=10)


class DeliveryFailed(Exception):
    """The mail server or the webhook refused or did not answer; try again in `retry_in` seconds."""

    def __init__(self, message: str, retry_in: float):
        super().__init__(message)
        self.retry_in = retry_in


def webhook_signature(body: bytes, secret: str) -> str:
    """`sha256=` and the hex HMAC-SHA256 of the body: the X-Hafnium-Signature header receivers check."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def retry_in(attempts: int) -> float:
    """Exponential backoff from OUTBOX_RETRY_SECONDS, at most ten minutes."""
    return min(settings.OUTBOX_RETRY_SECONDS * 2 ** max(attempts - 1, 0), 600.0)


def _claim(model: type[OutboxMessage], pk: int) -> OutboxMessage | None:
    now = timezone.now()
    free = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    claimed = model.objects.filter(free, pk=pk, sent_at__isnull=True, attempts__lt=ATTEMPTS).update(
        claimed_until=now + CLAIM_LEASE, attempts=F("attempts") + 1
    )
    return model.objects.get(pk=pk) if claimed else None


def _send(message: OutboxMessage) -> None:
    key = str(message.key)
    if message.channel == OutboxMessage.Channel.EMAIL:
        EmailMessage(
            message.subject,
            message.body,
            None,
            message.recipients,
            headers={"Message-ID": f"<{key}@hafnium-portal>", "X-Hafnium-Notification": key},
            connection=get_connection(timeout=SEND_TIMEOUT),
        ).send()
        return
    url_setting, secret_setting = message.webhook_settings
    url = getattr(settings, url_setting)
    if not url:
        raise ValueError(f"{url_setting} is not set any more")
    body = json.dumps(message.payload, sort_keys=True).encode()
    response = requests.post(
        url,
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-Hafnium-Signature": webhook_signature(body, getattr(settings, secret_setting)),
            "Idempotency-Key": key,
        },
        timeout=SEND_TIMEOUT,
    )
    response.raise_for_status()


def message_deliver(model: type[OutboxMessage], pk: int) -> bool:
    """Claim, send, record. False when it is sent already, used up its attempts, or another delivery
    holds it; DeliveryFailed (recorded on the row, with when to try again) when the send failed."""
    message = _claim(model, pk)
    if message is None:
        return False
    try:
        _send(message)
    except Exception as exc:
        wait = retry_in(message.attempts)
        error = f"{type(exc).__name__}: {exc}"[:2000]
        # The task retries in `wait`; the sweep stays away until a minute after that.
        model.objects.filter(pk=pk).update(
            last_error=error,
            claimed_until=None,
            next_attempt_at=timezone.now() + timedelta(seconds=wait) + FIRST_GRACE,
        )
        raise DeliveryFailed(error, wait) from exc
    model.objects.filter(pk=pk).update(sent_at=timezone.now(), claimed_until=None)
    return True


def _due(now) -> Q:
    scheduled = Q(next_attempt_at__isnull=True, created_at__lt=now - FIRST_GRACE) | Q(
        next_attempt_at__lte=now
    )
    free = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    return scheduled & free & Q(sent_at__isnull=True, attempts__lt=ATTEMPTS)


def messages_schedule_due(model: type[OutboxMessage], *, now=None, limit: int = 500) -> list[int]:
    """Sweep: enqueue a delivery (`model.deliver_task`) of each unsent message none is scheduled for.

    Each is claimed for scheduling with a compare-and-set on `next_attempt_at` first: the sweep run
    again, or twice at once, enqueues nothing more for it until SCHEDULE_LEASE passes.
    """
    now = now or timezone.now()
    scheduled = []
    for pk in list(model.objects.filter(_due(now)).values_list("pk", flat=True)[:limit]):
        if not model.objects.filter(_due(now), pk=pk).update(next_attempt_at=now + SCHEDULE_LEASE):
            continue
        if enqueue(model.deliver_task, pk):
            scheduled.append(pk)
        else:  # the broker is down: due again at the next sweep
            model.objects.filter(pk=pk).update(next_attempt_at=now)
    return scheduled
