"""The one module that talks to MLflow. mlflow is imported lazily here: it takes seconds to import."""

from django.conf import settings

DEFAULT_EXPERIMENT = "hafnium"


def client():
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=settings.MLFLOW_TRACKING_URI, registry_uri=settings.MLFLOW_TRACKING_URI)


def ensure_store() -> str:
    """Create the MLflow store (schema, default experiment) if it is not there; return the experiment id."""
    mlflow_client = client()
    experiment = mlflow_client.get_experiment_by_name(DEFAULT_EXPERIMENT)
    if experiment is not None:
        return experiment.experiment_id
    artifact_location = None
    if not settings.MLFLOW_TRACKING_URI.startswith(("http://", "https://")):
        # A local store keeps artifacts under MLFLOW_ARTIFACT_ROOT; a tracking server decides for itself.
        artifact_location = f"{settings.MLFLOW_ARTIFACT_ROOT.rstrip('/')}/{DEFAULT_EXPERIMENT}"
    return mlflow_client.create_experiment(DEFAULT_EXPERIMENT, artifact_location=artifact_location)
