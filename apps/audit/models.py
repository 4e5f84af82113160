"""The audit trail: append-only, hash-chained events written by every app."""

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
