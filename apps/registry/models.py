"""The portal's mirror of the MLflow registry: models, versions, datasets, lineage, model cards, syncs."""

from pathlib import Path, PurePosixPath

from django.conf import settings
from django.db import models


class Stage(models.TextChoices):
    EXPERIMENT = "experiment", "Experiment"
    CANDIDATE = "candidate", "Candidate"
    STAGING = "staging", "Staging"
    PRODUCTION = "production", "Production"
    ARCHIVED = "archived", "Archived"
    REJECTED = "rejected", "Rejected"
    # A canary that failed its analysis, or a Production version taken back by an emergency rollback.
    ROLLED_BACK = "rolled_back", "Rolled back"


# The governance ladder, bottom to top; a version moves one rung at a time.
LADDER = [Stage.EXPERIMENT, Stage.CANDIDATE, Stage.STAGING, Stage.PRODUCTION]


def next_stage(stage: str) -> Stage | None:
    """The next rung of the ladder above `stage`, or None at the top or off the ladder."""
    if stage not in LADDER or stage == LADDER[-1]:
        return None
    return LADDER[LADDER.index(Stage(stage)) + 1]


# The MLflow alias the portal (and only the portal) sets for each governed stage.
ALIAS_OF_STAGE = {Stage.CANDIDATE: "candidate", Stage.STAGING: "staging", Stage.PRODUCTION: "production"}
# The stage moves a version can make, whoever asks (governance adds who may ask).
TRANSITIONS = {
    Stage.EXPERIMENT: {Stage.CANDIDATE, Stage.ARCHIVED},
    Stage.CANDIDATE: {Stage.STAGING, Stage.REJECTED, Stage.ARCHIVED},
    Stage.STAGING: {Stage.PRODUCTION, Stage.REJECTED, Stage.ROLLED_BACK, Stage.ARCHIVED},
    Stage.PRODUCTION: {Stage.ARCHIVED, Stage.ROLLED_BACK},
    # An emergency rollback puts the last good version back in Production (apps.deployments).
    Stage.ARCHIVED: {Stage.PRODUCTION},
    Stage.REJECTED: set(),
    Stage.ROLLED_BACK: set(),
}


class RiskTier(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"


class DatasetVersion(models.Model):
    """One immutable dataset file (Parquet), identified by its content hash."""

    name = models.CharField(max_length=200)
    sha256 = models.CharField(max_length=64)
    md5 = models.CharField(max_length=32, help_text="what DVC identifies the file by")
    size_bytes = models.BigIntegerField()
    row_count = models.BigIntegerField()
    schema = models.JSONField(default=list)
    # Both relative to settings.DATASET_ROOT (older rows may hold an absolute path; `file` copes).
    path = models.CharField(max_length=500)
    dvc_path = models.CharField(max_length=500)
    description = models.TextField(blank=True)
    params = models.JSONField(default=dict, blank=True, help_text="how the data was produced")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["name", "sha256"], name="dataset_unique_content")]

    def __str__(self) -> str:
        return f"{self.name}@{self.sha256[:12]}"

    @property
    def file(self) -> Path:
        """Where the Parquet file is on this server (never shown: pages and API show `location`)."""
        return Path(settings.DATASET_ROOT) / self.path

    @property
    def location(self) -> str:
        return _relative_to_root(self.path)

    @property
    def dvc_location(self) -> str:
        return _relative_to_root(self.dvc_path)


def _relative_to_root(path: str) -> str:
    """A stored location relative to DATASET_ROOT; of a file elsewhere, its last two parts only."""
    stored = PurePosixPath(path)
    if not stored.is_absolute():
        return stored.as_posix()
    try:
        return stored.relative_to(PurePosixPath(settings.DATASET_ROOT)).as_posix()
    except ValueError:
        return PurePosixPath(*stored.parts[-2:]).as_posix()


class RegisteredModel(models.Model):
    name = models.CharField(max_length=200, unique=True, help_text="the name in the MLflow registry")
    team = models.ForeignKey(
        "accounts.Team", null=True, blank=True, on_delete=models.PROTECT, related_name="models"
    )
    description = models.TextField(blank=True)
    risk_tier = models.CharField(max_length=10, choices=RiskTier.choices, default=RiskTier.HIGH)
    owners = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="owned_models", blank=True)
    # Set while a stage change waits for its MLflow aliases to be published.
    aliases_pending = models.BooleanField(default=False)
    # When the sweep last enqueued a publication of them (so that an outage does not pile up copies).
    aliases_enqueued_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [("request_promotion", "Can request promotion of the model's versions")]

    def __str__(self) -> str:
        return self.name


class ModelVersion(models.Model):
    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    run_id = models.CharField(max_length=64, blank=True)
    source_uri = models.CharField(max_length=500, blank=True)
    artifact_sha256 = models.CharField(max_length=64, blank=True)
    stage = models.CharField(max_length=20, choices=Stage.choices, default=Stage.EXPERIMENT)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    mlflow_user = models.CharField(max_length=200, blank=True, help_text="who MLflow says created it")
    metrics = models.JSONField(default=dict, blank=True)
    confidence_intervals = models.JSONField(default=dict, blank=True)
    curves = models.JSONField(default=dict, blank=True)
    params = models.JSONField(default=dict, blank=True)
    signature = models.JSONField(null=True, blank=True)
    dataset = models.ForeignKey(
        DatasetVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="model_versions"
    )
    description = models.TextField(blank=True)
    registered_at = models.DateTimeField(help_text="when MLflow registered it")
    synced_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model", "-version"]
        constraints = [models.UniqueConstraint(fields=["model", "version"], name="version_unique_per_model")]
        indexes = [models.Index(fields=["stage"])]

    def __str__(self) -> str:
        return f"{self.model.name} v{self.version}"


class StageTransition(models.Model):
    """One move of a version between stages: the stage history is read from these rows."""

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="transitions")
    from_stage = models.CharField(max_length=20, choices=Stage.choices, blank=True)
    to_stage = models.CharField(max_length=20, choices=Stage.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    reason = models.TextField(blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.version}: {self.from_stage or '-'} -> {self.to_stage}"


class ReferenceProfile(models.Model):
    """The training-time distribution of every feature and of the score, for drift detection."""

    version = models.OneToOneField(ModelVersion, on_delete=models.CASCADE, related_name="reference_profile")
    data = models.JSONField()

    def __str__(self) -> str:
        return f"reference profile of {self.version}"


class ModelCardRevision(models.Model):
    """The narrative of a model's card, as its owners wrote it; the newest revision is current."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="card_revisions")
    intended_use = models.TextField(blank=True)
    out_of_scope_use = models.TextField(blank=True)
    limitations = models.TextField(blank=True)
    ethical_considerations = models.TextField(blank=True)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    NARRATIVE_FIELDS = ["intended_use", "out_of_scope_use", "limitations", "ethical_considerations"]

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"model card of {self.model} ({self.created_at:%Y-%m-%d %H:%M})"


class AliasDrift(models.Model):
    """A governance alias found in MLflow where the portal did not put it (someone moved it by hand)."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="alias_drifts")
    alias = models.CharField(max_length=50)
    expected_version = models.PositiveIntegerField(null=True, blank=True)
    found_version = models.PositiveIntegerField(null=True, blank=True)
    detected_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-detected_at"]

    def __str__(self) -> str:
        return f"{self.model} {self.alias}: v{self.found_version} in MLflow, v{self.expected_version} here"


class SyncRun(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    models_seen = models.PositiveIntegerField(default=0)
    versions_created = models.PositiveIntegerField(default=0)
    versions_updated = models.PositiveIntegerField(default=0)
    alias_drifts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"sync {self.started_at:%Y-%m-%d %H:%M} {self.status}"
