"""Governance's notifications through the portal's one outbox mechanism (apps/outbox/delivery.py).

The claim, lease, idempotency key, signature and sweep are the outbox's; these names bind them to
governance's Notification table, for its tasks and its callers.
"""

from apps.outbox import delivery as outbox
from apps.outbox.delivery import ATTEMPTS as NOTIFICATION_ATTEMPTS
from apps.outbox.delivery import SCHEDULE_LEASE, DeliveryFailed
from apps.outbox.delivery import retry_in as notification_retry_in

from ..models import Notification

__all__ = [
    "NOTIFICATION_ATTEMPTS",
    "SCHEDULE_LEASE",
    "DeliveryFailed",
    "notification_deliver",
    "notification_retry_in",
    "notifications_schedule_due",
]


def notification_deliver(*, notification_id: int) -> bool:
    """Claim, send, record one notification (see `apps.outbox.delivery.message_deliver`)."""
    return outbox.message_deliver(Notification, notification_id)


def notifications_schedule_due(*, now=None, limit: int = 500) -> list[int]:
    """Sweep: enqueue a delivery of each unsent notification no delivery is scheduled for."""
    return outbox.messages_schedule_due(Notification, now=now, limit=limit)
