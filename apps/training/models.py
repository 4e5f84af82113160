"""Training runs: every attempt to train a model, passed or failed, with the reason."""

from django.conf import settings
from django.db import models


class TrainingRun(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running"
        REGISTERED = "registered", "Passed and registered"
        FAILED_GATE = "failed_gate", "Failed the quality gate"
        ERROR = "error", "Failed with an error"

    model_name = models.CharField(max_length=200)
    dataset = models.ForeignKey("registry.DatasetVersion", null=True, on_delete=models.PROTECT)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RUNNING)
    reason = models.TextField(blank=True)
    mlflow_run_id = models.CharField(max_length=64, blank=True)
    version = models.ForeignKey("registry.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL)
    metrics = models.JSONField(default=dict, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    # The task id (or the caller's key): a second delivery of the same task finds this run.
    idempotency_key = models.CharField(max_length=200, null=True, blank=True, unique=True)
    # Until when the delivery that claimed the run may be working on it (its time limit).
    claimed_until = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    # The statuses a run ends in; RUNNING is the only one it leaves.
    FINISHED = [Status.REGISTERED, Status.FAILED_GATE, Status.ERROR]

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"training of {self.model_name} ({self.status})"
