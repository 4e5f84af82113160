"""Alerts: something needs a person (a breaker open, a rollback, drift, an SLO burning), and who heard of it.

One alert per (source, key) while it is not resolved: the database enforces it (a partial unique
constraint), so two processes raising the same alert at once make one row, and a repeat only counts.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.outbox.models import OutboxMessage


class Severity(models.TextChoices):
    PAGE = "page", "Page"  # wake someone: production is degraded now
    TICKET = "ticket", "Ticket"  # someone must look today
    INFO = "info", "Info"  # for the record; nobody is mailed


class State(models.TextChoices):
    FIRING = "firing", "Firing"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"


# The allowed moves. A resolved alert stays resolved: the same condition again raises a new alert.
TRANSITIONS = {
    State.FIRING: {State.ACKNOWLEDGED, State.RESOLVED},
    State.ACKNOWLEDGED: {State.RESOLVED},
    State.RESOLVED: set(),
}
OPEN_STATES = (State.FIRING, State.ACKNOWLEDGED)


class Alert(models.Model):
    source = models.CharField(max_length=60, help_text='who raises it, e.g. "serving.breaker"')
    key = models.CharField(
        max_length=200, help_text='what it is about within its source, e.g. "fraud-scorer:3"'
    )
    severity = models.CharField(max_length=10, choices=Severity.choices)
    title = models.CharField(max_length=300)
    detail = models.TextField(blank=True)
    model = models.ForeignKey(
        "registry.RegisteredModel", null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts"
    )
    link = models.CharField(max_length=500, blank=True, help_text="where to look: a portal path or a URL")
    state = models.CharField(max_length=15, choices=State.choices, default=State.FIRING)
    count = models.PositiveIntegerField(default=1, help_text="how many times it was raised while open")
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True, help_text="the latest note of whoever acknowledged or resolved it")

    class Meta:
        ordering = ["-last_seen", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "key"],
                condition=~Q(state="resolved"),
                name="alerts_one_open_alert_per_source_key",
            ),
        ]
        indexes = [models.Index(fields=["state", "severity"], name="alerts_state_severity")]

    def __str__(self) -> str:
        return f"{self.get_severity_display()}: {self.title}"

    @property
    def is_open(self) -> bool:
        return self.state != State.RESOLVED


class AlertNotification(OutboxMessage):
    """A mail or webhook call telling on-call about an alert (the outbox of alerts)."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="notifications")

    deliver_task = "apps.alerts.tasks.deliver_alert_notification"
    webhook_settings = ("ALERTS_WEBHOOK_URL", "ALERTS_WEBHOOK_SECRET")

    class Meta(OutboxMessage.Meta):
        pass
