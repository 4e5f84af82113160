"""Rollouts as the pages find them, written straight to the tables (the controller's moves are H4's tests):
fraud-scorer's v2 in canary over v1 at 5 %, with its events and a measurement, and a rollout of another
team's model. A test module imports the fixture functions (`canary_fixture`, ...) it uses."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.deployments.models import AnalysisMeasurement, Rollout, RolloutEvent
from apps.deployments.selectors import policy_in_force
from apps.registry.models import ModelVersion

State = Rollout.State


def record_move(rollout: Rollout, to_state: str, *, at=None, actor=None, reason: str = "", action: str = ""):
    """The rollout moved to `to_state`: its row and an event row, as the controller leaves them."""
    revision = rollout.revision + 1
    RolloutEvent.objects.create(
        rollout=rollout,
        actor=actor,
        action=action or to_state,
        from_state=rollout.state,
        to_state=to_state,
        step_index=rollout.step_index,
        weight_bp=rollout.weight_bp,
        revision=revision,
        reason=reason,
    )
    if at is not None:
        RolloutEvent.objects.filter(rollout=rollout, revision=revision).update(at=at)
    Rollout.objects.filter(pk=rollout.pk).update(state=to_state, revision=revision, reason=reason)
    rollout.refresh_from_db()
    return rollout


def make_canary(model, *, candidate: int = 2, stable: int | None = 1, state: str = State.ANALYSING, **extra):
    """A canary rollout of `model` at 5 %, moved through pending -> canary -> analysing (-> state)."""
    rollout = Rollout.objects.create(
        model=model,
        candidate=ModelVersion.objects.get(model=model, version=candidate),
        stable=ModelVersion.objects.get(model=model, version=stable) if stable else None,
        kind=Rollout.Kind.CANARY,
        policy=policy_in_force(None),
        deadline_at=timezone.now() + timedelta(minutes=10),
        **extra,
    )
    record_move(rollout, State.CANARY, reason="canary at 5 %")
    Rollout.objects.filter(pk=rollout.pk).update(weight_bp=500, step_started_at=timezone.now())
    rollout.refresh_from_db()
    record_move(rollout, State.ANALYSING, reason="canary weight 5 % set")
    if state != State.ANALYSING:
        record_move(rollout, state, reason=f"moved to {state} for the test")
    return rollout


def measure(rollout: Rollout, metric: str, value, threshold: float, verdict: str, **extra):
    now = timezone.now()
    return AnalysisMeasurement.objects.create(
        rollout=rollout,
        step_index=rollout.step_index,
        analysis_run=rollout.analysis_run,
        weight_bp=rollout.weight_bp,
        metric=metric,
        value=value,
        threshold=threshold,
        verdict=verdict,
        window_start=now - timedelta(seconds=10),
        window_end=now,
        **extra,
    )


@pytest.fixture(name="canary")
def canary_fixture(fraud_model):
    """fraud-scorer v2 analysing at 5 % over v1, with one passing and one failing measurement."""
    rollout = make_canary(fraud_model)
    measure(rollout, "error_rate", 0.0005, 0.001, "successful", canary_requests=400, stable_requests=7600)
    measure(rollout, "latency_p99_ms", 180.0, 100.0, "failed", message="180 <= 100: not met")
    return rollout


@pytest.fixture(name="other_canary")
def other_canary_fixture(other_model):
    """A canary of payments-anomaly (the Payments Risk team's model) of v1, with nothing in Production."""
    return make_canary(other_model, candidate=1, stable=None)
