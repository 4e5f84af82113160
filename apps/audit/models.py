"""The audit trail: append-only, hash-chained events written by every app."""

from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    """One thing that happened. Never updated or deleted (a PostgreSQL trigger refuses both).

    The actor is kept by id and name, not by foreign key: deleting a user must not touch the trail.
    `hash` covers `prev_hash` and the event's canonical JSON, so any edit breaks the chain from there.
    """

    at = models.DateTimeField(db_index=True)
    actor_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    actor = models.CharField(max_length=150, blank=True, help_text="username, or 'system'")
    action = models.CharField(max_length=100, db_index=True)
    object_type = models.CharField(max_length=100, blank=True, db_index=True)
    object_id = models.CharField(max_length=100, blank=True)
    object_repr = models.CharField(max_length=300, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["object_type", "object_id"])]

    def __str__(self) -> str:
        return f"#{self.pk} {self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.object_repr}"


class VerificationRun(models.Model):
    """One check of the whole trail ("Verify chain"), run by a Celery task with its progress kept here.

    Not part of the trail (it is updated as it goes): the trail's own event for it is
    `audit.verification_requested`. A task claims its run with a compare-and-set (queued -> running, or
    a running one whose progress stalled), so a redelivered task never runs it twice at once.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        INTACT = "intact", "Intact"
        BROKEN = "broken", "Broken"
        FAILED = "failed", "Failed"

    ACTIVE = (Status.QUEUED, Status.RUNNING)
    # Allowed transitions (a stalled RUNNING run may be claimed again: running -> running).
    TRANSITIONS = {
        Status.QUEUED: {Status.RUNNING},
        Status.RUNNING: {Status.RUNNING, Status.INTACT, Status.BROKEN, Status.FAILED},
    }

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    progressed_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    claims = models.PositiveIntegerField(default=0, help_text="times a task claimed it")
    total = models.BigIntegerField(default=0, help_text="events in the trail when the run started")
    checked = models.BigIntegerField(default=0)
    broken_event_id = models.BigIntegerField(null=True, blank=True)
    head_id = models.BigIntegerField(null=True, blank=True)
    checkpoint_event_id = models.BigIntegerField(null=True, blank=True)
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"verification #{self.pk} ({self.status})"

    @property
    def active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def intact_before(self) -> int:
        return max(self.checked - 1, 0)
