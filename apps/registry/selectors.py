"""Reads of the registry, scoped to the user who asks."""

from django.contrib.auth import get_user_model
from django.db.models import Count, OuterRef, Prefetch, Q, QuerySet, Subquery
from guardian.shortcuts import get_objects_for_user

from .models import (
    ALIAS_OF_STAGE,
    DatasetVersion,
    ModelVersion,
    RegisteredModel,
    Stage,
    StageTransition,
    SyncRun,
)


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


def with_owners_and_production(models: QuerySet[RegisteredModel]) -> QuerySet[RegisteredModel]:
    """What an API list row shows beyond the counts, read with the list, not once per model."""
    production = ModelVersion.objects.filter(model=OuterRef("pk"), stage=Stage.PRODUCTION).order_by(
        "-version"
    )
    return models.prefetch_related("owners").annotate(
        production_number=Subquery(production.values("version")[:1])
    )


def versions_visible_to(user) -> QuerySet[ModelVersion]:
    return ModelVersion.objects.filter(model__in=models_visible_to(user)).select_related(
        "model", "model__team", "dataset", "created_by"
    )


def version_list(
    user, *, model: RegisteredModel | str | None = None, stage: str = ""
) -> QuerySet[ModelVersion]:
    """The versions the user may see, of one model (a model or its name) and in one stage if asked."""
    versions = versions_visible_to(user)
    if isinstance(model, RegisteredModel):
        versions = versions.filter(model=model)
    elif model is not None:
        versions = versions.filter(model__name=model)
    if stage:
        versions = versions.filter(stage=stage)
    return versions


def versions_with_history(user, model: RegisteredModel) -> QuerySet[ModelVersion]:
    history = Prefetch("transitions", queryset=StageTransition.objects.select_related("actor"))
    return version_list(user, model=model).prefetch_related(history)


def owners_of(model: RegisteredModel):
    return model.owners.order_by("username")


def open_alias_drifts(model: RegisteredModel):
    return model.alias_drifts.filter(resolved_at__isnull=True)


def latest_version(model: RegisteredModel) -> ModelVersion | None:
    return model.versions.order_by("-version").first()


def current_card_revision(model: RegisteredModel):
    return model.card_revisions.first()


def card_revisions(model: RegisteredModel):
    return model.card_revisions.select_related("author")


def dataset_list(user, *, name: str = "") -> QuerySet[DatasetVersion]:
    datasets = datasets_visible_to(user)
    return datasets.filter(name=name) if name else datasets


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


def portal_user_named(username: str):
    """The portal user MLflow names as a version's creator, if there is one by that name."""
    if not username:
        return None
    return get_user_model().objects.filter(username=username).first()


def version_of(model_name: str, number: int) -> ModelVersion | None:
    return ModelVersion.objects.filter(model__name=model_name, version=number).select_related("model").first()


def registrations_of_run(run_id: str) -> list[tuple[str, int]]:
    """(model name, version) of each portal version made from the run."""
    return list(ModelVersion.objects.filter(run_id=run_id).values_list("model__name", "version"))


def team_slug_of_run(run_id: str) -> str:
    """The team of a portal model the run is a version of, or "" (the portal knows no team for it)."""
    slug = (
        ModelVersion.objects.filter(run_id=run_id, model__team__isnull=False)
        .order_by("pk")
        .values_list("model__team__slug", flat=True)
        .first()
    )
    return slug or ""


def expected_aliases(model: RegisteredModel) -> dict[str, int]:
    """The governance aliases as the portal's stages say they must be in MLflow."""
    expected = {}
    for stage, alias in ALIAS_OF_STAGE.items():
        holder = model.versions.filter(stage=stage).order_by("-version").first()
        if holder is not None:
            expected[alias] = holder.version
    return expected
