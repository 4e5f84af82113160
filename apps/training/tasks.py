"""Celery entry points of training."""

from celery import shared_task
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from apps.accounts.models import Team
from apps.registry.models import DatasetVersion

from . import services

# The time limit is the settings' (TRAINING_TASK_TIME_LIMIT), which the broker's visibility timeout
# is derived from: a training still running is never handed to a second worker.
TIME_LIMIT = settings.TRAINING_TASK_TIME_LIMIT


@shared_task(bind=True, time_limit=TIME_LIMIT, soft_time_limit=TIME_LIMIT - 60, max_retries=3)
def train_model(
    self,
    model_name: str,
    dataset_id: int,
    actor_id: int | None = None,
    team_id: int | None = None,
    min_auc: float = 0.75,
    key: str | None = None,
) -> int:
    """Train and, when the gate passes, register a version. Returns the TrainingRun id.

    Idempotent: the run is keyed by `key` or the task id, so a redelivered task does not train or
    register twice; one that finds the run held by a live delivery checks again once its lease ends.
    """
    outcome = services.model_train(
        actor=get_user_model().objects.filter(pk=actor_id).first(),
        model_name=model_name,
        dataset=DatasetVersion.objects.get(pk=dataset_id),
        team=Team.objects.filter(pk=team_id).first(),
        min_auc=min_auc,
        key=key or self.request.id,
    )
    if outcome.elsewhere:
        wait = max((outcome.run.claimed_until - timezone.now()).total_seconds(), 0) + 1
        raise self.retry(countdown=wait)
    return outcome.run.pk
