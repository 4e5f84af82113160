"""Reads of the audit trail, scoped to the user who asks (all of it, or nothing)."""

from datetime import date, datetime, time, timedelta

from django.db.models import QuerySet
from django.utils import timezone

from .models import AuditEvent, VerificationRun
from .permissions import can_read_audit


def events_visible_to(user) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.all() if can_read_audit(user) else AuditEvent.objects.none()


def _start_of(day: date) -> datetime:
    """Midnight at the start of `day` in the portal's time zone."""
    return timezone.make_aware(datetime.combine(day, time.min))


def event_list(
    user,
    *,
    action: str = "",
    actor: str = "",
    object_type: str = "",
    object_id: str = "",
    date_from: date | None = None,
    date_to: date | None = None,
    text: str = "",
) -> QuerySet[AuditEvent]:
    """Events matching every filter given, newest first. Dates are whole days in the portal's time
    zone, both ends included; an action ending in `*` matches by prefix ("promotion.*")."""
    events = events_visible_to(user)
    if action.endswith("*"):
        events = events.filter(action__startswith=action.rstrip("*"))
    elif action:
        events = events.filter(action=action)
    if actor:
        events = events.filter(actor=actor)
    if object_type:
        events = events.filter(object_type=object_type)
    if object_id:
        events = events.filter(object_id=object_id)
    if date_from:
        events = events.filter(at__gte=_start_of(date_from))
    if date_to:
        events = events.filter(at__lt=_start_of(date_to + timedelta(days=1)))
    if text:
        events = events.filter(object_repr__icontains=text)
    return events.order_by("-id")


def action_names(user) -> list[str]:
    """The actions recorded so far, for the filter's suggestions (one query on the action index)."""
    return list(events_visible_to(user).order_by("action").values_list("action", flat=True).distinct())


def object_types(user) -> list[str]:
    return list(
        events_visible_to(user)
        .exclude(object_type="")
        .order_by("object_type")
        .values_list("object_type", flat=True)
        .distinct()
    )


def latest_verification(user) -> VerificationRun | None:
    """The newest "Verify chain" run, shown (and polled while it runs) on the audit page."""
    return VerificationRun.objects.order_by("-id").first() if can_read_audit(user) else None
