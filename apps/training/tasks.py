"""Celery entry points of training."""

from celery import shared_task
from django.contrib.auth import get_user_model

from apps.accounts.models import Team
from apps.registry.models import DatasetVersion

from . import services


@shared_task(time_limit=60 * 60, soft_time_limit=55 * 60)
def train_model(model_name: str, dataset_id: int, actor_id: int | None = None, team_id: int | None = None,
                min_auc: float = 0.75) -> int:  # fmt: skip
    """Train and, when the gate passes, register a version. Returns the TrainingRun id."""
    outcome = services.model_train(
        actor=get_user_model().objects.filter(pk=actor_id).first(),
        model_name=model_name,
        dataset=DatasetVersion.objects.get(pk=dataset_id),
        team=Team.objects.filter(pk=team_id).first(),
        min_auc=min_auc,
    )
    return outcome.run.pk
