"""Registry fixtures: models and versions as the portal's mirror holds them (no MLflow needed to read)."""

from datetime import UTC, datetime, timedelta

import pytest

from apps.registry import gateway
from apps.registry.models import DatasetVersion, RegisteredModel, Stage
from apps.registry.services import model_ensure, version_mirror

CURVES = {
    "roc": {"fpr": [0.0, 0.1, 0.3, 1.0], "tpr": [0.0, 0.6, 0.85, 1.0]},
    "pr": {"recall": [0.0, 0.5, 0.9, 1.0], "precision": [1.0, 0.7, 0.3, 0.02]},
    "calibration": {"mean_predicted": [0.01, 0.2], "fraction_positive": [0.012, 0.18], "count": [900, 100]},
}
SIGNATURE = {
    "inputs": '[{"type": "double", "name": "amount", "required": true}, '
    '{"type": "string", "name": "channel", "required": true}]',
    "outputs": '[{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1]}}]',
}


def make_version(
    model: RegisteredModel, number: int, *, stage=Stage.EXPERIMENT, auc=0.9, dataset=None, creator=None
):
    remote = gateway.RemoteVersion(
        name=model.name,
        version=number,
        run_id=f"run{model.pk}x{number}",
        source=f"models:/m-{model.pk}{number}",
        user_id=creator.username if creator else "",
        description="",
        registered_at=datetime(2026, 1, 1, 12, 0, tzinfo=UTC) + timedelta(days=number),
    )
    version, _ = version_mirror(
        model=model,
        remote=remote,
        created_by=creator,
        metrics={"roc_auc": auc, "pr_auc": auc / 3, "ks": auc - 0.3, "brier": 0.01},
        confidence_intervals={"roc_auc": [auc - 0.01, auc + 0.01]},
        curves=CURVES,
        signature=SIGNATURE,
        artifact_sha256=f"{number:064x}",
        dataset=dataset,
    )
    if stage != Stage.EXPERIMENT:
        type(version).objects.filter(pk=version.pk).update(stage=stage)
        version.refresh_from_db()
    return version


@pytest.fixture
def dataset(db):
    return DatasetVersion.objects.create(
        name="hafnium-transactions",
        sha256="a" * 64,
        md5="b" * 32,
        size_bytes=1234,
        row_count=1000,
        schema=[{"name": "amount", "type": "double"}],
        path="datasets/none.parquet",
        dvc_path="datasets/none.parquet.dvc",
    )


@pytest.fixture
def fraud_model(team, data_scientist, dataset):
    """fraud-scorer of the Fraud Analytics team: v1 Production, v2 Staging, v3 Candidate, v4 Experiment."""
    model = model_ensure(
        name="fraud-scorer", team=team, owners=[data_scientist], description="Card fraud risk"
    )
    for number, stage in enumerate([Stage.PRODUCTION, Stage.STAGING, Stage.CANDIDATE, Stage.EXPERIMENT], 1):
        make_version(
            model, number, stage=stage, auc=0.85 + number / 100, dataset=dataset, creator=data_scientist
        )
    return model


@pytest.fixture
def other_model(other_team, other_data_scientist):
    """A model of another team (Payments Risk)."""
    model = model_ensure(name="payments-anomaly", team=other_team, owners=[other_data_scientist])
    make_version(model, 1, creator=other_data_scientist)
    return model


@pytest.fixture
def mlflow_model(mlflow_store, unique_name, team, data_scientist):
    """A model in MLflow too (so aliases can be published), mirrored and staged like fraud_model."""
    from mlflow import MlflowClient

    from apps.registry.services import aliases_publish, registry_sync

    mlflow_client = MlflowClient(mlflow_store)
    experiment = gateway.ensure_store()
    mlflow_client.create_registered_model(unique_name, tags={"hafnium.team": team.slug})
    for _ in range(4):
        run = mlflow_client.create_run(experiment)
        mlflow_client.create_model_version(
            unique_name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id
        )
    registry_sync()
    model = RegisteredModel.objects.get(name=unique_name)
    model.owners.add(data_scientist)
    for version, stage in zip(
        model.versions.order_by("version"),
        [Stage.PRODUCTION, Stage.STAGING, Stage.CANDIDATE, Stage.EXPERIMENT],
        strict=True,
    ):
        type(version).objects.filter(pk=version.pk).update(stage=stage, created_by=data_scientist)
    aliases_publish(model=model)
    return model


@pytest.fixture
def mlflow_runs(mlflow_store):
    """Log runs to the test store the way a data scientist's own process does: through mlflow's global URI.

    The global URI stays set during the test, as in a process that logged a run (see the report on
    gateway.create_version); it is undone afterwards, and so is the MLFLOW_TRACKING_URI that
    mlflow.set_tracking_uri exports, so that no later test or subprocess inherits it.
    """
    import mlflow

    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        mlflow.set_tracking_uri(mlflow_store)
        try:
            yield MlflowRuns(gateway.ensure_store())
        finally:
            mlflow.set_tracking_uri(None)


class MlflowRuns:
    def __init__(self, experiment_id: str):
        self.experiment_id = experiment_id

    def with_model(
        self, team: str | None = "fraud-analytics", *, user: str | None = None, experiment=None
    ) -> str:
        """A run that logged a model; of `team` (its `hafnium.team` tag) and by `user` if given."""
        import mlflow
        import pandas as pd
        from sklearn.linear_model import LogisticRegression

        features = pd.DataFrame({"amount": [5.0, 900.0, 12.0, 1500.0], "night": [0.0, 1.0, 0.0, 1.0]})
        classifier = LogisticRegression().fit(features, [0, 1, 0, 1])
        tags = {"hafnium.team": team} if team else {}
        if user:
            tags["mlflow.user"] = user
        with mlflow.start_run(experiment_id=experiment or self.experiment_id, tags=tags) as run:
            mlflow.sklearn.log_model(classifier, name="model", input_example=features.head(2))
        return run.info.run_id

    def with_a_metric_only(self) -> str:
        import mlflow

        with mlflow.start_run(
            experiment_id=self.experiment_id, tags={"hafnium.team": "fraud-analytics"}
        ) as run:
            mlflow.log_metric("roc_auc", 0.5)
        return run.info.run_id
