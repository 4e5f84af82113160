"""Compiling a version's fast scorer into its MLflow run, and loading scorers (a real MLflow store)."""

import json
import threading
import time

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from apps.audit.models import AuditEvent
from apps.registry import gateway
from apps.registry.models import ModelVersion
from apps.serving import compile as scorer_compilation
from apps.serving import runtime, tasks
from apps.serving.compile import ScorerCache, ScorerUnavailable, scorer_compile, scorer_load
from apps.training import pipeline as training
from apps.training import services as training_services
from apps.training.synthetic import FEATURES

pytestmark = pytest.mark.django_db


def _train(name, actor, *, seed=5, rows=8_000) -> ModelVersion:
    dataset = training_services.synthetic_dataset_create(actor=actor, rows=rows, seed=seed)
    return training_services.model_train(
        actor=actor, model_name=name, dataset=dataset, min_auc=0.5, seed=seed
    ).version


@pytest.fixture
def version(mlflow_store, unique_name, data_scientist):
    return _train(unique_name, data_scientist)


def _holdout_rows(version, count=300):
    import pandas as pd

    frame = pd.read_parquet(version.dataset.file)
    _, holdout = training.split(frame, seed=version.params["seed"])
    return runtime._request_rows(holdout[FEATURES].head(count)), holdout[FEATURES].head(count)


def _artifacts(run_id):
    return sorted(a.path for a in gateway.client().list_artifacts(run_id, scorer_compilation.ARTIFACT_PATH))


def test_compile_logs_a_parity_checked_scorer_to_the_run_once(version):
    result = scorer_compile(version=version)

    assert result["status"] == "compiled"
    assert result["passed"] is True
    assert result["rows"] == 2_000  # the 25% holdout of 8,000 rows, split as training split it
    assert 0 <= result["max_abs_diff"] <= runtime.PARITY_TOLERANCE
    assert _artifacts(version.run_id) == [
        "fast_scorer/model.treelite",
        "fast_scorer/parity.json",
        "fast_scorer/scorer.json",
    ]
    event = AuditEvent.objects.get(action="serving.scorer_compiled", object_id=str(version.pk))
    assert event.after["passed"] is True
    assert event.after["runtime"]["treelite"] == "4.8.0"

    again = scorer_compile(version=version)
    assert again["status"] == "exists"
    assert again["passed"] is True
    assert again["max_abs_diff"] == result["max_abs_diff"]
    assert AuditEvent.objects.filter(action="serving.scorer_compiled").count() == 1


def test_loaded_compiled_scorer_answers_like_the_logged_model_and_outlives_mlflow(version, settings):
    scorer_compile(version=version)
    scorer = scorer_load(version=version)

    assert isinstance(scorer, runtime.CompiledScorer)
    rows, frame = _holdout_rows(version)
    logged = gateway.load_sklearn_model(version.source_uri)
    np.testing.assert_allclose(
        scorer.predict_proba(rows), logged.predict_proba(frame)[:, 1], rtol=0, atol=runtime.PARITY_TOLERANCE
    )
    cached = settings.VAR_DIR / "scorers" / version.run_id / "fast_scorer"
    assert (cached / "parity.json").is_file()

    # MLflow down: the version downloaded once still loads in a new process (the local cache).
    settings.MLFLOW_TRACKING_URI = "http://127.0.0.1:9"
    again = scorer_load(version=version)
    assert isinstance(again, runtime.CompiledScorer)
    np.testing.assert_array_equal(again.predict_proba(rows), scorer.predict_proba(rows))


def test_a_version_without_a_compiled_scorer_is_served_by_the_logged_model(version):
    scorer = scorer_load(version=version)

    assert isinstance(scorer, runtime.PyfuncScorer)
    rows, frame = _holdout_rows(version, 50)
    logged = gateway.load_sklearn_model(version.source_uri)
    np.testing.assert_array_equal(scorer.predict_proba(rows), logged.predict_proba(frame)[:, 1])
    assert [f.name for f in scorer.features] == FEATURES


def test_a_failed_parity_gate_is_recorded_and_the_logged_model_serves(version, monkeypatch):
    monkeypatch.setattr(runtime, "PARITY_TOLERANCE", -1.0)  # no scorer can pass this gate
    result = scorer_compile(version=version)

    assert result["status"] == "compiled"
    assert result["passed"] is False
    assert "> -1" in result["reason"]
    assert isinstance(scorer_load(version=version), runtime.PyfuncScorer)


def test_a_version_without_a_dataset_cannot_be_checked_and_is_not_used(version):
    ModelVersion.objects.filter(pk=version.pk).update(dataset=None)
    version.refresh_from_db()
    result = scorer_compile(version=version)

    assert result["status"] == "no_holdout"
    assert result["passed"] is False
    assert "fast_scorer/parity.json" in _artifacts(version.run_id)
    assert isinstance(scorer_load(version=version), runtime.PyfuncScorer)


def test_a_version_that_cannot_load_raises_scorer_unavailable(version):
    ModelVersion.objects.filter(pk=version.pk).update(run_id="0" * 32, source_uri="models:/m-missing")
    version.refresh_from_db()
    with pytest.raises(ScorerUnavailable, match="cannot load the scorer"):
        scorer_load(version=version)


def test_mlflow_down_a_version_not_yet_loaded_is_unavailable_quickly(version, mlflow_unreachable):
    started = time.monotonic()
    with pytest.raises(ScorerUnavailable, match="MLflow is unavailable"):
        scorer_load(version=version)
    assert time.monotonic() - started < 15  # the point is not hanging: a generous bound


def test_compile_scorer_command_prints_the_outcome(version, capsys):
    call_command("compile_scorer", model=version.model.name, version=version.version)
    printed = json.loads(capsys.readouterr().out)
    assert printed["status"] == "compiled"
    assert printed["passed"] is True
    assert printed["model"] == version.model.name
    with pytest.raises(CommandError, match="no version 9 of model"):
        call_command("compile_scorer", model=version.model.name, version=9)
    with pytest.raises(CommandError, match="NUL"):
        call_command("compile_scorer", model="fraud\x00scorer", version=1)


@pytest.mark.django_db(transaction=True)
def test_compile_scorer_task_runs_in_a_worker_process(mlflow_store, unique_name, data_scientist, settings,
                                                      start_celery):  # fmt: skip
    version = _train(unique_name, data_scientist)
    worker = start_celery(
        "worker",
        env={
            "MLFLOW_TRACKING_URI": settings.MLFLOW_TRACKING_URI,
            "MLFLOW_ARTIFACT_ROOT": settings.MLFLOW_ARTIFACT_ROOT,
        },
    )
    tasks.compile_scorer.delay(version.pk)
    tasks.compile_scorer.delay(version.pk)  # twice: the second finds the artifact
    worker.wait_for(
        lambda: AuditEvent.objects.filter(
            action="serving.scorer_compiled", object_id=str(version.pk)
        ).exists(),
        timeout=120,
    )
    worker.wait_for(
        lambda: "succeeded" in worker.log.read_text() and worker.log.read_text().count("succeeded") >= 2
    )
    assert "'status': 'exists'" in worker.log.read_text()
    assert AuditEvent.objects.filter(action="serving.scorer_compiled").count() == 1
    assert "fast_scorer/parity.json" in _artifacts(version.run_id)


def test_registering_a_version_compiles_its_fast_scorer_and_scoring_uses_it(
    mlflow_store, unique_name, data_scientist, celery_eager, django_capture_on_commit_callbacks, client
):
    from apps.registry.models import Stage
    from apps.serving import config, hotpath, scorers
    from apps.serving.services import scoring_client_create

    from .conftest import serving_reset

    with django_capture_on_commit_callbacks(execute=True):
        version = _train(unique_name, data_scientist)  # training registers it: version_register

    assert "fast_scorer/parity.json" in _artifacts(version.run_id)
    event = AuditEvent.objects.get(action="serving.scorer_compiled", object_id=str(version.pk))
    assert event.after["passed"] is True

    ModelVersion.objects.filter(pk=version.pk).update(stage=Stage.PRODUCTION)
    _, token = scoring_client_create(actor=None, name="java-backend")
    serving_reset()
    row = _holdout_rows(version, 1)[0][0]
    response = client.post(
        f"/api/v1/models/{unique_name}/score",
        data=json.dumps({"transaction_id": "t-1", "features": row}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Token {token}",
    )
    assert response.status_code == 200, response.content
    assert response.json()["fallback"] is False
    served = scorers.pool.get(unique_name, config.peek().models[unique_name].versions[version.version])
    assert isinstance(served, runtime.CompiledScorer)
    serving_reset()
    hotpath.reset_redis()


def test_registering_a_run_again_sends_the_signal_and_compiles_a_missing_scorer(
    version, celery_eager, django_capture_on_commit_callbacks
):
    from apps.registry.services import version_register
    from apps.registry.signals import version_registered

    received = []
    version_registered.connect(lambda sender, **kwargs: received.append(kwargs), weak=False,
                               dispatch_uid="test-received")  # fmt: skip
    try:
        with django_capture_on_commit_callbacks(execute=True):
            again = version_register(actor=None, model_name=version.model.name, run_id=version.run_id)
    finally:
        version_registered.disconnect(dispatch_uid="test-received")

    assert again.created is False
    assert received == [{"signal": version_registered, "version": again.version, "created": False}]
    assert AuditEvent.objects.filter(action="serving.scorer_compiled", object_id=str(version.pk)).count() == 1


def test_the_sweep_compiles_a_servable_version_whose_compilation_was_lost(version, celery_eager):
    from apps.registry.models import Stage

    ModelVersion.objects.filter(pk=version.pk).update(stage=Stage.CANDIDATE)
    assert scorer_compilation.versions_to_compile() == [version.pk]

    assert tasks.compile_missing_scorers() == 1

    assert "fast_scorer/parity.json" in _artifacts(version.run_id)
    assert scorer_compilation.versions_to_compile() == []
    assert tasks.compile_missing_scorers() == 0


# --- the per-process cache -------------------------------------------------------------------------


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_cache_keeps_a_bounded_number_of_versions_least_recently_used_out():
    loads = []
    cache = ScorerCache(max_versions=2, loader=lambda version: loads.append(version) or f"scorer-{version}")
    assert cache.get("a", 1) == "scorer-1"
    assert cache.get("b", 2) == "scorer-2"
    assert cache.get("a", 1) == "scorer-1"  # a is now the most recent
    assert cache.get("c", 3) == "scorer-3"  # evicts b
    assert sorted(cache.keys()) == ["a", "c"]
    assert cache.get("b", 2) == "scorer-2"
    assert loads == [1, 2, 3, 2]


def test_cache_remembers_a_failed_load_for_a_while():
    clock, calls = Clock(), []

    def broken(version):
        calls.append(version)
        raise ScorerUnavailable("MLflow is unavailable")

    cache = ScorerCache(loader=broken, retry_after=30, clock=clock)
    for _ in range(3):
        with pytest.raises(ScorerUnavailable, match="MLflow is unavailable"):
            cache.get("a", 1)
    assert calls == [1]
    assert cache.warm("a", 1) is False
    clock.now += 30
    with pytest.raises(ScorerUnavailable):
        cache.get("a", 1)
    assert calls == [1, 1]


def test_cache_loads_a_version_once_for_racing_callers():
    release, calls = threading.Event(), []

    def slow(version):
        calls.append(version)
        release.wait(10)
        return object()

    cache = ScorerCache(loader=slow)
    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get("a", 1))) for _ in range(6)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while not calls and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert len(results) == 6
    assert len({id(result) for result in results}) == 1


def test_a_model_the_runtime_cannot_compile_is_recorded_and_served_by_itself(version):
    signature = dict(version.signature)
    inputs = [column for column in json.loads(signature["inputs"]) if column["name"] != "channel"]
    ModelVersion.objects.filter(pk=version.pk).update(signature={**signature, "inputs": json.dumps(inputs)})
    version.refresh_from_db()
    result = scorer_compile(version=version)

    assert result["status"] == "not_compilable"
    assert result["passed"] is False
    assert "the signature lacks: channel" in result["reason"]
    assert _artifacts(version.run_id) == ["fast_scorer/parity.json"]
    assert scorer_compile(version=version)["status"] == "exists"
    assert isinstance(scorer_load(version=version), runtime.PyfuncScorer)


def test_the_logged_model_loads_whatever_store_the_process_pointed_at_before(version, tmp_path):
    # A worker whose first MLflow call is this load (a rollout's staging tests) had MLflow's own
    # default store in the process-wide URI, and `models:/m-...` was "not found" there.
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'elsewhere.db'}")
    logged = gateway.load_sklearn_model(version.source_uri)
    assert hasattr(logged, "predict_proba")
    assert mlflow.get_tracking_uri() != f"sqlite:///{tmp_path / 'elsewhere.db'}"
