"""Serving fixtures: a real model trained once per run, logged to MLflow, served as a Production version."""

import json
import math
from dataclasses import dataclass

import pytest
from django.test import override_settings
from django.utils import timezone

from apps.registry import gateway
from apps.registry.models import ModelVersion, Stage
from apps.registry.services import model_ensure, version_mirror
from apps.serving import config, hotpath, scorers
from apps.serving.compile import scorer_compile
from apps.serving.models import ServingPolicy
from apps.serving.services import scoring_client_create
from apps.training import pipeline, synthetic
from apps.training.services import synthetic_dataset_create


@dataclass(frozen=True)
class TrainedModel:
    name: str
    run_id: str
    model_uri: str
    signature: dict
    rows: list[dict]  # feature rows a client may send, typed as JSON would carry them
    params: dict


def json_row(row: dict) -> dict:
    values = {}
    for key, value in row.items():
        if hasattr(value, "item"):
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            value = 0.0
        values[key] = value
    return values


ROWS, SEED = 4_000, 11


def _mlflow_settings(folder):
    return override_settings(
        MLFLOW_TRACKING_URI=f"sqlite:///{folder / 'mlflow.sqlite3'}",
        MLFLOW_ARTIFACT_ROOT=(folder / "artifacts").as_uri(),
    )


@pytest.fixture(scope="session")
def _training():
    frame = synthetic.generate_transactions(ROWS, seed=SEED)
    return frame, pipeline.train(frame, seed=SEED, min_auc=0.5, bootstrap=10)


def _logged(folder, training, run_name: str) -> TrainedModel:
    frame, result = training
    with _mlflow_settings(folder):
        logged = gateway.log_training(
            run_name=run_name,
            pipeline=result.pipeline,
            input_example=result.input_example,
            params=result.params,
            metrics=result.metrics,
            json_artifacts={},
            text_artifacts={},
            tags={},
        )
        signature = gateway.model_signature(logged.model_uri)
    rows = [json_row(row) for row in frame[synthetic.FEATURES].head(200).to_dict("records")]
    return TrainedModel("trained", logged.run_id, logged.model_uri, signature, rows, dict(result.params))


@pytest.fixture(scope="session")
def trained_model(_mlflow_folder, _training) -> TrainedModel:
    """Trained on 4,000 synthetic rows and logged to the session's MLflow store (once per run); the
    `serving` fixture compiles its fast scorer the first time it serves it."""
    return _logged(_mlflow_folder, _training, "serving-tests")


@pytest.fixture(scope="session")
def pyfunc_model(_mlflow_folder, _training) -> TrainedModel:
    """The same model logged to a run of its own that is never compiled: served by the logged model."""
    return _logged(_mlflow_folder, _training, "serving-tests-pyfunc")


def config_refresh() -> None:
    """The config changed in the database without a commit hook (tests run in a transaction): reload it."""
    client = hotpath.redis_client()
    keys = list(client.scan_iter("hafnium:serving:config*", count=1000))
    if keys:
        client.delete(*keys)
    config.reset()


def serving_reset() -> None:
    """Forget what Redis and this process know of the serving config (after the test changed the DB)."""
    client = hotpath.redis_client()
    for pattern in ("hafnium:serving:*", "hafnium:breaker:*"):
        keys = list(client.scan_iter(pattern, count=1000))
        if keys:
            client.delete(*keys)
    config.reset()
    hotpath.reset_redis()


@pytest.fixture
def serving(mlflow_store, trained_model, unique_name, team, settings, request):
    """A model named `unique_name` whose v1 (the trained model) is in Production, and a scoring client.

    v1 is served by its compiled scorer (compiled and parity-checked on the holdout of its dataset, as
    at registration); a test marked `pyfunc` gets a version whose run has none: the logged model serves.
    """
    settings.SERVING_LOAD_WAIT = 60.0  # the first load imports MLflow: seconds, not the tests' business
    pyfunc = request.node.get_closest_marker("pyfunc") is not None
    trained = request.getfixturevalue("pyfunc_model") if pyfunc else trained_model
    model = model_ensure(name=unique_name, team=team)
    remote = gateway.RemoteVersion(
        name=unique_name,
        version=1,
        run_id=trained.run_id,
        source=trained.model_uri,
        user_id="",
        description="",
        registered_at=timezone.now(),
    )
    dataset = synthetic_dataset_create(actor=None, rows=ROWS, seed=SEED)
    version, _ = version_mirror(
        model=model, remote=remote, signature=trained.signature, dataset=dataset, params=trained.params
    )
    ModelVersion.objects.filter(pk=version.pk).update(stage=Stage.PRODUCTION)
    if not pyfunc:
        assert scorer_compile(version=version)["passed"], "the fixture's model compiles and passes parity"
    # A shared, busy test machine makes some calls slow: over the default 100 ms budget they would
    # count as failures and open the breaker. The budget has its own test.
    ServingPolicy.objects.create(model=model, version=1, latency_budget_ms=60_000)
    _, token = scoring_client_create(actor=None, name="java-backend")
    serving_reset()
    yield Served(
        model=model,
        token=token,
        rows=trained.rows,
        run_id=trained.run_id,
        model_uri=trained.model_uri,
        signature=trained.signature,
    )
    serving_reset()


@dataclass
class Served:
    model: object
    token: str
    rows: list[dict]
    run_id: str = ""
    model_uri: str = ""
    signature: dict | None = None

    def add_version(self, number: int, stage: str = Stage.STAGING) -> ModelVersion:
        """Another version of the model (the same trained run), in `stage`."""
        remote = gateway.RemoteVersion(
            name=self.name,
            version=number,
            run_id=self.run_id,
            source=self.model_uri,
            user_id="",
            description="",
            registered_at=timezone.now(),
        )
        version, _ = version_mirror(model=self.model, remote=remote, signature=self.signature)
        ModelVersion.objects.filter(pk=version.pk).update(stage=stage)
        serving_reset()
        return version

    @property
    def name(self) -> str:
        return self.model.name

    def item(self, index: int = 0, transaction_id: str | None = None, **features) -> dict:
        return {
            "transaction_id": transaction_id or f"t-{index}",
            "entity_id": f"c-{index % 7}",
            "features": {**self.rows[index], **features},
        }


@pytest.fixture
def scoring_client(client, serving):
    """post(body, token=...) to the model's scoring URL through Django's test client."""

    def post(body, *, token: str | None = None, path: str = "score", name: str | None = None, **extra):
        headers = {"HTTP_AUTHORIZATION": f"Token {token or serving.token}"} if token != "" else {}
        return client.post(
            f"/api/v1/models/{name or serving.name}/{path}",
            data=body if isinstance(body, str | bytes) else json.dumps(body),
            content_type=extra.pop("content_type", "application/json"),
            **headers,
            **extra,
        )

    return post


@pytest.fixture(autouse=True)
def _fresh_scorers():
    yield
    scorers.pool.clear()


def pytest_configure(config):
    config.addinivalue_line("markers", "workers(n): gunicorn workers of the inference_server fixture")
    config.addinivalue_line("markers", "pyfunc: the serving fixture's version has no compiled scorer")
