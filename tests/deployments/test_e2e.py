"""Rollouts end to end: a real Celery worker and beat, Redis, PostgreSQL, MLflow, the inference service
(gunicorn) over HTTP, the log writer and the traffic simulator, as in production.

The policy's timings are short (an analysis every 3 s) so a whole canary takes seconds. Each test waits
for an outcome with a deadline (never a fixed sleep) and asserts what the rollout left behind.
"""

import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from apps.alerts.models import Alert
from apps.audit.models import AuditEvent
from apps.deployments.models import Rollout, RolloutPolicy, StagingTestResult
from apps.governance import services as governance
from apps.governance.models import PromotionRequest
from apps.governance.selectors import policy_current
from apps.registry import gateway
from apps.registry.models import DatasetVersion, ModelVersion, Stage, StageTransition
from apps.registry.services import model_ensure, version_mirror
from apps.serving.models import ServingPolicy
from apps.serving.routing import routes_key
from apps.serving.services import scoring_client_create
from apps.training import synthetic
from tests.conftest import ROOT, database_url_for_subprocess, inference_process
from tests.serving.conftest import _training, pyfunc_model, serving_reset  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.django_db(transaction=True)]

E2E_POLICY = {
    "steps": [500, 10_000],
    "analysis_interval_s": 3.0,
    "min_samples": 5,
    # The same model on both sides, but a handful of answers from different customers (sticky routing):
    # the score shift of such thin windows is noise. It has tests of its own (test_controller.py).
    "score_shift_min_samples": 5,
    "score_shift_max": 100.0,
    # The candidate loads in the inference service at its first request: the first windows may be thin.
    "inconclusive_limit": 6,
    # A busy shared test machine: the latency and score thresholds are not what these tests are about.
    "latency_p99_max_ms": 5_000.0,
    "progress_deadline_s": 180.0,
    "staging_latency_requests": 30,
    "staging_holdout_size": 300,
    "staging_auc_gate": 0.6,
}


@dataclass
class Deployed:
    model: object
    token: str

    @property
    def name(self) -> str:
        return self.model.name

    def version(self, number: int) -> ModelVersion:
        return ModelVersion.objects.get(model=self.model, version=number)


def _dataset() -> DatasetVersion:
    """The frame the session's model was trained on (tests/serving/conftest.py), as a dataset version."""
    frame = synthetic.generate_transactions(4_000, seed=11)
    relative = f"datasets/e2e-{uuid.uuid4().hex[:8]}.parquet"
    path = os.path.join(settings.DATASET_ROOT, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    frame.to_parquet(path)
    return DatasetVersion.objects.create(
        name="e2e", sha256=uuid.uuid4().hex * 2, md5="0" * 32, size_bytes=os.path.getsize(path),
        row_count=len(frame), path=relative, dvc_path=relative + ".dvc",
    )  # fmt: skip


def _register(model, source: str, run_id: str, signature: dict, dataset, stage: Stage) -> ModelVersion:
    remote = gateway.create_version(model.name, source=source, run_id=run_id)
    version, _ = version_mirror(
        model=model, remote=remote, signature=signature, dataset=dataset,
        params={"seed": 11, "holdout_fraction": 0.25}, metrics={"roc_auc": 0.8},
    )  # fmt: skip
    ModelVersion.objects.filter(pk=version.pk).update(stage=stage)
    return version


def _raising_model(signature: dict) -> tuple[str, str]:
    """A model whose every prediction raises, logged to MLflow: (model URI, run id)."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import ModelSignature

    from tests.deployments.faulty import RaisingModel

    mlflow.set_tracking_uri(settings.MLFLOW_TRACKING_URI)
    with mlflow.start_run(experiment_id=gateway.ensure_store()) as run:
        info = mlflow.sklearn.log_model(
            RaisingModel(),
            "model",
            signature=ModelSignature.from_dict(signature),
            serialization_format="cloudpickle",
        )
    return info.model_uri, run.info.run_id


@pytest.fixture
def serving(mlflow_store, pyfunc_model, unique_name, team, data_scientist, settings):  # noqa: F811
    """A model in MLflow and the portal: v1 (trained, served by the logged model) in Production, v2 (the
    same model) a Candidate,
    v3 (a model that raises) a Candidate; its dataset, a fast rollout policy, a scoring client."""
    settings.SERVING_LOAD_WAIT = 60.0
    model = model_ensure(name=unique_name, team=team, owners=[data_scientist])
    dataset = _dataset()
    good = (pyfunc_model.model_uri, pyfunc_model.run_id, pyfunc_model.signature, dataset)
    _register(model, *good, Stage.PRODUCTION)
    _register(model, *good, Stage.CANDIDATE)
    _register(
        model, *_raising_model(pyfunc_model.signature), pyfunc_model.signature, dataset, Stage.CANDIDATE
    )
    ModelVersion.objects.filter(model=model).update(created_by=data_scientist)
    gateway.set_alias(model.name, "production", 1)
    ServingPolicy.objects.create(model=model, version=1, latency_budget_ms=60_000)
    RolloutPolicy.objects.create(model=model, version=1, **E2E_POLICY)
    _, token = scoring_client_create(actor=None, name=f"java-{uuid.uuid4().hex[:6]}")
    serving_reset()
    yield Deployed(model=model, token=token)
    serving_reset()


@pytest.fixture
def inference_server(serving, settings, tmp_path):
    """gunicorn serving the lean inference entry point on a free port, as tests/serving runs it."""
    metrics = tmp_path / "prometheus"
    metrics.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(metrics)}
    with inference_process(settings, tmp_path / "gunicorn.log", env=env) as base:
        yield base


@pytest.fixture
def processes(start_celery, inference_server, settings, tmp_path):
    """Worker, beat and log writer on the test database, the worker scoring staging through gunicorn."""
    env = {
        "MLFLOW_TRACKING_URI": settings.MLFLOW_TRACKING_URI,
        "MLFLOW_ARTIFACT_ROOT": settings.MLFLOW_ARTIFACT_ROOT,
        "DATASET_ROOT": settings.DATASET_ROOT,
        "HAFNIUM_INFERENCE_URL": inference_server,
        "DEPLOYMENTS_TICK_SECONDS": "0.5",
    }
    running = []

    def start(what: str, **extra):
        if what == "log-writer":
            log = tmp_path / "log-writer.log"
            with log.open("w") as out:
                process = subprocess.Popen(
                    [sys.executable, "manage.py", "serving_log_writer", "--batch", "200"],
                    cwd=ROOT, env={**os.environ, "DATABASE_URL": database_url_for_subprocess(), **env},
                    stdout=out, stderr=subprocess.STDOUT,
                )  # fmt: skip
            running.append(process)
            return process
        return start_celery(what, env={**env, **extra})

    start.env = env
    start.url = inference_server
    yield start
    for process in running:
        process.terminate()
        process.wait(timeout=20)


def simulate(processes, deployed: Deployed, *, seconds: float, rps: float = 80) -> subprocess.Popen:
    """The traffic simulator (the Java backend), in the background."""
    return subprocess.Popen(
        [sys.executable, "manage.py", "simulate_traffic", "--model", deployed.name, "--rps", str(rps),
         "--duration", str(seconds), "--url", processes.url, "--token", deployed.token, "--seed", "3"],
        cwd=ROOT, env={**os.environ, "DATABASE_URL": database_url_for_subprocess()},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def rollout_of(deployed: Deployed, kind: str, *, candidate: int):
    """A predicate for `wait_for`: the rollout once it has an outcome (finished, or paused for a person)."""

    def found():
        rollout = Rollout.objects.filter(
            model=deployed.model, kind=kind, candidate__version=candidate
        ).first()
        return rollout if rollout is not None and not rollout.is_active else None

    return found


def promote(deployed: Deployed, number: int, to_stage: Stage, requester, approvers, **approve):
    request = governance.promotion_request_create(
        actor=requester, version=deployed.version(number), to_stage=to_stage, justification="e2e"
    )
    for approver in approvers:
        governance.promotion_approve(actor=approver, request=request, **approve)
    return request


def completed_request(deployed: Deployed, number: int, to_stage: Stage, requester) -> PromotionRequest:
    """A promotion already approved and completed (the tick's sweep starts its rollout)."""
    return PromotionRequest.objects.create(
        version=deployed.version(number), from_stage=deployed.version(number).stage, to_stage=to_stage,
        requested_by=requester, justification="e2e", policy=policy_current(), required_roles=[],
        evidence={}, evidence_sha256="0" * 64, status=PromotionRequest.Status.COMPLETED,
        expires_at=timezone.now(), decided_at=timezone.now(),
    )  # fmt: skip


def routes_in_redis(deployed: Deployed) -> dict[int, int]:
    raw = redis.Redis.from_url(settings.REDIS_URL).hgetall(routes_key(deployed.name, "production"))
    return {int(k): int(v) for k, v in raw.items() if k != b"revision"}


def test_staging_then_healthy_canary_to_full_rollout(
    serving, processes, data_scientist, ml_engineer, model_risk, compliance
):
    worker = processes("worker")
    processes("beat")
    processes("log-writer")
    override = {"override_reason": "the card is not what this test is about"}
    promote(serving, 2, Stage.STAGING, data_scientist, [ml_engineer], **override)
    staging = worker.wait_for(rollout_of(serving, "staging", candidate=2), timeout=240)
    assert staging.state == Rollout.State.STAGED, (staging.reason, list(staging.staging_results.values()))
    assert set(staging.staging_results.values_list("test", "passed")) == {
        (test, True) for test in StagingTestResult.Test.values
    }
    assert serving.version(2).stage == Stage.STAGING

    request = promote(serving, 2, Stage.PRODUCTION, data_scientist, [], **override)
    staging_check = next(c for c in request.prechecks if c["name"] == "Staging tests")
    assert staging_check["passed"] is True
    traffic = simulate(processes, serving, seconds=90)
    for approver in (model_risk, compliance):
        governance.promotion_approve(actor=approver, request=request, **override)
    try:
        canary = worker.wait_for(rollout_of(serving, "canary", candidate=2), timeout=180)
    finally:
        traffic.terminate()
    seen = list(canary.measurements.values_list("metric", "verdict", "message"))
    assert canary.state == Rollout.State.SUCCEEDED, (canary.reason, seen)
    assert set(canary.measurements.values_list("verdict", flat=True)) <= {"successful", "inconclusive"}
    assert canary.measurements.filter(metric="error_rate", canary_requests__gte=5).exists()
    assert (serving.version(2).stage, serving.version(1).stage) == (Stage.PRODUCTION, Stage.ARCHIVED)
    assert worker.wait_for(lambda: gateway.aliases(serving.name).get("production") == 2, timeout=60)
    assert worker.wait_for(lambda: "canary" not in gateway.aliases(serving.name), timeout=60)


def test_staging_tests_fail_and_the_version_is_rejected(serving, processes, data_scientist, ml_engineer):
    worker = processes("worker")
    processes("beat")
    promote(serving, 3, Stage.STAGING, data_scientist, [ml_engineer], override_reason="not the point")
    staging = worker.wait_for(rollout_of(serving, "staging", candidate=3), timeout=240)
    assert staging.state == Rollout.State.REJECTED
    assert staging.cause == Rollout.Cause.STAGING_TESTS_FAILED
    assert serving.version(3).stage == Stage.REJECTED
    failed = set(staging.staging_results.filter(passed=False).values_list("test", flat=True))
    assert "fallbacks" in failed or "signature" in failed
    assert "staging" not in gateway.aliases(serving.name)  # no alias moved
    with pytest.raises(governance.DomainError):  # a Rejected version goes no further
        governance.promotion_request_create(
            actor=data_scientist, version=serving.version(3), to_stage=Stage.PRODUCTION, justification="again"
        )


def test_failing_canary_is_rolled_back_automatically(serving, processes, data_scientist):
    ModelVersion.objects.filter(pk=serving.version(3).pk).update(stage=Stage.STAGING)
    worker = processes("worker")
    processes("beat")
    processes("log-writer")
    traffic = simulate(processes, serving, seconds=60)
    completed_request(serving, 3, Stage.PRODUCTION, data_scientist)
    canary = worker.wait_for(rollout_of(serving, "canary", candidate=3), timeout=120)
    traffic.terminate()
    assert canary.state == Rollout.State.ROLLED_BACK
    assert canary.cause == Rollout.Cause.ANALYSIS_FAILED
    assert canary.measurements.filter(verdict="failed").exists()
    assert serving.version(3).stage == Stage.ROLLED_BACK
    assert serving.version(1).stage == Stage.PRODUCTION
    assert routes_in_redis(serving) == {1: 10_000}
    assert Alert.objects.filter(source="deployments", key=f"rollout-{canary.pk}", severity="page").exists()


def test_worker_killed_mid_canary_resumes_and_completes_once(serving, processes, data_scientist):
    ModelVersion.objects.filter(pk=serving.version(2).pk).update(stage=Stage.STAGING)
    first = processes("worker")
    processes("beat")
    processes("log-writer")
    traffic = simulate(processes, serving, seconds=90)
    completed_request(serving, 2, Stage.PRODUCTION, data_scientist)
    first.wait_for(
        lambda: Rollout.objects.filter(model=serving.model, state=Rollout.State.ANALYSING).exists(),
        timeout=120,
    )
    os.kill(first.process.pid, signal.SIGKILL)
    first.process.wait(timeout=10)
    second = processes("worker")
    canary = second.wait_for(rollout_of(serving, "canary", candidate=2), timeout=180)
    traffic.terminate()
    assert canary.state == Rollout.State.SUCCEEDED, canary.reason
    assert canary.events.filter(action="finish_promotion").count() == 1
    assert StageTransition.objects.filter(version=serving.version(2), to_stage=Stage.PRODUCTION).count() == 1
    assert second.wait_for(lambda: gateway.aliases(serving.name).get("production") == 2, timeout=60)
    published = AuditEvent.objects.filter(
        action="registry.aliases_published", object_id=str(serving.model.pk)
    )
    # The audit event commits just after MLflow has the alias: wait for it, then check there is one.
    assert second.wait_for(published.exists, timeout=30)
    assert [event.after.get("production") for event in published] == [2]


def test_no_traffic_is_inconclusive_and_pauses_for_a_person(serving, processes, data_scientist):
    ModelVersion.objects.filter(pk=serving.version(2).pk).update(stage=Stage.STAGING)
    RolloutPolicy.objects.filter(model=serving.model).update(inconclusive_limit=1)  # pause at the second
    worker = processes("worker")
    processes("beat")
    completed_request(serving, 2, Stage.PRODUCTION, data_scientist)
    paused = worker.wait_for(
        lambda: Rollout.objects.filter(model=serving.model, state=Rollout.State.PAUSED).first(), timeout=120
    )
    assert set(paused.measurements.values_list("verdict", flat=True)) == {"inconclusive"}
    assert paused.measurements.values("metric").distinct().count() == 4
    assert serving.version(2).stage == Stage.STAGING  # never promoted
    assert routes_in_redis(serving) == {1: 9_500, 2: 500}
