"""Reads of monitoring, scoped to the user who asks (drift runs and reports, policies, investigations)."""

from datetime import datetime

from django.db.models import OuterRef, QuerySet, Subquery

from apps.registry.models import RegisteredModel, Stage
from apps.registry.selectors import models_visible_to

from .models import DriftRun, FeatureResult, Investigation, MonitoringPolicy, Verdict


def drift_runs_visible_to(user) -> QuerySet[DriftRun]:
    """Drift runs of the models the user may see (the registry's visibility: team, or a cross-team role)."""
    return DriftRun.objects.filter(model__in=models_visible_to(user)).select_related(
        "model", "version", "requested_by"
    )


def drift_report_list(
    user,
    *,
    model: str = "",
    verdict: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[DriftRun]:
    """The managers' list: finished runs (the reports), newest first, filtered by model, verdict and date."""
    runs = drift_runs_visible_to(user).filter(status=DriftRun.Status.SUCCEEDED)
    if model:
        runs = runs.filter(model__name=model)
    if verdict:
        runs = runs.filter(verdict=verdict)
    if since is not None:
        runs = runs.filter(window_end__gte=since)
    if until is not None:
        runs = runs.filter(window_end__lt=until)
    return runs.order_by("-window_end", "-id")


def feature_results(run: DriftRun) -> list[FeatureResult]:
    return list(run.features.order_by("id"))


def previous_runs(run: DriftRun, *, limit: int) -> list[DriftRun]:
    """The model's finished runs up to this one, oldest first (the heatmap's columns)."""
    runs = DriftRun.objects.filter(
        model_id=run.model_id, status=DriftRun.Status.SUCCEEDED, window_end__lte=run.window_end
    ).exclude(pk=run.pk)
    earlier = list(runs.order_by("-window_end", "-id")[: max(limit - 1, 0)])
    return [*reversed(earlier), run]


def psi_history(runs: list[DriftRun]) -> dict[int, dict[str, float | None]]:
    """PSI of each feature in each of these runs: {run id: {feature: psi}} in one query."""
    history: dict[int, dict[str, float | None]] = {run.pk: {} for run in runs}
    rows = FeatureResult.objects.filter(run__in=runs).values_list("run_id", "feature", "psi")
    for run_id, feature, psi in rows:
        history[run_id][feature] = psi
    return history


def latest_verdicts(models) -> list[dict]:
    """Per production model among `models`: its latest finished drift run's verdict (for the home card)."""
    latest = DriftRun.objects.filter(model=OuterRef("pk"), status=DriftRun.Status.SUCCEEDED).order_by(
        "-window_end", "-id"
    )
    rows = (
        RegisteredModel.objects.filter(pk__in=models.values("pk"), versions__stage=Stage.PRODUCTION)
        .distinct()
        .annotate(run_id=Subquery(latest.values("pk")[:1]))
        .filter(run_id__isnull=False)
        .order_by("name")
    )
    runs = DriftRun.objects.in_bulk([row.run_id for row in rows])
    return [{"model": row, "run": runs[row.run_id]} for row in rows if row.run_id in runs]


def policy_current(model: RegisteredModel) -> MonitoringPolicy | None:
    return model.monitoring_policies.order_by("-version").first()


def open_investigations(model: RegisteredModel) -> QuerySet[Investigation]:
    return model.investigations.filter(status=Investigation.Status.OPEN)


VERDICT_CHOICES = Verdict.choices
