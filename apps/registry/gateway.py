"""The one module that talks to MLflow. mlflow is imported lazily here: it takes seconds to import.

Everything else in the portal works on plain values returned from here, and on two errors:
`RegistryNotFound` (the thing asked for does not exist) and `RegistryUnavailable` (MLflow cannot be
reached or failed).
"""

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings

from hafnium_portal.errors import DomainError, ServiceUnavailable

DEFAULT_EXPERIMENT = "hafnium"
MODEL_ARTIFACT = "model"
PAGE_SIZE = 200


class RegistryNotFound(DomainError):
    """What was asked for is not in MLflow (a run, a model, a version)."""


class RegistryRefused(DomainError):
    """MLflow refused the request as invalid (a bad name, a duplicate)."""


class RegistryUnavailable(ServiceUnavailable):
    """MLflow cannot be reached, or failed."""


@contextmanager
def _translated_errors():
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
            raise RegistryNotFound(exc.message) from exc
        if exc.error_code in ("INVALID_PARAMETER_VALUE", "RESOURCE_ALREADY_EXISTS", "BAD_REQUEST"):
            raise RegistryRefused(exc.message) from exc
        raise RegistryUnavailable(f"MLflow is unavailable: {exc.message}") from exc
    except (OSError, ConnectionError) as exc:
        raise RegistryUnavailable(f"MLflow is unavailable: {exc}") from exc
    except Exception as exc:
        # SQLAlchemy and requests errors from an unreachable store arrive under many names.
        if type(exc).__module__.split(".")[0] in ("sqlalchemy", "requests", "urllib3"):
            raise RegistryUnavailable(f"MLflow is unavailable: {type(exc).__name__}: {exc}") from exc
        raise


def _in_task() -> bool:
    from celery import current_task

    return bool(current_task and current_task.request.id)


def _bound_http_calls() -> None:
    """Set MLflow's HTTP timeout and retries from the settings, before every call.

    MLflow reads these environment variables at call time (mlflow/environment_variables.py, used by
    utils/rest_utils.http_request); its defaults (120 s timeout, 7 retries with exponential backoff)
    hold a web request or a worker slot for minutes when MLflow is down. A web request fails fast
    (503); a Celery task gets a little more patience and then retries itself with backoff.
    """
    if _in_task():
        timeout, retries = settings.MLFLOW_TASK_HTTP_TIMEOUT, settings.MLFLOW_TASK_HTTP_MAX_RETRIES
    else:
        timeout, retries = settings.MLFLOW_HTTP_TIMEOUT, settings.MLFLOW_HTTP_MAX_RETRIES
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(timeout)
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(retries)
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = str(settings.MLFLOW_HTTP_BACKOFF_FACTOR)
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_JITTER"] = "0.5"


def client():
    import mlflow

    _bound_http_calls()

    # Some MLflow paths (resolving a `models:/` source at registration, fluent logging) read the
    # process-wide URIs whatever the client says: keep them equal to the settings.
    if mlflow.get_tracking_uri() != settings.MLFLOW_TRACKING_URI:
        mlflow.set_tracking_uri(settings.MLFLOW_TRACKING_URI)
        mlflow.set_registry_uri(settings.MLFLOW_TRACKING_URI)
    return mlflow.MlflowClient(
        tracking_uri=settings.MLFLOW_TRACKING_URI, registry_uri=settings.MLFLOW_TRACKING_URI
    )


def _to_datetime(millis: int | None) -> datetime:
    return datetime.fromtimestamp((millis or 0) / 1000, tz=UTC)


def ensure_store() -> str:
    """Create the MLflow store (schema, default experiment) if it is not there; return the experiment id."""
    with _translated_errors():
        mlflow_client = client()
        experiment = mlflow_client.get_experiment_by_name(DEFAULT_EXPERIMENT)
        if experiment is not None:
            return experiment.experiment_id
        artifact_location = None
        if not settings.MLFLOW_TRACKING_URI.startswith(("http://", "https://")):
            # A local store keeps artifacts under MLFLOW_ARTIFACT_ROOT; a tracking server decides itself.
            artifact_location = f"{settings.MLFLOW_ARTIFACT_ROOT.rstrip('/')}/{DEFAULT_EXPERIMENT}"
        return mlflow_client.create_experiment(DEFAULT_EXPERIMENT, artifact_location=artifact_location)


# --- reading the registry ------------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteModel:
    name: str
    description: str
    tags: dict[str, str]
    aliases: dict[str, int]


@dataclass(frozen=True)
class RemoteVersion:
    name: str
    version: int
    run_id: str
    source: str
    user_id: str
    description: str
    registered_at: datetime


def _remote_version(version) -> RemoteVersion:
    return RemoteVersion(
        name=version.name,
        version=int(version.version),
        run_id=version.run_id or "",
        source=version.source or "",
        user_id=version.user_id or "",
        description=version.description or "",
        registered_at=_to_datetime(version.creation_timestamp),
    )


def registered_models() -> Iterator[RemoteModel]:
    with _translated_errors():
        mlflow_client, token = client(), None
        while True:
            page = mlflow_client.search_registered_models(max_results=PAGE_SIZE, page_token=token)
            for model in page:
                yield RemoteModel(
                    name=model.name,
                    description=model.description or "",
                    tags=dict(model.tags or {}),
                    aliases={alias: int(version) for alias, version in (model.aliases or {}).items()},
                )
            token = page.token
            if not token:
                return


def model_versions(name: str) -> Iterator[RemoteVersion]:
    with _translated_errors():
        mlflow_client, token = client(), None
        escaped = name.replace("'", "\\'")
        while True:
            page = mlflow_client.search_model_versions(
                filter_string=f"name='{escaped}'", max_results=PAGE_SIZE, page_token=token
            )
            for version in page:
                yield _remote_version(version)
            token = page.token
            if not token:
                return


@dataclass(frozen=True)
class RemoteRun:
    run_id: str
    status: str
    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]
    experiment_id: str = ""
    user_id: str = ""
    experiment_tags: dict[str, str] | None = None


def run(run_id: str, *, with_experiment: bool = False) -> RemoteRun:
    """A run; RegistryNotFound if there is none. `with_experiment` also reads its experiment's tags."""
    with _translated_errors():
        mlflow_client = client()
        found = mlflow_client.get_run(run_id)
        experiment_tags = None
        if with_experiment:
            experiment = mlflow_client.get_experiment(found.info.experiment_id)
            experiment_tags = dict(experiment.tags or {})
    tags = dict(found.data.tags)
    return RemoteRun(
        run_id=found.info.run_id,
        status=found.info.status,
        metrics=dict(found.data.metrics),
        params=dict(found.data.params),
        tags=tags,
        experiment_id=found.info.experiment_id,
        # MLflow records who logged a run in the `mlflow.user` tag (and, older, in info.user_id).
        user_id=tags.get("mlflow.user") or found.info.user_id or "",
        experiment_tags=experiment_tags,
    )


def run_versions(run_id: str) -> list[RemoteVersion]:
    """Every registered version made from the run, of any model."""
    escaped = run_id.replace("'", "")
    with _translated_errors():
        found = client().search_model_versions(filter_string=f"run_id='{escaped}'", max_results=PAGE_SIZE)
    return [_remote_version(version) for version in found]


class NoLoggedModel(DomainError):
    """The run exists but logged no model."""


def run_model_uri(run_id: str, experiment_id: str) -> str:
    """The URI of the model logged by the run; NoLoggedModel if it logged none."""
    escaped = run_id.replace("'", "")
    with _translated_errors():
        logged = client().search_logged_models(
            experiment_ids=[experiment_id], filter_string=f"source_run_id = '{escaped}'", max_results=1
        )
    if not logged:
        raise NoLoggedModel(f"run {run_id} has no logged model")
    return logged[0].model_uri


def run_json_artifact(run_id: str, path: str) -> dict | list | None:
    """A JSON artifact at the top of the run's artifacts, or None when the run has no such artifact."""
    import mlflow

    with _translated_errors(), tempfile.TemporaryDirectory() as folder:
        if path not in {artifact.path for artifact in client().list_artifacts(run_id)}:
            return None
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=path, dst_path=folder, tracking_uri=settings.MLFLOW_TRACKING_URI
        )
        return json.loads(Path(local).read_text())


def model_signature(model_uri: str) -> dict | None:
    """The input/output signature recorded with the model, as JSON, if any."""
    from mlflow.models import get_model_info

    _bound_http_calls()
    with _translated_errors():
        info = get_model_info(model_uri)
    return info.signature.to_dict() if info.signature else None


def artifact_sha256(model_uri: str) -> str:
    """A hash over every file of the model's artifacts (relative path and content, in path order)."""
    import mlflow

    digest = hashlib.sha256()
    _bound_http_calls()
    with _translated_errors(), tempfile.TemporaryDirectory() as folder:
        root = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=model_uri, dst_path=folder, tracking_uri=settings.MLFLOW_TRACKING_URI
            )
        )
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()


# --- writing the registry ------------------------------------------------------------------------


def create_version(
    name: str, *, source: str, run_id: str, tags: dict[str, str] | None = None
) -> RemoteVersion:
    """Register `source` as a new version of model `name` (creating the model if needed)."""
    from mlflow.exceptions import MlflowException

    with _translated_errors():
        mlflow_client = client()
        try:
            mlflow_client.create_registered_model(name, tags=tags)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        created = mlflow_client.create_model_version(name, source=source, run_id=run_id)
    return _remote_version(created)


def set_alias(name: str, alias: str, version: int) -> None:
    with _translated_errors():
        client().set_registered_model_alias(name, alias, str(version))


def delete_alias(name: str, alias: str) -> None:
    from mlflow.exceptions import MlflowException

    with _translated_errors():
        try:
            client().delete_registered_model_alias(name, alias)
        except MlflowException as exc:
            if exc.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                raise


def aliases(name: str) -> dict[str, int]:
    with _translated_errors():
        model = client().get_registered_model(name)
    return {alias: int(version) for alias, version in (model.aliases or {}).items()}


@dataclass(frozen=True)
class LoggedTraining:
    run_id: str
    model_uri: str


def log_training(
    *,
    run_name: str,
    pipeline,
    input_example,
    params: dict,
    metrics: dict[str, float],
    json_artifacts: dict[str, dict | list],
    text_artifacts: dict[str, str],
    tags: dict[str, str],
) -> LoggedTraining:
    """One MLflow run: params, metrics, JSON and text artifacts, and the model with signature."""
    import mlflow
    from mlflow.models import infer_signature

    experiment_id = ensure_store()  # also points the process-wide URIs at the settings' store
    with (
        _translated_errors(),
        mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags) as active,
    ):
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        for path, content in json_artifacts.items():
            mlflow.log_dict(content, path)
        for path, content in text_artifacts.items():
            mlflow.log_text(content, path)
        with warnings.catch_warnings():
            # Integer features: scoring requests may send them as floats; MLflow's hint says so at length.
            warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
            signature = infer_signature(input_example, pipeline.predict_proba(input_example)[:, 1])
        info = mlflow.sklearn.log_model(
            pipeline,
            name=MODEL_ARTIFACT,
            signature=signature,
            input_example=input_example,
            serialization_format="cloudpickle",
        )
    return LoggedTraining(run_id=active.info.run_id, model_uri=info.model_uri)


def log_failed_run(*, run_name: str, params: dict, metrics: dict[str, float], reason: str, tags: dict) -> str:
    """A run that did not pass the quality gate: recorded as FAILED with the reason, no model."""
    experiment_id = ensure_store()
    with _translated_errors():
        mlflow_client = client()
        created = mlflow_client.create_run(
            experiment_id, run_name=run_name, tags={**tags, "hafnium.gate_reason": reason}
        )
        run_id = created.info.run_id
        for key, value in params.items():
            mlflow_client.log_param(run_id, key, value)
        for key, value in metrics.items():
            mlflow_client.log_metric(run_id, key, value)
        mlflow_client.set_terminated(run_id, status="FAILED")
    return run_id


def log_text(run_id: str, path: str, content: str) -> None:
    with _translated_errors():
        client().log_text(run_id, content, path)


# --- the serving runtime's artifacts ---------------------------------------------------------------


def load_sklearn_model(model_uri: str):
    """The logged sklearn model itself (the pipeline), for compiling and for the pyfunc scorer."""
    import mlflow.sklearn

    with _translated_errors():
        client()  # load_model resolves `models:/` through the process-wide URIs: set them first
        return mlflow.sklearn.load_model(model_uri)


def run_artifact_exists(run_id: str, path: str) -> bool:
    """Whether the run has an artifact at `path` ("fast_scorer/parity.json")."""
    folder, _, _ = path.rpartition("/")
    with _translated_errors():
        listed = client().list_artifacts(run_id, folder or None)
    return path in {artifact.path for artifact in listed}


def download_run_artifacts(run_id: str, path: str, dst_path: str | Path) -> Path:
    """Download the run's artifact (file or folder) at `path` into dst_path; the local path."""
    import mlflow

    with _translated_errors():
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id,
            artifact_path=path,
            dst_path=str(dst_path),
            tracking_uri=settings.MLFLOW_TRACKING_URI,
        )
    return Path(local)


def log_run_artifacts(run_id: str, local_dir: str | Path, artifact_path: str) -> None:
    """Add a local folder's files to a finished run, under artifact_path."""
    with _translated_errors():
        client().log_artifacts(run_id, str(local_dir), artifact_path)
