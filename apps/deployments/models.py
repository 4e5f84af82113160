"""Deployments: the rollout policy (versioned data), rollouts with their events, analysis measurements and
staging test results, and the review a second person gives an emergency rollback."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.registry.models import ModelVersion, RegisteredModel

from . import machine
from .analysis import Comparator, MetricSpec, PolicyError


class State(models.TextChoices):
    """machine.State as choices (a test keeps the two equal)."""

    PENDING = "pending", "Pending"
    STAGING = "staging", "Deploying to staging"
    STAGING_TESTS = "staging_tests", "Staging tests"
    STAGED = "staged", "Staged"
    REJECTED = "rejected", "Rejected"
    CANARY = "canary", "Canary"
    ANALYSING = "analysing", "Analysing"
    PAUSED = "paused", "Paused"
    PROMOTING = "promoting", "Promoting"
    SUCCEEDED = "succeeded", "Succeeded"
    ROLLING_BACK = "rolling_back", "Rolling back"
    ROLLED_BACK = "rolled_back", "Rolled back"
    ABORTING = "aborting", "Aborting"
    ABORTED = "aborted", "Aborted"


# States the controller still moves (a succeeded rollout only takes an emergency rollback from a person).
ACTIVE_STATES = [s.value for s in machine.State if s not in machine.FINISHED]


class RolloutPolicy(models.Model):
    """One version of a model's rollout policy (or of the default, `model` empty); the newest is in force.

    Rows are never edited: a change is a new version, and each rollout keeps the version it ran under.
    The default timings are small on purpose: a whole canary (one 5 % step, one measurement) takes
    about one analysis interval plus a few ticks.
    """

    model = models.ForeignKey(
        RegisteredModel, null=True, blank=True, on_delete=models.CASCADE, related_name="rollout_policies"
    )
    version = models.PositiveIntegerField()
    steps = models.JSONField(
        default=list, help_text="the candidate's share at each step, in basis points; the last is 10000"
    )
    analysis_interval_s = models.FloatField(default=15.0, help_text="seconds between two measurements")
    min_samples = models.PositiveIntegerField(
        default=20, help_text="fewer canary requests in a window than this: inconclusive"
    )
    required_successes = models.PositiveIntegerField(
        default=1, help_text="successful measurements of every metric that pass a step"
    )
    failure_limit = models.PositiveIntegerField(default=0, help_text="failed measurements tolerated")
    inconclusive_limit = models.PositiveIntegerField(
        default=3, help_text="inconclusive measurements tolerated before the rollout pauses"
    )
    consecutive_error_limit = models.PositiveIntegerField(
        default=4, help_text="metric source errors in a row tolerated before the rollout rolls back"
    )
    error_rate_max = models.FloatField(default=0.001, help_text="canary error rate (0.001 = 0.1 %)")
    latency_p99_max_ms = models.FloatField(default=100.0, help_text="canary p99 latency, ms")
    fallback_share_max = models.FloatField(default=0.01, help_text="canary share of rules-only answers")
    score_shift_max = models.FloatField(
        default=0.10, help_text="|canary mean score - stable mean| / stable mean"
    )
    # A fraud score's mean is dominated by a few high scores: it needs more answers than a rate does
    # before a shift means anything (fewer: inconclusive, on each side).
    score_shift_min_samples = models.PositiveIntegerField(
        default=200, help_text="model answers on each side before the score shift is measured"
    )
    progress_deadline_s = models.FloatField(
        default=600.0, help_text="a rollout not finished this long after it started is aborted"
    )
    staging_latency_requests = models.PositiveIntegerField(
        default=200, help_text="staging test: requests timed for the p99"
    )
    staging_auc_gate = models.FloatField(default=0.70, help_text="staging test: least ROC AUC on the holdout")
    staging_holdout_size = models.PositiveIntegerField(
        default=500, help_text="staging test: holdout rows scored for parity and AUC"
    )
    staging_parity_tolerance = models.FloatField(
        default=1e-6, help_text="staging test: largest |API score - registered model score|"
    )
    note = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model_id", "-version"]
        verbose_name_plural = "rollout policies"
        constraints = [
            models.UniqueConstraint(fields=["model", "version"], name="rollout_policy_version_per_model"),
            models.UniqueConstraint(
                fields=["version"], condition=Q(model__isnull=True), name="rollout_policy_default_version"
            ),
        ]

    def __str__(self) -> str:
        return f"rollout policy v{self.version} of {self.model or 'every model'}"

    @property
    def weights(self) -> list[int]:
        return list(self.steps or [500, machine.FULL_WEIGHT_BP])

    def metric_specs(self) -> list[MetricSpec]:
        """The analysis metrics (issue 9 item 4) with this policy's thresholds and limits."""
        limits = {
            "min_samples": self.min_samples,
            "failure_limit": self.failure_limit,
            "inconclusive_limit": self.inconclusive_limit,
            "consecutive_error_limit": self.consecutive_error_limit,
            "required_successes": self.required_successes,
        }
        return [
            MetricSpec("error_rate", Comparator.LE, self.error_rate_max, **limits),
            MetricSpec("latency_p99_ms", Comparator.LE, self.latency_p99_max_ms, **limits),
            MetricSpec("fallback_share", Comparator.LE, self.fallback_share_max, **limits),
            MetricSpec(
                "score_shift",
                Comparator.LE,
                self.score_shift_max,
                **{**limits, "min_samples": max(self.score_shift_min_samples, self.min_samples)},
            ),
        ]

    def plan(self) -> machine.RolloutPlan:
        """The validated plan; PolicyError names the field at fault."""
        return machine.plan_rollout(
            weights_bp=self.weights,
            metrics=self.metric_specs(),
            analysis_interval_s=self.analysis_interval_s,
            progress_deadline_s=self.progress_deadline_s,
        )

    def clean(self):
        from django.core.exceptions import ValidationError

        try:
            self.plan()
        except PolicyError as exc:
            field = exc.field if exc.field in {f.name for f in self._meta.fields} else None
            raise ValidationError({field: exc.message} if field else exc.message) from exc
        if not 0 < self.staging_auc_gate <= 1:
            raise ValidationError({"staging_auc_gate": "must be in (0, 1]"})


class Rollout(models.Model):
    """One deployment of a candidate version: to the staging environment and its tests, or a canary.

    `state` and `step_index` move only through the controller's compare-and-set (`revision` counts
    the moves); every move writes a RolloutEvent and an audit event.
    """

    class Kind(models.TextChoices):
        STAGING = "staging", "Staging deployment"
        CANARY = "canary", "Canary rollout"

    class Cause(models.TextChoices):
        """Why a rollout ended anywhere but success (pages and alerts say it)."""

        NONE = "", "-"
        STAGING_TESTS_FAILED = "staging_tests_failed", "Staging tests failed"
        ANALYSIS_FAILED = "analysis_failed", "Analysis failed"
        ANALYSIS_ERROR = "analysis_error", "Metrics could not be read"
        DEADLINE = "deadline", "Progress deadline passed"
        ABORTED = "aborted", "Aborted by a person"
        EMERGENCY = "emergency", "Emergency rollback"

    State = State

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="rollouts")
    candidate = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="rollouts")
    # The version answering production traffic when the rollout started (None: nothing was in Production).
    stable = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    policy = models.ForeignKey(RolloutPolicy, on_delete=models.PROTECT, related_name="+")
    promotion_request = models.OneToOneField(
        "governance.PromotionRequest",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="rollout",
        help_text="the completed promotion that started it (one rollout per request)",
    )
    state = models.CharField(max_length=20, choices=State.choices, default=State.PENDING, db_index=True)
    step_index = models.PositiveIntegerField(default=0)
    # The canary's share of production traffic the routing table holds now, in basis points.
    weight_bp = models.PositiveIntegerField(default=0)
    revision = models.PositiveIntegerField(default=0, help_text="moves so far (compare-and-set)")
    # Each start of a step's analysis is a new run: measurements of an earlier run do not count.
    analysis_run = models.PositiveIntegerField(default=0)
    cause = models.CharField(max_length=30, choices=Cause.choices, blank=True, default=Cause.NONE)
    reason = models.TextField(blank=True, help_text="why it is in its state (the last move's reason)")
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    step_started_at = models.DateTimeField(null=True, blank=True)
    last_measured_at = models.DateTimeField(null=True, blank=True)
    deadline_at = models.DateTimeField(null=True, blank=True, help_text="the progress deadline")
    finished_at = models.DateTimeField(null=True, blank=True)
    # Set while a staging-test run is enqueued or running: the controller leaves it alone until then.
    tests_lease_until = models.DateTimeField(null=True, blank=True)
    # The MLflow `canary` alias has to follow this rollout (set, or removed): its task clears the flag.
    alias_pending = models.BooleanField(default=False)
    alias_enqueued_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # One deployment of each kind at a time per model: two canaries would fight over the table.
            models.UniqueConstraint(
                fields=["model", "kind"],
                condition=Q(state__in=ACTIVE_STATES),
                name="one_active_rollout_per_kind",
            )
        ]
        indexes = [models.Index(fields=["state", "updated_at"], name="rollout_state_updated")]

    def __str__(self) -> str:
        return f"{self.get_kind_display().lower()} of {self.candidate} (#{self.pk})"

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def percent(self) -> float:
        return self.weight_bp / 100

    def steps(self) -> list[machine.Step]:
        return machine.plan_steps(self.policy.weights)


class RolloutEvent(models.Model):
    """One move of a rollout (or a person's control on it): the timeline is read from these rows."""

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    action = models.CharField(max_length=30)
    from_state = models.CharField(max_length=20, choices=State.choices)
    to_state = models.CharField(max_length=20, choices=State.choices)
    step_index = models.PositiveIntegerField(default=0)
    weight_bp = models.PositiveIntegerField(default=0, help_text="the canary weight after the move")
    revision = models.PositiveIntegerField(help_text="the rollout's revision this move made")
    reason = models.TextField(blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["at", "id"]
        constraints = [
            # The compare-and-set on the revision makes this true; the constraint makes it unbreakable.
            models.UniqueConstraint(fields=["rollout", "revision"], name="one_event_per_revision")
        ]

    def __str__(self) -> str:
        return f"#{self.rollout_id} {self.from_state} -> {self.to_state} ({self.action})"


class AnalysisMeasurement(models.Model):
    """One metric measured once on the canary's window against the stable's: value, threshold, verdict."""

    class Verdict(models.TextChoices):
        SUCCESSFUL = "successful", "Successful"
        FAILED = "failed", "Failed"
        INCONCLUSIVE = "inconclusive", "Inconclusive"
        ERROR = "error", "Error"

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="measurements")
    step_index = models.PositiveIntegerField()
    analysis_run = models.PositiveIntegerField()
    weight_bp = models.PositiveIntegerField()
    metric = models.CharField(max_length=30)
    value = models.FloatField(null=True, blank=True)
    threshold = models.FloatField()
    comparator = models.CharField(max_length=2, default="<=")
    verdict = models.CharField(max_length=15, choices=Verdict.choices)
    message = models.TextField(blank=True)
    canary_requests = models.PositiveIntegerField(default=0)
    stable_requests = models.PositiveIntegerField(default=0)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    # What the windows held (WindowStats.as_dict of each side), for the charts.
    canary_window = models.JSONField(default=dict, blank=True)
    stable_window = models.JSONField(default=dict, blank=True)
    measured_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["measured_at", "id"]
        indexes = [models.Index(fields=["rollout", "step_index", "analysis_run"], name="measurement_run")]
        constraints = [
            # One measurement of a metric per window: a redelivered tick cannot measure a window twice.
            models.UniqueConstraint(
                fields=["rollout", "analysis_run", "metric", "window_end"], name="one_measurement_per_window"
            )
        ]

    def __str__(self) -> str:
        return f"#{self.rollout_id} {self.metric}: {self.verdict}"


class StagingTestResult(models.Model):
    """One staging test of a staging deployment: what it measured, against what, passed or not."""

    class Test(models.TextChoices):
        SIGNATURE = "signature", "Signature and input example"
        PARITY = "parity", "Holdout parity with the registered model"
        AUC = "auc", "Holdout ROC AUC"
        LATENCY = "latency", "p99 latency"
        FALLBACKS = "fallbacks", "No fallback answers"

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="staging_results")
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="staging_results")
    attempt = models.PositiveIntegerField(default=1, help_text="tests that could not run are run again")
    test = models.CharField(max_length=20, choices=Test.choices)
    # None: the test could not run (the inference service unreachable): neither a pass nor a failure.
    passed = models.BooleanField(null=True)
    value = models.FloatField(null=True, blank=True)
    threshold = models.FloatField(null=True, blank=True)
    detail = models.TextField(blank=True)
    ran_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["rollout_id", "attempt", "id"]
        constraints = [
            models.UniqueConstraint(fields=["rollout", "attempt", "test"], name="one_result_per_test_attempt")
        ]

    def __str__(self) -> str:
        verdict = {True: "passed", False: "failed", None: "could not run"}[self.passed]
        return f"{self.get_test_display()} of {self.version}: {verdict}"


class RollbackReview(models.Model):
    """An emergency rollback waiting for a second person's review (ML Engineer or Model Risk, not the one
    who rolled back): they confirm it or record what should happen next. It sits in their inbox."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CONFIRMED = "confirmed", "Confirmed"

    rollout = models.OneToOneField(Rollout, on_delete=models.CASCADE, related_name="review")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source = models.CharField(max_length=30, default="person", help_text="person, or the system that asked")
    reason = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN, db_index=True)
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"review of rollback #{self.rollout_id} ({self.status})"
