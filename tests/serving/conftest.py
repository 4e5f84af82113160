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
from apps.serving.models import ServingPolicy
from apps.serving.services import scoring_client_create
from apps.training import pipeline, synthetic


@dataclass(frozen=True)
class TrainedModel:
    name: str
    run_id: str
    model_uri: str
    signature: dict
    rows: list[dict]  # feature rows a client may send, typed as JSON would carry them


def json_row(row: dict) -> dict:
    values = {}
    for key, value in row.items():
        if hasattr(value, "item"):
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            value = 0.0
        values[key] = value
    return values


@pytest.fixture(scope="session")
def trained_model(_mlflow_folder) -> TrainedModel:
    """Trained on 4,000 synthetic rows and logged to the session's MLflow store (once per run)."""
    frame = synthetic.generate_transactions(4_000, seed=11)
    with override_settings(
        MLFLOW_TRACKING_URI=f"sqlite:///{_mlflow_folder / 'mlflow.sqlite3'}",
        MLFLOW_ARTIFACT_ROOT=(_mlflow_folder / "artifacts").as_uri(),
    ):
        result = pipeline.train(frame, seed=11, min_auc=0.5, bootstrap=10)
        logged = gateway.log_training(
            run_name="serving-tests",
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
    return TrainedModel("trained", logged.run_id, logged.model_uri, signature, rows)


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
def serving(mlflow_store, trained_model, unique_name, team, settings):
    """A model named `unique_name` whose v1 (the trained model) is in Production, and a scoring client."""
    settings.SERVING_LOAD_WAIT = 60.0  # the first load imports MLflow: seconds, not the tests' business
    model = model_ensure(name=unique_name, team=team)
    remote = gateway.RemoteVersion(
        name=unique_name,
        version=1,
        run_id=trained_model.run_id,
        source=trained_model.model_uri,
        user_id="",
        description="",
        registered_at=timezone.now(),
    )
    version, _ = version_mirror(model=model, remote=remote, signature=trained_model.signature)
    ModelVersion.objects.filter(pk=version.pk).update(stage=Stage.PRODUCTION)
    # A shared, busy test machine makes some calls slow: over the default 100 ms budget they would
    # count as failures and open the breaker. The budget has its own test.
    ServingPolicy.objects.create(model=model, version=1, latency_budget_ms=60_000)
    _, token = scoring_client_create(actor=None, name="java-backend")
    serving_reset()
    yield Served(
        model=model,
        token=token,
        rows=trained_model.rows,
        run_id=trained_model.run_id,
        model_uri=trained_model.model_uri,
        signature=trained_model.signature,
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
