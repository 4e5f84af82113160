"""Deployments fixtures: a model with a Production (stable) and a Staging (candidate) version, a fast
rollout policy, rollouts, and prediction-log traffic written as the log writer writes it."""

import uuid
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from apps.deployments.models import Rollout, RolloutPolicy
from apps.registry.models import Stage
from apps.registry.services import model_ensure
from apps.serving.models import PredictionLog
from tests.registry.fixtures import make_version

# Fast timings: one 5 % step measured once, every second.
FAST = {
    "steps": [500, 10_000],
    "analysis_interval_s": 1.0,
    "min_samples": 10,
    "score_shift_min_samples": 10,
    "inconclusive_limit": 2,
    "consecutive_error_limit": 2,
    "progress_deadline_s": 60.0,
}


@pytest.fixture
def canary_model(team, data_scientist):
    """scorer-under-canary: v1 in Production (the stable), v2 in Staging (the candidate)."""
    model = model_ensure(name=f"canary-{uuid.uuid4().hex[:6]}", team=team, owners=[data_scientist])
    make_version(model, 1, stage=Stage.PRODUCTION, creator=data_scientist)
    make_version(model, 2, stage=Stage.STAGING, creator=data_scientist)
    return model


@pytest.fixture
def fast_policy(canary_model):
    return RolloutPolicy.objects.create(model=canary_model, version=1, **FAST)


def make_rollout(model, *, candidate=2, stable=1, policy=None, kind=Rollout.Kind.CANARY, **fields) -> Rollout:
    return Rollout.objects.create(
        model=model,
        candidate=model.versions.get(version=candidate),
        stable=model.versions.get(version=stable) if stable else None,
        kind=kind,
        policy=policy or RolloutPolicy.objects.filter(model=model).first(),
        **fields,
    )


@pytest.fixture
def canary(canary_model, fast_policy) -> Rollout:
    return make_rollout(canary_model, policy=fast_policy)


def traffic(
    model,
    version: int,
    count: int,
    *,
    at: datetime,
    spread: timedelta = timedelta(milliseconds=500),
    errors: int = 0,
    latency_ms: float = 5.0,
    score: float = 0.2,
    environment: str = "production",
) -> None:
    """`count` answers of `version` logged in [at, at + spread), the first `errors` of them model errors."""
    rows = []
    for i in range(count):
        error = i < errors
        rows.append(
            PredictionLog(
                request_id=uuid.uuid4().hex,
                transaction_id=f"t-{uuid.uuid4().hex[:10]}",
                entity_id=f"c-{i % 13}",
                model=model,
                version=version,
                numeric_features=[1.0],
                categorical_features=["pos"],
                score=score,
                decision="approve",
                fallback=error,
                latency_ms=latency_ms,
                status="error" if error else "ok",
                created_at=at + spread * (i / max(count, 1)),
                environment=environment,
            )
        )
    PredictionLog.objects.bulk_create(rows)


@pytest.fixture
def clock():
    """A controllable `now` for the controller (the tick takes it as an argument)."""

    class Clock:
        def __init__(self):
            self.now = timezone.now()

        def advance(self, seconds: float) -> datetime:
            self.now += timedelta(seconds=seconds)
            return self.now

    return Clock()
