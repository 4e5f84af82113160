"""Alerts' card on the home page (registered in AlertsConfig.ready): open alerts, for those who respond."""

from django.db.models import Case, Count, IntegerField, Value, When, Window

from apps.accounts.home import card_register

from .models import Severity, State
from .permissions import may_respond
from .selectors import alerts_open

SHOWN = 5  # rows the card lists; the rest are a link away
URGENCY = Case(
    When(severity=Severity.PAGE, then=Value(0)),
    When(severity=Severity.TICKET, then=Value(1)),
    default=Value(2),
    output_field=IntegerField(),
)


def open_alerts(user) -> dict | None:
    """Open alerts the user sees, firing before acknowledged, pages first: one query (a window count)."""
    if not may_respond(user):
        return None
    rows = list(
        alerts_open(user)
        .annotate(total=Window(Count("id")), urgency=URGENCY)
        .order_by(
            Case(When(state=State.FIRING, then=Value(0)), default=Value(1)), "urgency", "-last_seen", "-id"
        )[:SHOWN]
    )
    return {"open_alerts": rows, "open_alerts_total": rows[0].total if rows else 0}


def register() -> None:
    card_register(template="alerts/home/_open_alerts.html", context=open_alerts, order=5)
