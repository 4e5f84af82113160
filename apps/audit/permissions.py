"""Who may read the audit trail: holders of `audit.view_auditevent`. Pages and API call the same helpers."""

from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404

from .models import AuditEvent, VerificationRun

READ_PERMISSION = "audit.view_auditevent"


def can_read_audit(user) -> bool:
    return user.is_authenticated and user.has_perm(READ_PERMISSION)


def check_can_read_audit(user) -> None:
    if not can_read_audit(user):
        raise PermissionDenied("The audit trail is open to Compliance, Model Risk and managers.")


def event_for_user(user, pk: int) -> AuditEvent:
    check_can_read_audit(user)
    return get_object_or_404(AuditEvent, pk=pk)


def verification_for_user(user, pk: int) -> VerificationRun:
    check_can_read_audit(user)
    return get_object_or_404(VerificationRun, pk=pk)
