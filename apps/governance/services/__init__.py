"""Governance actions, one module per concern: the policy, evidence, requests, decisions, delivery.

Each action runs in one transaction, checks its rules (separation of duties among them), writes its
audit event in the same transaction and schedules notifications and tasks after the commit. The names
below are the package's public face; other apps and the tasks import them from here.
"""

from hafnium_portal.errors import Conflict, DomainError

from ..selectors import evidence_of, policy_current, prechecks_for
from .decisions import (
    promotion_approve,
    promotion_publish,
    promotion_publish_postpone,
    promotion_reject,
    promotions_publish_schedule,
    promotions_supersede,
)
from .delivery import (
    NOTIFICATION_ATTEMPTS,
    DeliveryFailed,
    notification_deliver,
    notification_retry_in,
    notifications_schedule_due,
)
from .evidence import evidence_refresh, evidence_refresh_for_model
from .policy import policy_publish, policy_validate
from .requests import promotion_comment, promotion_request_create, promotion_withdraw, promotions_expire

__all__ = [
    "NOTIFICATION_ATTEMPTS",
    "Conflict",
    "DeliveryFailed",
    "DomainError",
    "evidence_of",
    "evidence_refresh",
    "evidence_refresh_for_model",
    "notification_deliver",
    "notification_retry_in",
    "notifications_schedule_due",
    "policy_current",
    "policy_publish",
    "policy_validate",
    "prechecks_for",
    "promotion_approve",
    "promotion_comment",
    "promotion_publish",
    "promotion_publish_postpone",
    "promotion_reject",
    "promotion_request_create",
    "promotion_withdraw",
    "promotions_expire",
    "promotions_publish_schedule",
    "promotions_supersede",
]
