"""Monitoring's data. Drift: per-model monitoring policies (versioned), cached references, drift runs with
their per-feature results, the responses they triggered, investigations and retrainings."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.registry.models import DatasetVersion, ModelVersion, RegisteredModel


class MonitoringPolicy(models.Model):
    """One version of a model's monitoring settings; the newest is in force. Rows are never edited.

    The defaults are the design's quality thresholds: PSI >= 0.2 alerts, a realised AUC 5% under the
    holdout AUC retrains, a prediction shift of 10% opens an investigation; severe drift (PSI >= 0.5 on
    `severe_features` features in `persistence_k` of the last `persistence_m` windows) or an AUC 10%
    down rolls back to the last good production version.
    """

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="monitoring_policies")
    version = models.PositiveIntegerField()
    window_hours = models.FloatField(default=24.0, help_text="length of the window each drift run reads")
    psi_watch = models.FloatField(default=0.1, help_text="PSI from which a feature is watched")
    psi_alert = models.FloatField(default=0.2, help_text="PSI from which a feature drifts (alert)")
    psi_severe = models.FloatField(default=0.5, help_text="PSI from which a feature's drift is severe")
    severe_features = models.PositiveIntegerField(
        default=2, help_text="features at severe PSI that make a window severe"
    )
    persistence_k = models.PositiveIntegerField(default=3, help_text="severe windows needed ...")
    persistence_m = models.PositiveIntegerField(default=5, help_text="... among the last this many")
    auc_drop_retrain = models.FloatField(default=0.05, help_text="relative AUC drop that retrains")
    auc_drop_rollback = models.FloatField(default=0.10, help_text="relative AUC drop that rolls back")
    min_labels = models.PositiveIntegerField(
        default=500, help_text="labelled transactions needed to judge the realised AUC"
    )
    min_label_positives = models.PositiveIntegerField(default=20, help_text="... of which frauds at least")
    prediction_shift_investigate = models.FloatField(
        default=0.10,
        help_text="relative change of the mean score or decline rate that opens an investigation",
    )
    auto_rollback = models.BooleanField(default=True, help_text="roll back on severe drift automatically")
    auto_retrain = models.BooleanField(default=True, help_text="retrain when the AUC drops")
    note = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model", "-version"]
        verbose_name_plural = "monitoring policies"
        constraints = [
            models.UniqueConstraint(fields=["model", "version"], name="monitoring_policy_version_unique")
        ]

    def __str__(self) -> str:
        return f"monitoring policy v{self.version} of {self.model}"


class DriftReference(models.Model):
    """A version's drift references, built once from its training run and kept (never rebuilt per run).

    `payload` holds the references (numpy arrays, compressed): the profile's bins for PSI/JS, the sorted
    distinct values of the training split's columns for KS, the embedding's principal components and the
    training scores for the prediction shift. `source` says where each part came from.
    """

    version = models.OneToOneField(ModelVersion, on_delete=models.CASCADE, related_name="drift_reference")
    payload = models.BinaryField()
    sha256 = models.CharField(max_length=64)
    features = models.JSONField(default=list, help_text="name and kind of each reference column")
    rows = models.PositiveIntegerField(default=0)
    source = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"drift reference of {self.version}"


class Verdict(models.TextChoices):
    NO_DRIFT = "no drift", "No drift"
    WATCH = "watch", "Watch"
    DRIFT = "drift", "Drift"
    NOT_ENOUGH_DATA = "not enough data", "Not enough data"


class DriftRun(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "Schedule"
        MANUAL = "manual", "On demand"

    # Allowed moves; each one is a compare-and-set in services.
    TRANSITIONS = {
        Status.QUEUED: {Status.RUNNING, Status.FAILED},
        Status.RUNNING: {Status.SUCCEEDED, Status.FAILED},
    }

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="drift_runs")
    version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    policy = models.ForeignKey(MonitoringPolicy, null=True, blank=True, on_delete=models.PROTECT)
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.SCHEDULE)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    rows = models.PositiveIntegerField(default=0)
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)
    verdict = models.CharField(max_length=20, choices=Verdict.choices, blank=True, db_index=True)
    severe = models.BooleanField(default=False, help_text="this window reached the severe level")
    drifted_features = models.JSONField(default=list, blank=True)
    # Prediction shift, realised / estimated AUC, embedding drift, the PSI history for the heatmap.
    summary = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    # Until when the delivery that claimed the run may be working on it.
    claimed_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["model", "-created_at"], name="driftrun_model_time")]

    def __str__(self) -> str:
        return f"drift run #{self.pk} of {self.model}"

    @property
    def progress(self) -> int:
        """Percent done, for the progress bar."""
        if self.status in (self.Status.SUCCEEDED, self.Status.FAILED):
            return 100
        if self.status == self.Status.QUEUED or not self.chunks_total:
            return 0
        return min(99, round(100 * self.chunks_done / (self.chunks_total + 1)))


class FeatureResult(models.Model):
    """One feature's drift in one run (numeric, categorical, an embedding, or the score)."""

    run = models.ForeignKey(DriftRun, on_delete=models.CASCADE, related_name="features")
    feature = models.CharField(max_length=200)
    kind = models.CharField(max_length=20)
    verdict = models.CharField(max_length=20, choices=Verdict.choices)
    reason = models.TextField(blank=True)
    psi = models.FloatField(null=True)
    js = models.FloatField(null=True)
    ks = models.FloatField(null=True)
    ks_pvalue = models.FloatField(null=True)
    chi2 = models.FloatField(null=True)
    chi2_pvalue = models.FloatField(null=True)
    pvalue_adjusted = models.FloatField(null=True)
    n_reference = models.PositiveIntegerField(default=0)
    n_current = models.PositiveIntegerField(default=0)
    min_rows = models.PositiveIntegerField(null=True)
    # Bin labels and shares on both sides (the reference vs current chart); embeddings: their components.
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["run", "id"]
        constraints = [models.UniqueConstraint(fields=["run", "feature"], name="feature_result_unique")]

    def __str__(self) -> str:
        return f"{self.feature}: {self.verdict}"


class DriftResponse(models.Model):
    """What a run made the portal do: an alert, an investigation, a retraining, a rollback."""

    class Kind(models.TextChoices):
        ALERT = "alert", "Alert"
        INVESTIGATE = "investigate", "Investigation"
        RETRAIN = "retrain", "Retrain"
        ROLLBACK = "rollback", "Rollback"

    class Outcome(models.TextChoices):
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    run = models.ForeignKey(DriftRun, on_delete=models.CASCADE, related_name="responses")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.DONE)
    reason = models.TextField()
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        # A redelivered run responds once.
        constraints = [models.UniqueConstraint(fields=["run", "kind"], name="one_response_per_kind")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} after {self.run}"


class Investigation(models.Model):
    """A prediction shift for the model's owners to look into; one open per model at a time."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="investigations")
    run = models.ForeignKey(DriftRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    reason = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    closed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    closed_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["model"], condition=Q(status="open"), name="one_open_investigation_per_model"
            )
        ]

    def __str__(self) -> str:
        return f"investigation of {self.model} ({self.status})"


class Retraining(models.Model):
    """A retraining the AUC drop asked for: the labelled window as a dataset, the new version, its request."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="retrainings")
    run = models.OneToOneField(
        DriftRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="retraining"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    reason = models.TextField(blank=True)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    dataset = models.ForeignKey(
        DatasetVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    promotion_request = models.ForeignKey(
        "governance.PromotionRequest", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    error = models.TextField(blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"retraining of {self.model} ({self.status})"


# --- SLOs ----------------------------------------------------------------------------------------


class SLOObjective(models.Model):
    """One version of a model's service level objectives; the newest is in force. Rows are never edited.

    A model without one is held to the settings' defaults (SLO_AVAILABILITY_TARGET, SLO_LATENCY_MS...),
    the design's: availability 99.9% (errors < 0.1%), p99 latency 100 ms, over 30 days.
    """

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="slo_objectives")
    version = models.PositiveIntegerField()
    availability = models.FloatField(help_text="share of requests answered without error, e.g. 0.999")
    latency_ms = models.FloatField(help_text="a request slower than this is slow")
    latency_quantile = models.FloatField(help_text="share of requests that must not be slow, e.g. 0.99 (p99)")
    min_events = models.PositiveIntegerField(
        help_text="requests needed in both windows of a burn-rate rule before it may fire (low traffic)"
    )
    note = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["model", "version"], name="slo_objective_version_unique"),
            models.CheckConstraint(
                condition=Q(
                    availability__gt=0, availability__lt=1, latency_quantile__gt=0, latency_quantile__lt=1
                )
                & Q(latency_ms__gt=0),
                name="slo_objective_targets_in_range",
            ),
        ]

    def __str__(self) -> str:
        return f"SLO v{self.version} of {self.model}"


class SLOMinute(models.Model):
    """One minute of a model's production request log, rolled up for its SLOs by the evaluation tick.

    `slow` counts requests slower than the objective's latency in force when the minute was rolled up.
    """

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="+")
    minute = models.DateTimeField()
    requests = models.PositiveIntegerField()
    errors = models.PositiveIntegerField()
    slow = models.PositiveIntegerField()
    fallbacks = models.PositiveIntegerField()

    class Meta:
        ordering = ["model", "minute"]
        constraints = [models.UniqueConstraint(fields=["model", "minute"], name="slo_minute_unique")]

    def __str__(self) -> str:
        return f"{self.model} {self.minute:%Y-%m-%d %H:%M}: {self.errors}/{self.requests} errors"


class SLOStatus(models.Model):
    """A production model's SLOs as last evaluated (one row per model, rewritten every minute): what the
    home page and the alerts read without going back to the logs."""

    model = models.OneToOneField(RegisteredModel, on_delete=models.CASCADE, related_name="slo_status")
    evaluated_at = models.DateTimeField()
    objectives = models.JSONField(
        help_text="the objectives evaluated against, and their version (0: defaults)"
    )
    requests = models.PositiveBigIntegerField()
    errors = models.PositiveBigIntegerField()
    slow = models.PositiveBigIntegerField()
    availability = models.FloatField(null=True, help_text="None without traffic")
    availability_budget = models.FloatField(null=True, help_text="remaining share of the error budget")
    latency_budget = models.FloatField(null=True, help_text="remaining share of the latency budget")
    alert = models.CharField(max_length=10, blank=True, help_text='"page", "ticket" or "" (none firing)')
    low_traffic = models.BooleanField(default=False)
    rules = models.JSONField(default=list, help_text="each burn-rate rule's state, burn rates and reason")

    class Meta:
        verbose_name_plural = "SLO statuses"

    def __str__(self) -> str:
        return f"SLOs of {self.model} at {self.evaluated_at:%Y-%m-%d %H:%M}"


class SLOTick(models.Model):
    """Where the SLO evaluation stands (a single row): the last minute claimed, the last log row read."""

    minute = models.DateTimeField(null=True)
    last_log_id = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"SLO tick {self.minute} (log #{self.last_log_id})"
