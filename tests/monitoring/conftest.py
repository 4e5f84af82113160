"""Monitoring fixtures: a model trained by the portal's pipeline in Production, and its logged traffic."""

import json
import uuid
from datetime import UTC, timedelta

import numpy as np
import pandas as pd
import pytest
from django.utils import timezone

from apps.registry import gateway
from apps.registry.models import ModelVersion, Stage
from apps.serving import partitions
from apps.serving.management.commands.simulate_traffic import build_requests
from apps.serving.models import Decision, Feedback, PredictionLog
from apps.serving.validation import features_of
from apps.training import synthetic
from apps.training.services import model_train, synthetic_dataset_create


@pytest.fixture
def production(mlflow_store, unique_name, team, data_scientist):
    """v1 of `unique_name`, trained on 12,000 synthetic rows by the pipeline, in Production."""
    dataset = synthetic_dataset_create(actor=data_scientist, rows=12_000, seed=1)
    version = model_train(
        actor=data_scientist, model_name=unique_name, dataset=dataset, team=team, seed=1
    ).version
    ModelVersion.objects.filter(pk=version.pk).update(stage=Stage.PRODUCTION)
    version.refresh_from_db()
    version.model.owners.add(data_scientist)
    return version


def simulated(count: int, *, seed: int, drift: float = 0.0, drift_features=None) -> pd.DataFrame:
    """The transactions simulate_traffic sends (same generation), as a frame with the embedding."""
    bodies = build_requests(
        count, seed=seed, drift=drift, fail_rate=0.0, run="t", drift_features=drift_features or None
    )
    items = [json.loads(body) for body, _ in bodies]
    frame = pd.DataFrame([item["features"] for item in items])
    frame["transaction_id"] = [f"{uuid.uuid4().hex[:6]}-{item['transaction_id']}" for item in items]
    embedding = np.array([item["embedding"] for item in items])
    for i, name in enumerate(synthetic.EMBEDDING_COLUMNS):
        frame[name] = embedding[:, i]
    return frame


def log_traffic(version, frame: pd.DataFrame, *, end=None, minutes: float = 60.0, scores=None):
    """Write the frame as the version's prediction logs, spread over the `minutes` before `end` (now)."""
    end = end or timezone.now()
    if scores is None:
        model = gateway.load_sklearn_model(version.source_uri)
        scores = model.predict_proba(frame[synthetic.FEATURES])[:, 1]
    features = features_of(version.signature)
    numeric = [f.name for f in features if f.numeric]
    categorical = [f.name for f in features if not f.numeric]
    step = timedelta(minutes=minutes) / max(len(frame), 1)
    rows = []
    embedding = synthetic.embedding_of(frame) if synthetic.EMBEDDING_COLUMNS[0] in frame else None
    for i, row in enumerate(frame.itertuples(index=False)):
        values = row._asdict()
        rows.append(
            PredictionLog(
                request_id=uuid.uuid4().hex,
                transaction_id=values["transaction_id"],
                model=version.model,
                version=version.version,
                numeric_features=[float(values[name]) for name in numeric],
                categorical_features=[str(values[name]) for name in categorical],
                score=float(scores[i]),
                decision=Decision.DECLINE if scores[i] >= 0.9 else Decision.APPROVE,
                latency_ms=3.0,
                created_at=end - step * (len(frame) - i),
                embedding=None if embedding is None else embedding[i].tolist(),
            )
        )
    if partitions.partitioned():  # the log is partitioned by day: make the window's days first
        partitions.partitions_ensure({row.created_at.astimezone(UTC).date() for row in rows})
    PredictionLog.objects.bulk_create(rows, batch_size=2000)
    return scores


def give_labels(version, frame: pd.DataFrame, labels) -> None:
    Feedback.objects.bulk_create(
        [
            Feedback(model=version.model, transaction_id=tid, label=bool(label))
            for tid, label in zip(frame["transaction_id"], labels, strict=True)
        ],
        batch_size=2000,
    )


@pytest.fixture
def replaced_production(production, data_scientist, team):
    """v2 in Production after v1, which went back to Archived: the last good version to roll back to."""
    from apps.registry.services import version_stage_set

    dataset = synthetic_dataset_create(actor=data_scientist, rows=12_000, seed=2)
    newer = model_train(
        actor=data_scientist, model_name=production.model.name, dataset=dataset, team=team, seed=2
    ).version
    version_stage_set(actor=None, version=production, stage=Stage.ARCHIVED, reason="replaced by v2")
    for stage in (Stage.CANDIDATE, Stage.STAGING, Stage.PRODUCTION):
        newer = version_stage_set(actor=None, version=newer, stage=stage, reason="test")
    return newer
