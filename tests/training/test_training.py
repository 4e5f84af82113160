"""Train, validate, log and register against a real MLflow store; datasets are versioned by content."""

import hashlib

import pandas as pd
import pytest
from django.core.management import CommandError, call_command

from apps.audit.models import AuditEvent
from apps.registry import gateway
from apps.registry.models import DatasetVersion, ModelVersion, Stage
from apps.registry.services import dataset_register
from apps.training import services, synthetic, tasks
from apps.training.models import TrainingRun

pytestmark = pytest.mark.django_db


def test_train_model_command_registers_a_version_in_mlflow_and_the_portal(
    mlflow_store, unique_name, team, data_scientist
):
    call_command(
        "train_model", model=unique_name, rows=20_000, seed=3, team=team.slug, user=data_scientist.username
    )

    version = ModelVersion.objects.get(model__name=unique_name)
    assert version.version == 1
    assert version.stage == Stage.EXPERIMENT
    assert version.created_by == data_scientist
    assert version.model.team == team
    assert version.metrics["roc_auc"] > 0.8
    low, high = version.confidence_intervals["roc_auc"]
    assert low <= version.metrics["roc_auc"] <= high
    assert len(version.curves["roc"]["fpr"]) <= 200
    assert len(version.artifact_sha256) == 64
    assert {f["name"] for f in __import__("json").loads(version.signature["inputs"])} >= set(
        synthetic.FEATURES
    )
    assert version.dataset.row_count == 20_000
    assert set(version.reference_profile.data["features"]) == set(synthetic.FEATURES)

    remote = gateway.client().get_model_version(unique_name, "1")
    assert remote.run_id == version.run_id
    run = gateway.run(version.run_id)
    assert run.status == "FINISHED"
    assert run.params["dataset_sha256"] == version.dataset.sha256
    assert run.metrics["roc_auc"] == pytest.approx(version.metrics["roc_auc"])
    artifacts = {a.path for a in gateway.client().list_artifacts(version.run_id)}
    assert {"validation.json", "reference_profile.json", "model_card.md"} <= artifacts
    assert TrainingRun.objects.get(model_name=unique_name).status == TrainingRun.Status.REGISTERED
    # Registered through the registry's one service: its audit event, and who MLflow says made it.
    assert version.mlflow_user == data_scientist.username
    registered = AuditEvent.objects.get(action="registry.version_registered", object_id=str(version.pk))
    assert registered.actor == data_scientist.username
    assert registered.after["run_id"] == version.run_id
    training = TrainingRun.objects.get(model_name=unique_name)
    assert [
        e.action
        for e in AuditEvent.objects.filter(
            object_id=str(training.pk), object_type="training.trainingrun"
        ).order_by("id")
    ] == [
        "training.run_started",
        "training.run_finished",
    ]
    assert AuditEvent.objects.filter(
        action="registry.dataset_registered", object_id=str(version.dataset_id)
    ).exists()


def test_failed_quality_gate_records_the_run_as_failed_and_registers_nothing(
    mlflow_store, unique_name, data_scientist
):
    dataset = services.synthetic_dataset_create(actor=data_scientist, rows=5_000, seed=4)
    run_id = tasks.train_model.apply(args=[unique_name, dataset.pk, data_scientist.pk, None, 0.999]).get()

    run = TrainingRun.objects.get(pk=run_id)
    assert run.status == TrainingRun.Status.FAILED_GATE
    assert "< 0.999" in run.reason
    remote = gateway.run(run.mlflow_run_id)
    assert remote.status == "FAILED"
    assert remote.tags["hafnium.gate_reason"] == run.reason
    assert not ModelVersion.objects.filter(model__name=unique_name).exists()
    assert not gateway.client().search_registered_models(filter_string=f"name = '{unique_name}'")


def test_wrong_dataset_path_is_a_clear_cli_error(mlflow_store, unique_name, tmp_path):
    with pytest.raises(CommandError, match=r"dataset file .*absent\.parquet does not exist"):
        call_command("train_model", model=unique_name, dataset=tmp_path / "absent.parquet")
    not_parquet = tmp_path / "notes.parquet"
    not_parquet.write_text("not a parquet file")
    with pytest.raises(CommandError, match="is not a readable Parquet file"):
        call_command("train_model", model=unique_name, dataset=not_parquet)
    assert not TrainingRun.objects.exists()


def test_the_same_content_registered_twice_is_the_same_dataset_version(
    mlflow_store, tmp_path, data_scientist
):
    frame = synthetic.generate_transactions(2_000, seed=7)
    first, second = tmp_path / "a.parquet", tmp_path / "b.parquet"
    frame.to_parquet(first, index=False)
    frame.to_parquet(second, index=False)
    one = dataset_register(actor=data_scientist, name="txns", source=first)
    two = dataset_register(actor=data_scientist, name="txns", source=second)
    assert one.pk == two.pk
    assert DatasetVersion.objects.filter(name="txns").count() == 1

    content = one.file.read_bytes()
    assert one.sha256 == hashlib.sha256(content).hexdigest()
    assert one.row_count == 2_000
    assert {"name": "amount", "type": "double"} in one.schema
    pointer = (one.file.parent / f"{one.file.name}.dvc").read_text()
    assert f"md5: {hashlib.md5(content).hexdigest()}" in pointer  # noqa: S324
    assert f"size: {len(content)}" in pointer
    assert pd.read_parquet(one.file).equals(pd.read_parquet(first))

    other = tmp_path / "c.parquet"
    synthetic.generate_transactions(2_000, seed=8).to_parquet(other, index=False)
    assert dataset_register(actor=data_scientist, name="txns", source=other).pk != one.pk


def test_seed_demo_makes_users_and_a_model_in_every_stage_once(
    mlflow_store, settings, tmp_path, celery_eager
):
    from django.contrib.auth import get_user_model

    from apps.deployments.selectors import policy_in_force
    from apps.registry.cards import model_card

    settings.VAR_DIR = tmp_path
    call_command("seed_demo", rows=4_000)
    versions = list(ModelVersion.objects.filter(model__name="fraud-scorer").order_by("version"))
    assert [v.stage for v in versions] == [Stage.PRODUCTION, Stage.STAGING, Stage.CANDIDATE, Stage.EXPERIMENT]
    assert len({v.dataset_id for v in versions}) == 4  # each on its own dataset version
    assert gateway.aliases("fraud-scorer") == {"production": 1, "staging": 2, "candidate": 3}
    assert model_card(versions[1]).missing == []
    assert (
        get_user_model().objects.filter(username__in=["data_scientist", "ds_lead", "compliance"]).count() == 3
    )

    demo_policy = policy_in_force(versions[0].model)
    assert (demo_policy.model_id, demo_policy.min_samples, demo_policy.analysis_interval_s) == (
        versions[0].model_id,
        10,
        60.0,
    )

    call_command("seed_demo", rows=4_000)  # a second run creates nothing
    assert ModelVersion.objects.filter(model__name="fraud-scorer").count() == 4
    assert policy_in_force(versions[0].model).version == demo_policy.version
    assert len((tmp_path / "demo-credentials.txt").read_text().splitlines()) == 7


def test_a_second_delivery_of_the_same_training_task_trains_and_registers_nothing_more(
    mlflow_store, unique_name, team, data_scientist, monkeypatch
):
    dataset = services.synthetic_dataset_create(actor=data_scientist, rows=4_000, seed=5)
    trainings = []
    real_train = services.pipeline.train
    monkeypatch.setattr(
        services.pipeline, "train", lambda *a, **k: trainings.append(1) or real_train(*a, **k)
    )
    arguments = [unique_name, dataset.pk, data_scientist.pk, team.pk, 0.5]

    first = tasks.train_model.apply(args=arguments, task_id="delivery-1").get()
    second = tasks.train_model.apply(args=arguments, task_id="delivery-1").get()  # redelivered

    assert first == second
    assert len(trainings) == 1
    assert ModelVersion.objects.filter(model__name=unique_name).count() == 1
    assert len(gateway.client().search_model_versions(f"name='{unique_name}'")) == 1
    assert TrainingRun.objects.filter(idempotency_key="delivery-1").count() == 1


def test_a_delivery_that_takes_over_a_dead_ones_run_registers_the_run_already_logged(
    mlflow_store, unique_name, team, data_scientist, monkeypatch
):
    """The first delivery died after logging to MLflow; the next, once the lease is over, registers that
    MLflow run instead of training again."""
    from datetime import timedelta

    from django.utils import timezone

    dataset = services.synthetic_dataset_create(actor=data_scientist, rows=4_000, seed=6)

    def die_before_registering(**kwargs):
        raise SystemExit("worker killed")  # not an Exception: nothing of the run's ending happens

    monkeypatch.setattr(services, "_register", die_before_registering)
    with pytest.raises(SystemExit):
        services.model_train(actor=data_scientist, model_name=unique_name, dataset=dataset, team=team,
                             min_auc=0.5, key="k-1")  # fmt: skip
    monkeypatch.undo()
    run = TrainingRun.objects.get(idempotency_key="k-1")
    assert run.status == TrainingRun.Status.RUNNING
    assert run.mlflow_run_id

    busy = services.model_train(
        actor=data_scientist, model_name=unique_name, dataset=dataset, team=team, key="k-1"
    )
    assert busy.elsewhere
    assert busy.version is None

    TrainingRun.objects.filter(pk=run.pk).update(claimed_until=timezone.now() - timedelta(seconds=1))
    trainings = []
    monkeypatch.setattr(services.pipeline, "train", lambda *a, **k: trainings.append(1))
    outcome = services.model_train(
        actor=data_scientist, model_name=unique_name, dataset=dataset, team=team, key="k-1"
    )

    assert trainings == []
    assert outcome.run.status == TrainingRun.Status.REGISTERED
    assert outcome.version.run_id == run.mlflow_run_id
    assert outcome.version.reference_profile.data
    assert ModelVersion.objects.filter(model__name=unique_name).count() == 1


def test_an_unexpected_error_in_the_pipeline_ends_the_run_failed_with_the_reason(
    mlflow_store, unique_name, data_scientist, monkeypatch
):
    dataset = services.synthetic_dataset_create(actor=data_scientist, rows=2_000, seed=7)

    def broken(*args, **kwargs):
        raise ValueError("feature pipeline exploded")

    monkeypatch.setattr(services.pipeline, "train", broken)
    result = tasks.train_model.apply(args=[unique_name, dataset.pk, data_scientist.pk])

    assert result.failed()
    run = TrainingRun.objects.get(model_name=unique_name)
    assert run.status == TrainingRun.Status.ERROR
    assert run.reason == "ValueError: feature pipeline exploded"
    assert run.finished_at is not None
    finished = AuditEvent.objects.get(action="training.run_finished", object_id=str(run.pk))
    assert finished.after["status"] == "error"


def test_the_training_task_limit_and_the_broker_visibility_timeout_come_from_one_place(settings):
    from hafnium_portal.celery import app

    assert tasks.train_model.time_limit == settings.TRAINING_TASK_TIME_LIMIT
    assert app.conf.broker_transport_options["visibility_timeout"] > tasks.train_model.time_limit
