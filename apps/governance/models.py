"""Governance: the promotion policy (versioned data), promotion requests, approvals and their evidence."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.outbox.models import OutboxMessage
from apps.registry.models import ModelVersion, Stage

# The default policy: the governance table of the design. Stored as data (PromotionPolicy), versioned.
DEFAULT_RULES = {
    Stage.CANDIDATE.value: ["Data Scientist Lead"],
    Stage.STAGING.value: ["ML Engineer"],
    Stage.PRODUCTION.value: ["Model Risk", "Compliance"],
}


class PromotionPolicy(models.Model):
    """One version of the promotion policy; the newest is in force. Rows are never edited."""

    version = models.PositiveIntegerField(unique=True)
    rules = models.JSONField(help_text="target stage -> roles that must each approve (one person per role)")
    request_ttl_days = models.PositiveIntegerField(default=14, help_text="pending requests expire after this")
    metric_margin = models.FloatField(
        default=0.01, help_text="how much lower than production a candidate's ROC AUC may be"
    )
    note = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-version"]
        verbose_name_plural = "promotion policies"

    def __str__(self) -> str:
        return f"policy v{self.version}"


class PromotionRequest(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PUBLISHING = "publishing", "Approved, publishing"
        COMPLETED = "completed", "Completed"
        REJECTED = "rejected", "Rejected"
        WITHDRAWN = "withdrawn", "Withdrawn"
        EXPIRED = "expired", "Expired"

    OPEN = (Status.PENDING, Status.PUBLISHING)
    # Allowed moves of a request; every move is a compare-and-set in services.
    TRANSITIONS = {
        Status.PENDING: {Status.PUBLISHING, Status.REJECTED, Status.WITHDRAWN, Status.EXPIRED},
        Status.PUBLISHING: {Status.COMPLETED},
    }

    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="promotion_requests")
    from_stage = models.CharField(max_length=20, choices=Stage.choices)
    to_stage = models.CharField(max_length=20, choices=Stage.choices)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    justification = models.TextField()
    policy = models.ForeignKey(PromotionPolicy, on_delete=models.PROTECT)
    required_roles = models.JSONField(help_text="copied from the policy when the request was made")
    evidence = models.JSONField()
    evidence_sha256 = models.CharField(max_length=64)
    prechecks = models.JSONField(default=list)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    expires_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)
    # Set while a publication task is enqueued or retrying: the sweep leaves the request alone until then.
    publish_scheduled_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "to_stage"],
                condition=Q(status__in=["pending", "publishing"]),
                name="one_open_request_per_version_and_stage",
            )
        ]

    def __str__(self) -> str:
        return f"request #{self.pk}: {self.version} to {self.get_to_stage_display()}"


class Approval(models.Model):
    """One decision on a request, in one role. Void when the evidence changed after it was given."""

    class Decision(models.TextChoices):
        APPROVE = "approve", "Approved"
        REJECT = "reject", "Rejected"

    request = models.ForeignKey(PromotionRequest, on_delete=models.CASCADE, related_name="approvals")
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    role = models.CharField(max_length=50)
    decision = models.CharField(max_length=10, choices=Decision.choices)
    comment = models.TextField(blank=True)
    evidence_sha256 = models.CharField(max_length=64)
    policy_version = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    voided_at = models.DateTimeField(null=True, blank=True)
    void_reason = models.TextField(blank=True)
    # An approval given although hard pre-checks failed: which ones, and the approver's written reason.
    overridden_checks = models.JSONField(default=list, blank=True)
    override_reason = models.TextField(blank=True)
    # Neither the portal nor MLflow knew who created the version: only "not the requester" could be checked.
    creator_unknown = models.BooleanField(default=False)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            # One person fills at most one role on a request, and each role is filled once.
            models.UniqueConstraint(
                fields=["request", "approver"],
                condition=Q(voided_at__isnull=True),
                name="one_role_per_person",
            ),
            models.UniqueConstraint(
                fields=["request", "role"], condition=Q(voided_at__isnull=True), name="one_decision_per_role"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_decision_display()} by {self.approver} as {self.role} on #{self.request_id}"


class RequestComment(models.Model):
    request = models.ForeignKey(PromotionRequest, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"comment by {self.author} on #{self.request_id}"


class Notification(OutboxMessage):
    """A mail or webhook call about a promotion request, written in the transaction of the event it
    tells about (governance's outbox: who was told what). Delivered by `apps.outbox.delivery`."""

    deliver_task = "apps.governance.tasks.deliver_notification"
    webhook_settings = ("GOVERNANCE_WEBHOOK_URL", "GOVERNANCE_WEBHOOK_SECRET")

    class Meta(OutboxMessage.Meta):
        pass
