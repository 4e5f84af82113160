"""Serving's data: per-model serving policy (thresholds, breaker), fallback rules, prediction logs, labels."""

import json

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from apps.registry.models import RegisteredModel

# The group of the scoring clients (service accounts); it holds the `serving.score` permission only.
SCORING_CLIENT_GROUP = "Scoring client"


class Decision(models.TextChoices):
    APPROVE = "approve", "Approve"
    REVIEW = "review", "Review"
    DECLINE = "decline", "Decline"


class ServingPolicy(models.Model):
    """One version of a model's serving policy; the newest is in force. Rows are never edited.

    Decision thresholds on the score (approve below `review_at`, review below `decline_at`, decline
    from it) and the circuit breaker of each of the model's versions.
    """

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="serving_policies")
    version = models.PositiveIntegerField()
    review_at = models.FloatField(default=0.5, help_text="scores from here on are reviewed")
    decline_at = models.FloatField(default=0.9, help_text="scores from here on are declined")
    breaker_failures = models.PositiveIntegerField(
        default=5, help_text="consecutive failures that open the breaker"
    )
    breaker_reset_after = models.FloatField(default=30.0, help_text="seconds before a probe tries the model")
    latency_budget_ms = models.FloatField(
        default=100.0, help_text="a model answer slower than this counts as a failure"
    )
    note = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model", "-version"]
        verbose_name_plural = "serving policies"
        constraints = [
            models.UniqueConstraint(fields=["model", "version"], name="serving_policy_version_unique")
        ]
        permissions = [("score", "Can call the scoring API")]

    def __str__(self) -> str:
        return f"serving policy v{self.version} of {self.model}"

    def decision_for(self, score: float) -> str:
        return decision_for(score, self.review_at, self.decline_at)


def decision_for(score: float, review_at: float, decline_at: float) -> str:
    if score >= decline_at:
        return Decision.DECLINE
    if score >= review_at:
        return Decision.REVIEW
    return Decision.APPROVE


class FallbackRule(models.Model):
    """A rule of the rules-only scorer that answers while a model's breaker is open (first match wins)."""

    class Operator(models.TextChoices):
        LT = "<"
        LE = "<="
        GT = ">"
        GE = ">="
        EQ = "=="
        NE = "!="
        IN = "in"

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="fallback_rules")
    order = models.PositiveIntegerField(default=0)
    feature = models.CharField(max_length=100)
    operator = models.CharField(max_length=2, choices=Operator.choices)
    threshold = models.JSONField(
        help_text='a number; a text for == and != on a categorical feature; a list for "in"'
    )
    score = models.FloatField()
    decision = models.CharField(max_length=10, choices=Decision.choices)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model", "order", "id"]

    def __str__(self) -> str:
        return f"{self.model}: if {self.feature} {self.operator} {self.threshold} then {self.decision}"

    def clean(self):
        from .rules import Rule

        try:
            Rule(**self.as_dict())
        except (TypeError, ValueError) as exc:
            raise ValidationError(str(exc)) from exc
        if not 0.0 <= self.score <= 1.0:
            raise ValidationError({"score": "A score is between 0 and 1."})

    def as_dict(self) -> dict:
        return {
            "feature": self.feature,
            "operator": self.operator,
            "threshold": self.threshold,
            "score": self.score,
            "decision": self.decision,
        }


class RoutingTable(models.Model):
    """One revision of a model's routing table in one environment; the newest is in force. Never edited.

    `weights` maps version numbers (text: JSON's keys) to basis points that sum to 10,000; empty means
    the Production version answers everything (production) or nothing answers (staging). PostgreSQL is
    the source of truth, Redis holds a copy of the newest revision for the scoring path (routing.py).
    """

    class Environment(models.TextChoices):
        PRODUCTION = "production"
        STAGING = "staging"

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="routing_tables")
    environment = models.CharField(max_length=10, choices=Environment.choices)
    revision = models.PositiveIntegerField()
    weights = models.JSONField(default=dict, blank=True, help_text="version -> basis points (sum 10,000)")
    reason = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model", "environment", "-revision"]
        constraints = [
            models.UniqueConstraint(
                fields=["model", "environment", "revision"], name="routing_table_revision_unique"
            )
        ]
        # The staging environment has clients of its own: a production token is refused there.
        permissions = [("score_staging", "Can call the scoring API's staging environment")]

    def __str__(self) -> str:
        return f"{self.environment} routing of {self.model} r{self.revision}"

    @property
    def versions(self) -> dict[int, int]:
        return {int(number): int(points) for number, points in self.weights.items()}


class BreakerTransition(models.Model):
    """One move of a version's circuit breaker (closed, open, probe), as an inference process saw it."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="breaker_transitions")
    version = models.PositiveIntegerField()
    from_state = models.CharField(max_length=10)
    to_state = models.CharField(max_length=10)
    reason = models.TextField(blank=True)
    at = models.DateTimeField()
    event_id = models.CharField(max_length=64, unique=True, help_text="the stream entry it came from")

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"breaker of {self.model} v{self.version}: {self.from_state} -> {self.to_state}"


class FloatArrayField(models.Field):
    """Floats: `double precision[]` on PostgreSQL (read straight into numpy), JSON text elsewhere."""

    def __init__(self, *args, base="double precision", **kwargs):
        self.base = base
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        if self.base != "double precision":
            kwargs["base"] = self.base
        return name, path, args, kwargs

    def db_type(self, connection):
        return f"{self.base}[]" if connection.vendor == "postgresql" else "text"

    def from_db_value(self, value, expression, connection):
        if value is None or isinstance(value, list):
            return value
        return json.loads(value)

    def get_db_prep_value(self, value, connection, prepared=False):
        if value is None or connection.vendor == "postgresql":
            return value
        return json.dumps(value)


class TextArrayField(FloatArrayField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("base", "text")
        super().__init__(*args, **kwargs)


class PredictionLog(models.Model):
    """One scored item, written from the log stream in batches (idempotent on request_id and created_at).

    Features are stored in the signature order of the version that scored them: the numeric ones as
    an array of doubles, the categorical ones as an array of texts, so a window reads into numpy
    without parsing JSON per row (`selectors.log_window`). On PostgreSQL the table is partitioned by
    day on created_at (migration 0003, `partitions`); elsewhere it is a plain table.
    """

    class Status(models.TextChoices):
        OK = "ok"
        FALLBACK = "fallback"
        ERROR = "error"

    request_id = models.CharField(max_length=64)
    transaction_id = models.CharField(max_length=200, db_index=True)
    entity_id = models.CharField(max_length=200, blank=True)
    model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="+", db_index=False)
    version = models.PositiveIntegerField()
    numeric_features = FloatArrayField()
    categorical_features = TextArrayField(base="text")
    score = models.FloatField()
    decision = models.CharField(max_length=10, choices=Decision.choices)
    fallback = models.BooleanField(default=False)
    latency_ms = models.FloatField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OK)
    created_at = models.DateTimeField()
    environment = models.CharField(max_length=20, default="production")
    embedding = FloatArrayField(
        null=True, blank=True, help_text="the item's embedding, logged, not a model input"
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["model", "created_at"], name="predictionlog_model_time")]
        # With the partition key: PostgreSQL's unique keys of a partitioned table must include it. An
        # entry replayed from the stream carries the same created_at, so it still conflicts.
        constraints = [
            models.UniqueConstraint(fields=["request_id", "created_at"], name="predictionlog_request_unique")
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {self.transaction_id} {self.score:.4f} {self.decision}"


class Feedback(models.Model):
    """A delayed label (fraud or not) of a scored transaction; the first label given is kept."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="+")
    transaction_id = models.CharField(max_length=200)
    label = models.BooleanField(help_text="true: the transaction was fraud")
    client = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["model", "transaction_id"], name="one_label_per_transaction")
        ]

    def __str__(self) -> str:
        return f"{self.model} {self.transaction_id}: {'fraud' if self.label else 'genuine'}"


# Changes that the scoring processes must see (connected here: the app config has no ready()).
from . import receivers  # noqa: E402, F401
