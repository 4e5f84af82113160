"""Drift runs on real prediction logs (PostgreSQL), the responses they trigger, and the retrain loop.

The model is trained by the portal's pipeline (real MLflow store); the traffic is what simulate_traffic
sends (its own generation), written as prediction logs; tasks run inline (Celery's eager mode) here,
and through a real worker in test_drift_worker.py.
"""

import numpy as np
import pytest

from apps.accounts.services import system_actor
from apps.alerts.models import Alert
from apps.audit.models import AuditEvent
from apps.governance.models import PromotionRequest
from apps.monitoring import drift
from apps.monitoring.models import DriftResponse, DriftRun, FeatureResult, Investigation, Retraining
from apps.monitoring.services import drift_responses
from apps.monitoring.services.drift_policy import policy_publish
from apps.monitoring.services.drift_runs import drift_run_request
from apps.registry.models import Stage
from apps.training import synthetic

from .conftest import give_labels, log_traffic, simulated

pytestmark = pytest.mark.django_db(transaction=True)
DRIFTED = ["amount", "ip_risk_score"]


def finished(run):
    run.refresh_from_db()
    assert run.status == DriftRun.Status.SUCCEEDED, run.error
    return run


def test_traffic_drifted_in_two_features_flags_exactly_those_two_and_alerts(
    production, manager, celery_eager
):
    log_traffic(production, simulated(3_000, seed=5, drift=1.0, drift_features=DRIFTED))

    run = finished(drift_run_request(actor=manager, model=production.model))

    assert run.drifted_features == DRIFTED
    assert run.verdict == drift.DRIFT
    assert run.rows == 3_000
    results = {result.feature: result for result in FeatureResult.objects.filter(run=run)}
    assert set(results) == {*synthetic.FEATURES, synthetic.EMBEDDING}
    assert sorted(name for name, r in results.items() if r.verdict == drift.DRIFT) == DRIFTED
    assert results["amount"].ks is not None  # KS on the exact training column
    assert results["merchant_category"].chi2 is not None
    assert results[synthetic.EMBEDDING].verdict != drift.DRIFT
    assert run.severe  # both at PSI >= 0.5
    assert run.summary["references"]["amount"] == "profile bins; KS on the training column"
    alert = Alert.objects.get(source=drift_responses.ALERT_SOURCE, key=f"{production.model.name}:drift")
    assert alert.severity == "ticket"
    assert "amount, ip_risk_score" in alert.title
    response = DriftResponse.objects.get(run=run, kind=DriftResponse.Kind.ALERT)
    assert response.detail["alert"] == alert.pk
    assert AuditEvent.objects.filter(action="monitoring.response_alert", object_id=str(run.pk)).exists()
    assert not DriftResponse.objects.filter(kind=DriftResponse.Kind.ROLLBACK).exists()  # not yet persisting
    # riskier IPs and larger amounts raise the scores: an investigation for the model's owners
    assert run.summary["prediction_shift"]["verdict"] == "shift"
    investigation = Investigation.objects.get(model=production.model, status=Investigation.Status.OPEN)
    investigate = DriftResponse.objects.get(run=run, kind=DriftResponse.Kind.INVESTIGATE)
    assert investigate.detail == {"investigation": investigation.pk, "owners": ["dana"]}


def test_persisting_severe_drift_rolls_back_to_the_last_good_version_once(
    replaced_production, manager, celery_eager
):
    from apps.deployments.models import RollbackReview, Rollout

    current = replaced_production
    log_traffic(current, simulated(3_000, seed=6, drift=1.0, drift_features=DRIFTED))

    runs = [finished(drift_run_request(actor=manager, model=current.model)) for _ in range(3)]

    assert [run.version for run in runs] == [current] * 3
    assert [run.severe for run in runs] == [True, True, True]
    assert [run.summary["persistent"] for run in runs] == [False, False, True]
    responses = DriftResponse.objects.filter(kind=DriftResponse.Kind.ROLLBACK)
    assert [(r.run_id, r.outcome) for r in responses] == [(runs[2].pk, DriftResponse.Outcome.DONE)]
    rollout = Rollout.objects.get(pk=responses[0].detail["rollout"])
    review = RollbackReview.objects.get(rollout=rollout)
    assert review.source == "monitoring"
    assert f"drift run #{runs[2].pk}" in review.reason
    current.refresh_from_db()
    assert current.stage == Stage.ROLLED_BACK
    assert current.model.versions.get(version=1).stage == Stage.PRODUCTION
    alert = Alert.objects.get(source=drift_responses.ALERT_SOURCE)  # deduplicated: one alert, counted
    assert alert.count == 3
    assert AuditEvent.objects.filter(
        action="monitoring.response_rollback", object_id=str(runs[2].pk)
    ).exists()


def test_a_failed_rollback_is_recorded_and_audited(production, manager, celery_eager, admin_user):
    policy_publish(actor=admin_user, model=production.model, persistence_k=1, persistence_m=1)
    log_traffic(production, simulated(2_000, seed=13, drift=1.0, drift_features=DRIFTED))

    run = finished(drift_run_request(actor=manager, model=production.model))

    response = DriftResponse.objects.get(run=run, kind=DriftResponse.Kind.ROLLBACK)
    assert response.outcome == DriftResponse.Outcome.FAILED
    assert "no earlier Production version" in response.detail["error"]
    assert AuditEvent.objects.filter(
        action="monitoring.response_rollback_failed", object_id=str(run.pk)
    ).exists()


def test_undrifted_traffic_flags_nothing_and_a_small_window_is_not_enough_data(
    production, manager, celery_eager
):
    log_traffic(production, simulated(60, seed=7))
    small = finished(drift_run_request(actor=manager, model=production.model))
    assert small.verdict == drift.NOT_ENOUGH_DATA
    assert not DriftResponse.objects.filter(run=small).exists()

    log_traffic(production, simulated(3_000, seed=8))
    run = finished(drift_run_request(actor=manager, model=production.model))
    assert run.drifted_features == []
    assert run.verdict in (drift.NO_DRIFT, drift.WATCH)
    assert not Alert.objects.filter(source=drift_responses.ALERT_SOURCE).exists()


def test_a_window_cut_in_chunks_gives_the_unsplit_result(production, manager, celery_eager, settings):
    log_traffic(production, simulated(3_000, seed=9, drift=0.5, drift_features=["amount"]))
    whole = finished(drift_run_request(actor=manager, model=production.model))
    settings.DRIFT_CHUNK_ROWS = 700
    chunked = finished(drift_run_request(actor=manager, model=production.model))

    assert (whole.chunks_total, chunked.chunks_total) == (1, 5)
    assert chunked.chunks_done == 5

    def table(run):
        return {
            r.feature: (r.psi, r.js, r.ks, r.ks_pvalue, r.chi2, r.verdict)
            for r in FeatureResult.objects.filter(run=run)
        }

    assert table(chunked) == table(whole)


def test_a_redelivered_run_does_nothing_the_second_time(production, manager, celery_eager):
    from apps.monitoring.tasks_drift import drift_run_execute

    log_traffic(production, simulated(600, seed=10))
    run = finished(drift_run_request(actor=manager, model=production.model))
    assert drift_run_execute.apply(args=[run.pk]).get() is None
    assert FeatureResult.objects.filter(run=run).count() == len(synthetic.FEATURES) + 1


def test_labels_with_degraded_auc_retrain_a_new_version_with_a_candidate_request(
    production, manager, admin_user, celery_eager
):
    policy_publish(actor=admin_user, model=production.model, auto_rollback=False, note="no rollback here")
    frame = synthetic.generate_transactions(6_000, seed=12, fraud_rate=0.05)
    frame["transaction_id"] = [f"labelled-{i}" for i in range(len(frame))]
    rng = np.random.default_rng(0)
    from apps.registry import gateway

    model = gateway.load_sklearn_model(production.source_uri)
    scores = model.predict_proba(frame[synthetic.FEATURES])[:, 1]
    degraded = np.where(rng.random(len(frame)) < 0.4, rng.random(len(frame)) * scores.max(), scores)
    log_traffic(production, frame, scores=degraded)
    give_labels(production, frame, frame[synthetic.LABEL])

    run = finished(drift_run_request(actor=manager, model=production.model))

    judged = run.summary["quality"]
    assert judged["kind"] == "realised"
    assert judged["drop"] >= 0.05
    low, high = judged["interval"]
    assert low <= judged["auc"] <= high
    retraining = Retraining.objects.get(run=run)
    assert retraining.status == Retraining.Status.DONE, retraining.error
    version = retraining.version
    assert version.model == production.model
    assert version.version == 2
    assert version.stage == Stage.EXPERIMENT
    assert version.dataset == retraining.dataset
    assert retraining.dataset.params["drift_run"] == run.pk
    assert retraining.dataset.row_count == 6_000
    request = retraining.promotion_request
    assert request.to_stage == Stage.CANDIDATE
    assert request.status == PromotionRequest.Status.PENDING
    assert request.requested_by == system_actor()
    assert f"drift run #{run.pk}" in request.justification
    assert not DriftResponse.objects.filter(kind=DriftResponse.Kind.ROLLBACK).exists()
    assert AuditEvent.objects.filter(action="monitoring.response_retrain", object_id=str(run.pk)).exists()
    assert AuditEvent.objects.filter(action="monitoring.retraining_finished").exists()
