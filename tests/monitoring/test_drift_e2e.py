"""End to end with real parts: simulate_traffic plays the Java backend against the inference service
(gunicorn), its log stream goes through the log writer into PostgreSQL, and drift runs go through a real
Celery worker (the window cut in chunks: a chord), then alert and roll back through the rollout controller.
"""

import json
import os
import time

import pytest
import requests
from django.core.management import call_command

from apps.alerts.models import Alert
from apps.deployments.models import RollbackReview
from apps.monitoring.models import DriftResponse, DriftRun
from apps.monitoring.services import drift_responses
from apps.monitoring.services.drift_runs import drift_run_request
from apps.registry.models import Stage
from apps.serving import hotpath
from apps.serving.management.commands.simulate_traffic import build_requests
from apps.serving.models import PredictionLog, ServingPolicy
from apps.serving.services import scoring_client_create
from tests.conftest import inference_process
from tests.serving.conftest import serving_reset

pytestmark = pytest.mark.django_db(transaction=True)
DRIFTED = ["amount", "ip_risk_score"]


@pytest.fixture
def inference(replaced_production, settings, tmp_path):
    """gunicorn serving the model (its v2 in Production) on a free port, and a scoring token."""
    model = replaced_production.model
    for number in (1, 2):
        ServingPolicy.objects.create(model=model, version=number, latency_budget_ms=60_000)
    _, token = scoring_client_create(actor=None, name="java-backend")
    serving_reset()
    env = {"DATASET_ROOT": settings.DATASET_ROOT}
    with inference_process(settings, tmp_path / "gunicorn.log", env=env, deadline=180) as base:
        yield base, token, model
    serving_reset()


def write_logs(expected: int) -> int:
    """Run the log writer until the stream's entries are in PostgreSQL."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        call_command("serving_log_writer", once=True, stdout=open(os.devnull, "w"))  # noqa: SIM115
        if PredictionLog.objects.count() >= expected:
            break
        time.sleep(0.5)
    return PredictionLog.objects.count()


def test_simulated_drift_in_two_features_is_flagged_alerted_and_rolled_back_when_it_persists(
    inference, manager, start_celery, settings, capsys
):
    base, token, model = inference
    # Warm up: the first request waits for the model to load (the rules answer meanwhile).
    body, _ = build_requests(1, seed=99, drift=0.0, fail_rate=0.0, run="warm")[0]
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        answer = requests.post(
            f"{base}/api/v1/models/{model.name}/score",
            data=body,
            timeout=300,
            headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
        )
        if answer.ok and not answer.json()["fallback"]:
            break
        body = body.replace(b'"sim-warm-0"', f'"sim-warm-{time.monotonic()}"'.encode())
        time.sleep(1)
    hotpath.redis_client().delete(hotpath.LOG_STREAM)
    call_command(
        "simulate_traffic", model=model.name, rps=40, duration=30, url=base, token=token, seed=3,
        drift=1.0, drift_features=",".join(DRIFTED), concurrency=16, timeout=30,
    )  # fmt: skip
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["ok"] >= 600, summary
    assert summary["fallback"] == 0, summary
    logged = write_logs(summary["ok"])
    assert logged == summary["ok"]
    assert PredictionLog.objects.filter(embedding__isnull=False).count() == logged

    worker = start_celery(
        "worker",
        env={
            "MLFLOW_TRACKING_URI": settings.MLFLOW_TRACKING_URI,
            "MLFLOW_ARTIFACT_ROOT": settings.MLFLOW_ARTIFACT_ROOT,
            "DATASET_ROOT": settings.DATASET_ROOT,
            "DRIFT_CHUNK_ROWS": "400",
        },
    )
    runs = []
    for _ in range(3):
        run = drift_run_request(actor=manager, model=model)

        def responded(run=run):
            run.refresh_from_db()
            if run.status == DriftRun.Status.FAILED:
                pytest.fail(run.error)
            return run.status == DriftRun.Status.SUCCEEDED and (
                not run.drifted_features or run.responses.filter(kind=DriftResponse.Kind.ALERT).exists()
            )

        worker.wait_for(responded, timeout=240)
        runs.append(run)

    first = runs[0]
    assert first.chunks_total == -(-logged // 400) > 1  # the window went through a chord
    assert first.rows == logged
    assert first.drifted_features == DRIFTED  # exactly the two drifted features
    alert = Alert.objects.get(source=drift_responses.ALERT_SOURCE)
    assert alert.model == model
    assert [run.severe for run in runs] == [True, True, True]
    worker.wait_for(
        lambda: DriftResponse.objects.filter(kind=DriftResponse.Kind.ROLLBACK).exists(), timeout=120
    )
    rollback = DriftResponse.objects.get(kind=DriftResponse.Kind.ROLLBACK)
    assert (rollback.run_id, rollback.outcome) == (runs[2].pk, DriftResponse.Outcome.DONE), rollback.detail
    assert RollbackReview.objects.get(rollout_id=rollback.detail["rollout"]).source == "monitoring"
    assert model.versions.get(version=2).stage == Stage.ROLLED_BACK
    assert model.versions.get(version=1).stage == Stage.PRODUCTION
