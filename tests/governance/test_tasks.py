"""Governance's tasks run for real: publication retries a bounded number of times, the sweep resumes it
once per lease (no pile of copies during an outage), and a worker process completes it."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.governance import services, tasks
from apps.governance.models import PromotionRequest
from apps.governance.services import decisions
from apps.registry import gateway
from apps.registry.models import ModelVersion, Stage

Status = PromotionRequest.Status


def _approved(model, data_scientist, ds_lead) -> PromotionRequest:
    """v4 requested to Candidate and approved by the lead: approved, publishing."""
    version = ModelVersion.objects.get(model=model, version=4)
    request = services.promotion_request_create(
        actor=data_scientist, version=version, to_stage=Stage.CANDIDATE, justification="ready"
    )
    services.promotion_approve(actor=ds_lead, request=request, evidence_sha256=request.evidence_sha256)
    request.refresh_from_db()
    assert request.status == Status.PUBLISHING
    return request


@pytest.mark.django_db
def test_publication_retries_a_bounded_number_of_times_then_the_sweep_resumes_it_once(
    mlflow_store, mlflow_model, mlflow_unreachable, settings, data_scientist, ds_lead, monkeypatch
):
    request = _approved(mlflow_model, data_scientist, ds_lead)
    assert request.publish_scheduled_until > timezone.now()  # the approval enqueued it: the sweep waits
    attempts = []
    publish = services.promotion_publish
    monkeypatch.setattr(services, "promotion_publish", lambda **kw: attempts.append(1) or publish(**kw))

    result = tasks.publish_promotion.apply(args=[request.pk])  # eager: the retries run inline

    assert result.failed()
    assert isinstance(result.result, gateway.RegistryUnavailable)
    assert len(attempts) == tasks.PUBLISH_RETRIES + 1  # then it stops, instead of flooding the queue
    request.refresh_from_db()
    assert request.status == Status.PUBLISHING
    assert request.publish_scheduled_until > timezone.now()  # its last retry's wait, plus a minute

    enqueued = []
    monkeypatch.setattr(decisions, "enqueue", lambda name, *args, **kw: enqueued.append(args) or True)
    assert services.promotions_publish_schedule() == []  # still within the task's own schedule
    later = timezone.now() + timedelta(hours=1)
    assert services.promotions_publish_schedule(now=later) == [request.pk]
    for minute in range(1, 10):  # the beat sweeps every minute; MLflow is still away
        assert services.promotions_publish_schedule(now=later + timedelta(minutes=minute)) == []
    assert enqueued == [(request.pk,)]

    settings.MLFLOW_TRACKING_URI = mlflow_store  # MLflow is back: the enqueued task completes it
    assert tasks.publish_promotion.apply(args=[request.pk]).get() is True
    request.refresh_from_db()
    assert request.status == Status.COMPLETED
    assert services.promotions_publish_schedule(now=later + decisions.PUBLISH_LEASE * 2) == []


@pytest.mark.django_db(transaction=True)
def test_the_sweep_hands_a_lost_publication_to_a_worker_that_completes_it(
    mlflow_model, data_scientist, ds_lead, settings, start_celery, monkeypatch
):
    # The broker was down when the approval committed: its publication was never enqueued.
    monkeypatch.setattr(decisions, "enqueue_on_commit", lambda *args, **kwargs: None)
    request = _approved(mlflow_model, data_scientist, ds_lead)
    monkeypatch.undo()
    PromotionRequest.objects.filter(pk=request.pk).update(publish_scheduled_until=None)
    worker = start_celery("worker", env={"MLFLOW_TRACKING_URI": settings.MLFLOW_TRACKING_URI})

    assert tasks.publish_pending_promotions.apply().get() == [request.pk]
    assert tasks.publish_pending_promotions.apply().get() == []  # scheduled: not enqueued twice

    worker.wait_for(lambda: PromotionRequest.objects.get(pk=request.pk).status == Status.COMPLETED)
    assert gateway.aliases(mlflow_model.name)["candidate"] == 4
