"""The portal's mirror against a real MLflow store: sync, alias drift, stage moves, unreachable MLflow."""

import pytest

from apps.registry import gateway, services, tasks
from apps.registry.models import AliasDrift, ModelVersion, RegisteredModel, Stage, StageTransition, SyncRun

pytestmark = pytest.mark.django_db


def _log_model_outside_the_portal(name: str, *, team: str | None = None) -> str:
    """What a data scientist does with the plain mlflow client: a run, and a version registered from it."""
    from mlflow import MlflowClient

    mlflow_client = MlflowClient(gateway.client().tracking_uri)
    run = mlflow_client.create_run(gateway.ensure_store())
    mlflow_client.log_metric(run.info.run_id, "roc_auc", 0.81)
    mlflow_client.set_terminated(run.info.run_id)
    if not mlflow_client.search_registered_models(filter_string=f"name = '{name}'"):
        mlflow_client.create_registered_model(name, tags={services.TEAM_TAG: team} if team else None)
    mlflow_client.create_model_version(name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    return run.info.run_id


def test_version_registered_outside_the_portal_appears_after_a_sync(mlflow_store, unique_name, team):
    run_id = _log_model_outside_the_portal(unique_name, team=team.slug)
    sync = services.registry_sync()
    assert sync.status == SyncRun.Status.SUCCEEDED
    assert sync.versions_created >= 1  # the store is shared with other tests' models
    version = ModelVersion.objects.get(model__name=unique_name)
    assert (version.version, version.run_id, version.stage) == (1, run_id, Stage.EXPERIMENT)
    assert version.metrics["roc_auc"] == pytest.approx(0.81)
    assert version.model.team == team
    assert StageTransition.objects.filter(version=version, to_stage=Stage.EXPERIMENT).count() == 1
    # A second sync adds nothing.
    assert services.registry_sync().versions_created == 0
    assert services.registry_sync().models_seen == sync.models_seen
    assert ModelVersion.objects.filter(model__name=unique_name).count() == 1


def test_stage_move_publishes_the_alias_and_archives_the_previous_holder(mlflow_store, unique_name, ds_lead):
    _log_model_outside_the_portal(unique_name)
    _log_model_outside_the_portal(unique_name)
    services.registry_sync()
    first, second = ModelVersion.objects.filter(model__name=unique_name).order_by("version")
    for version in (first, second):
        services.version_stage_set(actor=ds_lead, version=version, stage=Stage.CANDIDATE, reason="test")
    first.refresh_from_db()
    assert first.stage == Stage.ARCHIVED
    model = RegisteredModel.objects.get(name=unique_name)
    assert model.aliases_pending is True
    services.aliases_publish(model=model)
    assert gateway.aliases(unique_name) == {"candidate": 2}
    model.refresh_from_db()
    assert model.aliases_pending is False
    assert list(first.transitions.values_list("to_stage", flat=True)) == [
        "experiment",
        "candidate",
        "archived",
    ]


def test_skipping_a_stage_is_refused_and_changes_nothing(mlflow_store, unique_name, ds_lead):
    _log_model_outside_the_portal(unique_name)
    services.registry_sync()
    version = ModelVersion.objects.get(model__name=unique_name)
    with pytest.raises(services.DomainError, match="cannot move from Experiment to Production"):
        services.version_stage_set(actor=ds_lead, version=version, stage=Stage.PRODUCTION, reason="skip")
    version.refresh_from_db()
    assert version.stage == Stage.EXPERIMENT
    assert version.transitions.count() == 1


def test_alias_moved_in_mlflow_by_someone_else_is_flagged_and_recorded(mlflow_store, unique_name, ds_lead):
    _log_model_outside_the_portal(unique_name)
    _log_model_outside_the_portal(unique_name)
    services.registry_sync()
    first = ModelVersion.objects.get(model__name=unique_name, version=1)
    services.version_stage_set(actor=ds_lead, version=first, stage=Stage.CANDIDATE, reason="test")
    services.aliases_publish(model=first.model)

    gateway.client().set_registered_model_alias(unique_name, "candidate", "2")  # by hand, in MLflow
    sync = services.registry_sync()
    assert sync.alias_drifts == 1
    drift = AliasDrift.objects.get(model__name=unique_name, resolved_at__isnull=True)
    assert (drift.alias, drift.expected_version, drift.found_version) == ("candidate", 1, 2)
    # Seen again at the next sync, it is not recorded twice.
    assert services.registry_sync().alias_drifts == 0
    assert AliasDrift.objects.filter(model__name=unique_name).count() == 1
    # Publishing the portal's aliases puts MLflow right and closes the drift.
    services.aliases_publish(model=first.model)
    assert gateway.aliases(unique_name) == {"candidate": 1}
    assert not AliasDrift.objects.filter(model__name=unique_name, resolved_at__isnull=True).exists()


def test_sync_with_mlflow_unreachable_fails_visibly_and_keeps_the_mirror(fraud_model, mlflow_unreachable):
    before = ModelVersion.objects.count()
    sync = services.registry_sync()
    assert sync.status == SyncRun.Status.FAILED
    assert sync.error
    assert sync.finished_at is not None
    assert ModelVersion.objects.count() == before


def test_sync_task_retries_with_backoff_when_mlflow_is_unreachable():
    assert gateway.RegistryUnavailable in tasks.sync_registry.autoretry_for
    assert tasks.sync_registry.retry_backoff
    assert tasks.publish_aliases.max_retries is None  # an approved stage's alias is never given up on


def test_register_from_a_run_without_a_model_names_the_problem(mlflow_store, unique_name, data_scientist):
    run = gateway.client().create_run(gateway.ensure_store())
    gateway.client().log_metric(run.info.run_id, "roc_auc", 0.5)
    with pytest.raises(services.DomainError, match="has no logged model"):
        services.register_from_run(actor=data_scientist, model_name=unique_name, run_id=run.info.run_id)
    with pytest.raises(services.DomainError, match="does not exist"):
        services.register_from_run(actor=data_scientist, model_name=unique_name, run_id="0" * 32)
    assert not RegisteredModel.objects.filter(name=unique_name).exists()


@pytest.mark.django_db(transaction=True)
def test_sync_runs_in_a_worker_process(mlflow_store, unique_name, team, start_celery):
    from django.conf import settings

    _log_model_outside_the_portal(unique_name, team=team.slug)
    worker = start_celery("worker", env={"MLFLOW_TRACKING_URI": settings.MLFLOW_TRACKING_URI})
    tasks.sync_registry.delay()
    worker.wait_for(lambda: ModelVersion.objects.filter(model__name=unique_name).exists())
