"""The portal's mirror against a real MLflow store: sync, alias drift, stage moves, unreachable MLflow."""

import pytest

from apps.registry import gateway, services, tasks
from apps.registry.models import AliasDrift, ModelVersion, RegisteredModel, Stage, StageTransition, SyncRun

pytestmark = pytest.mark.django_db


def _log_model_outside_the_portal(name: str, *, team: str | None = None, user: str | None = None) -> str:
    """What a data scientist does with the plain mlflow client: a run, and a version registered from it."""
    from mlflow import MlflowClient

    mlflow_client = MlflowClient(gateway.client().tracking_uri)
    run = mlflow_client.create_run(gateway.ensure_store(), tags={"mlflow.user": user} if user else None)
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


def test_a_model_whose_name_no_portal_url_can_hold_is_not_mirrored(mlflow_store, unique_name, team):
    _log_model_outside_the_portal(unique_name, team=team.slug)
    _log_model_outside_the_portal(f"{unique_name} with spaces?", team=team.slug)
    assert services.registry_sync().status == SyncRun.Status.SUCCEEDED
    assert RegisteredModel.objects.filter(name=unique_name).exists()
    assert not RegisteredModel.objects.filter(name__startswith=f"{unique_name} ").exists()


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


def test_a_version_synced_from_mlflow_records_who_mlflow_says_made_it(mlflow_store, unique_name, team):
    """MLflow's registry leaves a version's user empty: the run's user (`mlflow.user`) is recorded, so
    that governance can keep "the creator never decides" for versions of no portal creator."""
    _log_model_outside_the_portal(unique_name, team=team.slug, user="somebody-in-mlflow")
    assert gateway.client().get_model_version(unique_name, "1").user_id in (None, "")

    services.registry_sync()

    version = ModelVersion.objects.get(model__name=unique_name)
    assert version.mlflow_user == "somebody-in-mlflow"
    assert version.created_by is None  # no portal user of that name


def test_a_synced_version_whose_mlflow_user_is_a_portal_user_has_them_as_creator(
    mlflow_store, unique_name, team, data_scientist
):
    _log_model_outside_the_portal(unique_name, team=team.slug, user=data_scientist.username)
    services.registry_sync()
    version = ModelVersion.objects.get(model__name=unique_name)
    assert (version.mlflow_user, version.created_by) == (data_scientist.username, data_scientist)


def test_archiving_the_previous_holder_writes_its_own_audit_event(fraud_model, ds_lead):
    from apps.audit.models import AuditEvent

    production, staging = fraud_model.versions.get(version=1), fraud_model.versions.get(version=2)
    services.version_stage_set(actor=ds_lead, version=staging, stage=Stage.PRODUCTION, reason="better")

    archived = AuditEvent.objects.get(action="registry.stage_changed", object_id=str(production.pk))
    assert archived.before == {"stage": "production"}
    assert archived.after == {"stage": "archived", "reason": "replaced by v2", "replaced_by": staging.pk}
    assert archived.actor == ds_lead.username


def test_register_from_a_run_without_a_model_names_the_problem(mlflow_store, unique_name, data_scientist):
    from django.http import Http404

    run = gateway.client().create_run(gateway.ensure_store())
    gateway.client().log_metric(run.info.run_id, "roc_auc", 0.5)
    with pytest.raises(services.DomainError, match="has no logged model"):
        services.version_register(actor=None, model_name=unique_name, run_id=run.info.run_id)
    with pytest.raises(Http404, match="There is no run"):
        services.version_register(actor=None, model_name=unique_name, run_id="0" * 32)
    assert not RegisteredModel.objects.filter(name=unique_name).exists()


def test_publishing_aliases_gives_up_after_bounded_retries_and_the_sweep_sends_one_copy_per_window(
    fraud_model, mlflow_unreachable, celery_eager, monkeypatch
):
    """Eager mode runs each retry for real, at once; the sweep's marker keeps an outage from piling up."""
    from datetime import timedelta

    from django.utils import timezone

    attempts = []
    real_aliases = gateway.aliases
    monkeypatch.setattr(gateway, "aliases", lambda name: attempts.append(name) or real_aliases(name))
    RegisteredModel.objects.filter(pk=fraud_model.pk).update(aliases_pending=True)
    celery_eager.conf.task_eager_propagates = False  # as a worker: a retry is a new run, not an exception

    assert services.aliases_publish_pending() == [fraud_model.pk]  # enqueued, ran, retried, gave up
    assert len(attempts) == 1 + tasks.publish_aliases.max_retries
    assert tasks.publish_aliases.max_retries is not None

    assert services.aliases_publish_pending() == []  # the next sweeps leave it to the one on its way
    assert services.aliases_publish_pending() == []
    assert len(attempts) == 1 + tasks.publish_aliases.max_retries

    fraud_model.refresh_from_db()
    assert fraud_model.aliases_pending is True
    RegisteredModel.objects.filter(pk=fraud_model.pk).update(
        aliases_enqueued_at=timezone.now() - timedelta(hours=1)
    )
    assert services.aliases_publish_pending() == [fraud_model.pk]  # that one gave up: a new copy goes
    assert len(attempts) == 2 * (1 + tasks.publish_aliases.max_retries)


@pytest.mark.django_db(transaction=True)
def test_sync_task_fails_and_is_retried_with_backoff_by_a_worker_until_its_bound(start_celery):
    """A real worker against a dead MLflow port; the portal, not the test, bounds each MLflow call."""
    from hafnium_portal.embedded_redis import free_port

    worker = start_celery(
        "worker",
        env={
            "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}",
            "REGISTRY_RETRY_BACKOFF": "1",
            "REGISTRY_RETRY_BACKOFF_MAX": "2",
            "REGISTRY_MAX_RETRIES": "2",
        },
    )
    tasks.sync_registry.delay()

    worker.wait_for(lambda: SyncRun.objects.filter(status=SyncRun.Status.FAILED).count() == 3, timeout=90)
    worker.wait_for(lambda: "raised unexpected: RegistryUnavailable" in worker.log.read_text(), timeout=30)
    log = worker.log.read_text()
    assert log.count("Retry in") == 2, log[-3000:]
    assert SyncRun.objects.count() == 3  # one attempt and two retries: bounded
    assert all(
        error.startswith("MLflow is unavailable") for error in SyncRun.objects.values_list("error", flat=True)
    )


@pytest.mark.django_db(transaction=True)
def test_sync_runs_in_a_worker_process(mlflow_store, unique_name, team, start_celery):
    from django.conf import settings

    _log_model_outside_the_portal(unique_name, team=team.slug)
    worker = start_celery("worker", env={"MLFLOW_TRACKING_URI": settings.MLFLOW_TRACKING_URI})
    tasks.sync_registry.delay()
    worker.wait_for(lambda: ModelVersion.objects.filter(model__name=unique_name).exists())


@pytest.mark.django_db(transaction=True)
def test_mlflow_is_read_outside_database_transactions(mlflow_runs, unique_name, team, monkeypatch):
    """Artifact downloads take as long as MLflow and the network do: holding a transaction meanwhile
    (on SQLite, the one write lock) would stall every writer of the portal."""
    from django.db import connection

    seen = []
    for name in ("run", "run_json_artifact", "model_signature", "artifact_sha256"):
        real = getattr(gateway, name)
        monkeypatch.setattr(
            gateway,
            name,
            lambda *a, _real=real, _name=name, **k: (
                seen.append((_name, connection.in_atomic_block)) or _real(*a, **k)
            ),
        )

    _log_model_outside_the_portal(unique_name, team=team.slug)
    services.registry_sync()
    run_id = mlflow_runs.with_model(team=team.slug)
    services.version_register(actor=None, model_name=f"{unique_name}-2", run_id=run_id)

    assert {name for name, _ in seen} == {"run", "run_json_artifact", "model_signature", "artifact_sha256"}
    assert [name for name, in_transaction in seen if in_transaction] == []
