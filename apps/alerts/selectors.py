"""Reads of alerts: the open ones, a user's filtered list, one alert's timeline, the banner and badge."""

from django.db.models import BooleanField, Count, ExpressionWrapper, Q, QuerySet, Window

from apps.audit.models import AuditEvent
from apps.registry.selectors import models_visible_to

from .models import OPEN_STATES, Alert, Severity, State


def alerts_visible_to(user) -> QuerySet[Alert]:
    """Alerts about a model the user sees, and alerts about no model (the portal itself)."""
    alerts = Alert.objects.select_related("model", "acknowledged_by", "resolved_by")
    if user is None or not user.is_authenticated:
        return alerts.none()
    if user.is_superuser:
        return alerts
    return alerts.filter(Q(model__isnull=True) | Q(model__in=models_visible_to(user)))


def alerts_open(user=None) -> QuerySet[Alert]:
    """Alerts firing or acknowledged, newest first: all of them (user None: a system caller) or those
    `user` sees."""
    alerts = Alert.objects.select_related("model") if user is None else alerts_visible_to(user)
    return alerts.filter(state__in=OPEN_STATES)


def alert_list(user, *, state: str = "", severity: str = "", source: str = "", model: str = "") -> QuerySet:
    """The alerts page and API: `state` "open" means firing or acknowledged; `model` a model's name."""
    alerts = alerts_visible_to(user)
    if state == "open":
        alerts = alerts.filter(state__in=OPEN_STATES)
    elif state:
        alerts = alerts.filter(state=state)
    if severity:
        alerts = alerts.filter(severity=severity)
    if source:
        alerts = alerts.filter(source=source)
    if model:
        alerts = alerts.filter(model__name=model)
    return alerts.order_by("-last_seen", "-id")


def alert_sources(user) -> list[str]:
    """The sources of the alerts a user sees (the filter's choices)."""
    return list(alerts_visible_to(user).order_by("source").values_list("source", flat=True).distinct())


def alert_timeline(alert: Alert) -> QuerySet[AuditEvent]:
    """Its audit events, oldest first: raised, acknowledged, resolved, with who and why."""
    return AuditEvent.objects.filter(object_type="alerts.alert", object_id=str(alert.pk)).order_by("pk")


BANNER_LIMIT = 20


def alerts_summary(user) -> dict:
    """The navigation badge and the banner of every page, in one query.

    `open_count`: the open alerts the user sees; `paging`: the page-severity alerts still firing
    (a breaker open, a rollback...), at most BANNER_LIMIT of them. A window count over the open alerts,
    with the firing pages sorted first, gives both from one read.
    """
    paging_first = Q(severity=Severity.PAGE, state=State.FIRING)
    rows = list(
        alerts_open(user)
        .annotate(
            total=Window(Count("id")), paging=ExpressionWrapper(paging_first, output_field=BooleanField())
        )
        .order_by("-paging", "-last_seen", "-id")[:BANNER_LIMIT]
    )
    return {
        "open_count": rows[0].total if rows else 0,
        "paging": [row for row in rows if row.paging],
    }
