"""The rollout controller on PostgreSQL: each move a compare-and-set with its event and audit event, the
analysis on prediction-log windows, the outcomes (promotion, rollback, pause, deadline)."""

from datetime import timedelta

import pytest

from apps.alerts.models import Alert
from apps.audit.models import AuditEvent
from apps.deployments.models import AnalysisMeasurement, Rollout
from apps.deployments.services import controller, controller_tick, rollout_advance
from apps.registry.models import ModelVersion, Stage
from apps.serving.routing import routes_get

from .conftest import traffic

pytestmark = pytest.mark.django_db

State = Rollout.State


def stage_of(model, number: int) -> str:
    return ModelVersion.objects.get(model=model, version=number).stage


def states(rollout: Rollout) -> list[tuple[str, str]]:
    return list(rollout.events.order_by("revision").values_list("from_state", "to_state"))


def start(canary, clock) -> Rollout:
    """The first tick: pending -> canary -> analysing at 5 %."""
    controller_tick(now=clock.now)
    canary.refresh_from_db()
    return canary


def test_first_tick_sends_five_percent_to_the_candidate(canary, clock):
    rollout = start(canary, clock)
    assert rollout.state == State.ANALYSING
    assert rollout.weight_bp == 500
    assert routes_get(canary.model) == {1: 9500, 2: 500}
    assert states(rollout) == [("pending", "canary"), ("canary", "analysing")]
    assert (
        AuditEvent.objects.filter(action="deployment.start_analysis", object_id=str(rollout.pk)).count() == 1
    )
    assert rollout.deadline_at == clock.now + timedelta(seconds=60)


def test_healthy_canary_is_promoted_at_the_first_passing_measurement(canary, clock):
    rollout = start(canary, clock)
    traffic(canary.model, 2, 40, at=clock.now)
    traffic(canary.model, 1, 400, at=clock.now)
    controller_tick(now=clock.advance(0.5))
    rollout.refresh_from_db()
    assert rollout.state == State.ANALYSING  # the first measurement is due one interval after the weight
    assert not rollout.measurements.exists()
    controller_tick(now=clock.advance(1.6))
    rollout.refresh_from_db()
    assert rollout.state == State.SUCCEEDED
    assert rollout.weight_bp == 10_000
    verdicts = dict(rollout.measurements.values_list("metric", "verdict"))
    assert verdicts == dict.fromkeys(
        ["error_rate", "latency_p99_ms", "fallback_share", "score_shift"], "successful"
    )
    assert stage_of(canary.model, 2) == Stage.PRODUCTION
    assert stage_of(canary.model, 1) == Stage.ARCHIVED
    assert routes_get(canary.model) == {}  # the Production version answers everything
    assert states(rollout)[-2:] == [("analysing", "promoting"), ("promoting", "succeeded")]


def test_failing_canary_is_rolled_back_in_the_same_tick_with_its_measurements(canary, clock):
    rollout = start(canary, clock)
    traffic(canary.model, 2, 40, at=clock.now, errors=5)
    traffic(canary.model, 1, 400, at=clock.now)
    controller_tick(now=clock.advance(2.1))
    rollout.refresh_from_db()
    assert rollout.state == State.ROLLED_BACK
    assert rollout.cause == Rollout.Cause.ANALYSIS_FAILED
    assert rollout.weight_bp == 0
    assert routes_get(canary.model) == {1: 10_000}
    assert stage_of(canary.model, 2) == Stage.ROLLED_BACK
    assert stage_of(canary.model, 1) == Stage.PRODUCTION
    failed = rollout.measurements.get(metric="error_rate")
    assert (failed.verdict, failed.threshold) == ("failed", 0.001)
    assert failed.value == pytest.approx(5 / 40)
    assert "error_rate" in rollout.reason
    alert = Alert.objects.get(source="deployments", key=f"rollout-{rollout.pk}")
    assert alert.severity == "page"
    assert "error_rate" in alert.detail
    assert states(rollout)[-2:] == [("analysing", "rolling_back"), ("rolling_back", "rolled_back")]


def test_no_traffic_is_inconclusive_then_paused_never_promoted(canary, clock):
    rollout = start(canary, clock)
    for _ in range(3):
        controller_tick(now=clock.advance(1.1))
    rollout.refresh_from_db()
    assert rollout.state == State.PAUSED
    assert rollout.weight_bp == 500  # a paused canary keeps its weight
    assert set(rollout.measurements.values_list("verdict", flat=True)) == {"inconclusive"}
    for _ in range(3):
        controller_tick(now=clock.advance(5))
    rollout.refresh_from_db()
    assert rollout.state == State.PAUSED
    assert stage_of(canary.model, 2) == Stage.STAGING


def test_metric_source_errors_count_toward_the_consecutive_error_limit(canary, clock, monkeypatch):
    rollout = start(canary, clock)

    def down(*args, **kwargs):
        raise ConnectionError("the log database is down")

    monkeypatch.setattr(controller, "read_windows", down)
    controller_tick(now=clock.advance(1.1))
    controller_tick(now=clock.advance(1.1))
    rollout.refresh_from_db()
    assert rollout.state == State.ANALYSING  # errors are not failures: two in a row are within the limit
    controller_tick(now=clock.advance(1.1))
    rollout.refresh_from_db()
    assert rollout.state == State.ROLLED_BACK
    assert rollout.cause == Rollout.Cause.ANALYSIS_ERROR
    assert set(rollout.measurements.values_list("verdict", flat=True)) == {"error"}
    assert "the log database is down" in rollout.measurements.first().message


def test_progress_deadline_aborts_and_rolls_the_candidate_back(canary, clock):
    rollout = start(canary, clock)
    traffic(canary.model, 2, 3, at=clock.now)  # thin: inconclusive, never enough to pass
    controller_tick(now=clock.advance(61))
    rollout.refresh_from_db()
    assert rollout.state == State.ABORTED
    assert rollout.cause == Rollout.Cause.DEADLINE
    assert routes_get(canary.model) == {1: 10_000}
    assert stage_of(canary.model, 2) == Stage.ROLLED_BACK


def test_a_step_plan_walks_every_step_before_the_promotion(canary, clock):
    canary.policy.steps = [500, 2500, 5000, 10_000]
    canary.policy.save()
    rollout = start(canary, clock)
    weights = []
    for _ in range(3):
        rollout.refresh_from_db()
        weights.append(rollout.weight_bp)
        traffic(canary.model, 2, 40, at=clock.now)
        traffic(canary.model, 1, 100, at=clock.now)
        controller_tick(now=clock.advance(1.6))
    rollout.refresh_from_db()
    assert weights == [500, 2500, 5000]
    assert rollout.state == State.SUCCEEDED
    assert AnalysisMeasurement.objects.filter(rollout=rollout).values("analysis_run").distinct().count() == 3


def test_a_repeated_tick_moves_nothing_more(canary, clock):
    rollout = start(canary, clock)
    revision = rollout.revision
    for _ in range(3):
        assert rollout_advance(rollout_id=rollout.pk, now=clock.now) == 0
    rollout.refresh_from_db()
    assert rollout.revision == revision
    assert rollout.events.count() == revision


def test_first_release_without_a_stable_goes_out_whole(canary_model, fast_policy, clock):
    from .conftest import make_rollout

    ModelVersion.objects.filter(model=canary_model, version=1).update(stage=Stage.ARCHIVED)
    rollout = make_rollout(canary_model, stable=None, policy=fast_policy)
    controller_tick(now=clock.now)
    rollout.refresh_from_db()
    assert rollout.state == State.SUCCEEDED
    assert stage_of(canary_model, 2) == Stage.PRODUCTION


def test_a_completed_promotion_starts_one_rollout_and_the_sweep_finds_lost_ones(
    canary_model, fast_policy, data_scientist, clock
):
    from django.utils import timezone

    from apps.deployments.services import rollout_start, rollouts_start_missing
    from apps.governance.models import PromotionRequest
    from apps.governance.selectors import policy_current

    request = PromotionRequest.objects.create(
        version=canary_model.versions.get(version=2), from_stage=Stage.STAGING, to_stage=Stage.PRODUCTION,
        requested_by=data_scientist, justification="x", policy=policy_current(), required_roles=[],
        evidence={}, evidence_sha256="0" * 64, status=PromotionRequest.Status.COMPLETED,
        expires_at=timezone.now(), decided_at=timezone.now(),
    )  # fmt: skip
    assert rollouts_start_missing() == 1  # the signal was lost: the tick's sweep starts it
    rollout = Rollout.objects.get(promotion_request=request)
    assert (rollout.kind, rollout.stable.version, rollout.policy) == (Rollout.Kind.CANARY, 1, fast_policy)
    assert rollout_start(request=request) == rollout  # the signal arriving late starts nothing more
    assert rollouts_start_missing() == 0
    assert Rollout.objects.filter(model=canary_model).count() == 1
