"""Reads of the registry, scoped to the user who asks."""

from django.db.models import Count, Q, QuerySet
from guardian.shortcuts import get_objects_for_user

from .models import DatasetVersion, ModelVersion, RegisteredModel, Stage, StageTransition, SyncRun


def models_visible_to(user) -> QuerySet[RegisteredModel]:
    """Team members see their team's models; approver roles and managers (a global permission) see all."""
    if not user.is_authenticated:
        return RegisteredModel.objects.none()
    return get_objects_for_user(user, "registry.view_registeredmodel", klass=RegisteredModel)


def model_list(user, *, search: str = "", stage: str = "", team: str = "") -> QuerySet[RegisteredModel]:
    models = models_visible_to(user).select_related("team")
    if search:
        models = models.filter(Q(name__icontains=search) | Q(description__icontains=search))
    if stage:
        # A subquery, not a join, so that the counts below still see every version of each model.
        models = models.filter(pk__in=ModelVersion.objects.filter(stage=stage).values("model_id"))
    if team:
        models = models.filter(team__slug=team)
    return models.annotate(
        version_count=Count("versions", distinct=True),
        production_count=Count("versions", filter=Q(versions__stage=Stage.PRODUCTION), distinct=True),
    ).order_by("name")


def versions_visible_to(user) -> QuerySet[ModelVersion]:
    return ModelVersion.objects.filter(model__in=models_visible_to(user)).select_related(
        "model", "model__team", "dataset", "created_by"
    )


def datasets_visible_to(user) -> QuerySet[DatasetVersion]:
    """Datasets are shared across teams (they hold synthetic or governed data, not secrets)."""
    if not user.is_authenticated:
        return DatasetVersion.objects.none()
    return DatasetVersion.objects.select_related("created_by")


def production_version(model: RegisteredModel) -> ModelVersion | None:
    return model.versions.filter(stage=Stage.PRODUCTION).order_by("-version").first()


def stage_history(model: RegisteredModel) -> QuerySet[StageTransition]:
    """Every stage move of the model's versions, newest first."""
    return (
        StageTransition.objects.filter(version__model=model)
        .select_related("version", "actor")
        .order_by("-at", "-id")
    )


def last_sync() -> SyncRun | None:
    return SyncRun.objects.exclude(status=SyncRun.Status.RUNNING).first()
