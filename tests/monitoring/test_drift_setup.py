"""Drift references stored and loaded; monitoring policies (versioned, audited, admin); schedules, sweeps."""

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from apps.audit.models import AuditEvent
from apps.monitoring import drift
from apps.monitoring.models import DriftReference, DriftRun, MonitoringPolicy
from apps.monitoring.services import drift_references, drift_schedule
from apps.monitoring.services.drift_policy import policy_in_force, policy_publish
from apps.training import synthetic
from hafnium_portal.errors import DomainError

from .test_drift_pages import make_model


def test_references_survive_storage_exactly():
    rng = np.random.default_rng(4)
    built = drift_references.References(
        numeric={"amount": drift.ReferenceBins.from_sample(rng.lognormal(3, 1, 5_000))},
        categorical={"channel": drift.CategoryBins.from_sample(rng.choice(["pos", "atm", "mobile"], 5_000))},
        embedding=drift.EmbeddingReference.from_sample(rng.normal(size=(2_000, 16))),
        score=drift.ReferenceBins.from_sample(rng.random(3_000)),
        score_mean=0.5,
        score_values=rng.random(3_000),
    )
    payload, features = drift_references.dump_references(built)
    loaded = drift_references.load_references(payload, features, {})
    current = {
        "amount": rng.lognormal(3.2, 1, 4_000),
        "channel": rng.choice(["pos", "atm", "ecommerce"], 4_000),
        synthetic.EMBEDDING: rng.normal(0.3, 1, size=(4_000, 16)),
    }

    def compared(references):
        summaries = {name: ref.summarise(current[name]) for name, ref in references.features.items()}
        return drift.compare_summaries(references.features, summaries)

    assert compared(loaded) == compared(built)
    assert np.array_equal(loaded.score_values, built.score_values)
    assert loaded.decline_rate(0.9) == built.decline_rate(0.9)


@pytest.mark.django_db
def test_a_version_references_are_built_once_from_its_training_run(production):
    stored = drift_references.drift_reference_ensure(version=production)
    again = drift_references.drift_reference_ensure(version=production)
    assert again.pk == stored.pk
    assert DriftReference.objects.count() == 1
    assert stored.source["amount"] == "profile bins; KS on the training column"
    assert stored.source["score"] == "holdout scores"
    loaded = drift_references.drift_reference_load(version=production)
    profile = production.reference_profile.data["features"]["amount"]
    assert loaded.numeric["amount"].edges.tolist() == profile["bin_edges"]
    assert loaded.numeric["amount"].reference_counts.tolist() == profile["bin_counts"]
    assert loaded.embedding is not None
    assert AuditEvent.objects.filter(action="monitoring.drift_reference_built").count() == 1


@pytest.mark.django_db
def test_policies_are_versioned_audited_and_for_administrators(team, admin_user, manager):
    model, _ = make_model("fraud-scorer", team)
    first = policy_in_force(model)
    assert (first.version, first.psi_alert, first.auc_drop_retrain, first.psi_severe) == (1, 0.2, 0.05, 0.5)
    assert (first.prediction_shift_investigate, first.auc_drop_rollback) == (0.1, 0.1)
    second = policy_publish(actor=admin_user, model=model, psi_alert=0.25, note="fewer alerts")
    assert (second.version, second.psi_alert, second.psi_watch) == (2, 0.25, 0.1)
    assert policy_in_force(model) == second
    event = AuditEvent.objects.filter(action="monitoring.policy_published").order_by("id").last()
    assert (event.before["psi_alert"], event.after["psi_alert"]) == (0.2, 0.25)
    with pytest.raises(DomainError, match="watch <= alert <= severe"):
        policy_publish(actor=admin_user, model=model, psi_alert=0.7)
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        policy_publish(actor=manager, model=model, psi_alert=0.3)
    assert MonitoringPolicy.objects.filter(model=model).count() == 2


@pytest.mark.django_db
def test_the_admin_publishes_a_new_policy_version(client, admin_user, team):
    model, _ = make_model("fraud-scorer", team)
    policy_in_force(model)
    client.force_login(admin_user)
    data = {"model": model.pk, "window_hours": 12, "psi_watch": 0.1, "psi_alert": 0.3, "psi_severe": 0.6,
            "severe_features": 2, "persistence_k": 2, "persistence_m": 4, "auc_drop_retrain": 0.05,
            "auc_drop_rollback": 0.1, "min_labels": 500, "min_label_positives": 20,
            "prediction_shift_investigate": 0.1, "auto_rollback": "on", "auto_retrain": "on",
            "note": "x"}  # fmt: skip
    response = client.post("/admin/monitoring/monitoringpolicy/add/", data)
    assert response.status_code == 302, response.content[:2000]
    latest = policy_in_force(model)
    assert (latest.version, latest.psi_alert, latest.created_by) == (2, 0.3, admin_user)
    refused = client.post("/admin/monitoring/monitoringpolicy/add/", {**data, "psi_severe": 0.2})
    assert refused.status_code == 200
    assert b"watch &lt;= alert &lt;= severe" in refused.content


@pytest.mark.django_db
def test_the_sweep_gives_each_production_model_a_schedule_once_and_resumes_stuck_runs(
    team, monkeypatch, settings
):
    settings.DRIFT_RUN_INTERVAL_MINUTES = 30
    model, version = make_model("fraud-scorer", team)
    make_model("candidate-only", team, stage="candidate")
    enqueued = []
    monkeypatch.setattr(drift_schedule, "enqueue", lambda *args, **kwargs: enqueued.append((args, kwargs)))
    stuck = DriftRun.objects.create(
        model=model, version=version, window_start=timezone.now(), window_end=timezone.now()
    )
    DriftRun.objects.filter(pk=stuck.pk).update(created_at=timezone.now() - timedelta(minutes=10))
    DriftRun.objects.create(
        model=model, version=version, window_start=timezone.now(), window_end=timezone.now()
    )

    first = drift_schedule.drift_schedules_sweep()

    assert first == {"schedules_created": 1, "runs_resumed": [stuck.pk]}
    task = PeriodicTask.objects.get(name="drift run: fraud-scorer")
    assert task.task == "apps.monitoring.tasks_drift.drift_run_scheduled"
    assert task.interval.every == 30
    assert enqueued == [
        (
            ("apps.monitoring.tasks_drift.drift_run_execute", stuck.pk),
            {"task_id": f"drift-run-{stuck.pk}-resume"},
        )
    ]
    # an administrator's change stands: the sweep never rewrites an existing schedule
    PeriodicTask.objects.filter(pk=task.pk).update(enabled=False)
    assert drift_schedule.drift_schedules_sweep()["schedules_created"] == 0
    assert not PeriodicTask.objects.get(pk=task.pk).enabled


@pytest.mark.django_db
def test_the_scheduled_task_requests_a_run_only_for_a_production_model(
    team, django_capture_on_commit_callbacks
):
    from apps.monitoring.tasks_drift import drift_run_scheduled

    model, _ = make_model("fraud-scorer", team)
    staged, _ = make_model("staged-only", team, stage="staging")
    with django_capture_on_commit_callbacks(execute=False):
        run_id = drift_run_scheduled.apply(args=[model.pk]).get()
        assert drift_run_scheduled.apply(args=[staged.pk]).get() is None
    run = DriftRun.objects.get(pk=run_id)
    assert (run.trigger, run.status, run.requested_by) == ("schedule", "queued", None)
    assert run.window_end - run.window_start == timedelta(hours=24)
