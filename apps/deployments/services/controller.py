"""The rollout controller: each beat tick advances every active rollout as far as it can go now.

A rollout is advanced under its row lock (`SELECT ... FOR UPDATE SKIP LOCKED`: a rollout another
worker or a person holds is skipped by this tick, never waited for), one move per transaction:
read what the state needs (a due analysis measurement, the staging tests' results), ask
`machine.next_action`, make the decision's effect true, then compare-and-set (state, step, revision)
with an event row and an audit event. A worker killed anywhere loses at most the transaction it was
in; the next tick (any worker) redoes it. Nothing here sleeps or waits for traffic.
"""

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.audit.services import audit_record
from hafnium_portal.enqueue import enqueue_on_commit

from .. import analysis, machine
from ..analysis import Phase
from ..models import ACTIVE_STATES, AnalysisMeasurement, Rollout, RolloutEvent, StagingTestResult
from .effects import effect_apply

log = logging.getLogger(__name__)

State = machine.State
# States a tick moves on its own (paused waits for a person; finished ones are done).
TICK_STATES = [s for s in ACTIVE_STATES if s != State.PAUSED]
MAX_MOVES_PER_ADVANCE = 8
FINISHING = frozenset(
    {machine.Action.FINISH_PROMOTION, machine.Action.FINISH_ROLLBACK, machine.Action.FINISH_ABORT}
)
# Prediction logs reach PostgreSQL through the log writer a moment after the answer: a window ends
# this long before now, and the next one starts where it ended, so no answer falls between windows.
LOG_LAG = timedelta(seconds=1)
# A staging-test run has this long to record its results before the controller enqueues another.
STAGING_TESTS_LEASE = timedelta(minutes=5)
STAGING_TESTS_RETRY = timedelta(seconds=5)
STAGING_TEST_COUNT = len(StagingTestResult.Test.values)


def read_windows(rollout: Rollout, since: datetime, until: datetime):
    """The canary's and the stable's window stats from the prediction logs (one SQL aggregate, and
    the model answers' scores for the score shift's chance check).

    Mapped onto analysis.WindowStats: the model's own answers (neither the rules' nor an error) are the
    scores read, up to the selector's limit of the latest; their count and sum give the mean score.
    """
    from apps.serving.selectors import version_scores, version_stats

    candidate, stable = rollout.candidate.version, rollout.stable.version
    stats = version_stats(rollout.model, since=since, until=until, versions=[candidate, stable])
    scores = version_scores(rollout.model, since=since, until=until, versions=[candidate, stable])

    def window(number: int) -> analysis.WindowStats:
        found, own = stats[number], scores[number]
        return analysis.WindowStats(
            requests=found.requests,
            errors=found.errors,
            fallbacks=found.fallbacks,
            latency_count=found.requests if found.p99_ms is not None else 0,
            latency_p50_ms=found.p50_ms,
            latency_p99_ms=found.p99_ms,
            scored=int(own.size),
            score_sum=float(own.sum()),
            scores=own,
        )

    return window(candidate), window(stable)


@dataclass
class Reading:
    """What the controller read for the decision: the phase, and why."""

    phase: Phase = Phase.RUNNING
    reason: str = ""
    measurements: list = field(default_factory=list)


def _measure(rollout: Rollout, now: datetime) -> list[AnalysisMeasurement]:
    """Take the due measurement of every metric on the window since the last one, and store it."""
    until = now - LOG_LAG
    # Windows follow each other: this one starts where the run's previous one ended.
    previous = (
        rollout.measurements.filter(analysis_run=rollout.analysis_run)
        .order_by("-window_end")
        .values_list("window_end", flat=True)
        .first()
    )
    since = max(previous or rollout.step_started_at, rollout.step_started_at)
    specs = rollout.policy.metric_specs()
    windows: dict = {}

    def reader():
        # A savepoint: a failing read (the database) must not abort the move's transaction.
        with transaction.atomic():
            canary, stable = read_windows(rollout, since, until)
        windows.update(canary=canary.as_dict(), stable=stable.as_dict())
        return canary, stable

    measured = analysis.measure_all(specs, reader)  # a failing read becomes error measurements
    rows = [
        AnalysisMeasurement(
            rollout=rollout,
            step_index=rollout.step_index,
            analysis_run=rollout.analysis_run,
            weight_bp=rollout.weight_bp,
            metric=m.metric,
            value=m.value,
            threshold=m.threshold,
            comparator=m.comparator,
            verdict=m.verdict.value,
            message=m.message,
            canary_requests=m.canary_requests,
            stable_requests=m.stable_requests,
            window_start=since,
            window_end=until,
            canary_window=windows.get("canary", {}),
            stable_window=windows.get("stable", {}),
        )
        for m in measured
    ]
    AnalysisMeasurement.objects.bulk_create(rows)
    # The next measurement is due one interval after this one was taken (not after its window's end).
    Rollout.objects.filter(pk=rollout.pk).update(last_measured_at=now)
    rollout.last_measured_at = now
    return rows


def _analysis(rollout: Rollout, now: datetime) -> Reading:
    specs = rollout.policy.metric_specs()
    interval = timedelta(seconds=rollout.policy.analysis_interval_s)
    if machine.measurement_due(now, rollout.step_started_at, rollout.last_measured_at, interval):
        _measure(rollout, now)
    history = [
        analysis.Measurement(
            metric=m.metric,
            verdict=m.verdict,
            value=m.value,
            threshold=m.threshold,
            comparator=m.comparator,
            message=m.message,
        )
        for m in rollout.measurements.filter(analysis_run=rollout.analysis_run).order_by("measured_at", "id")
    ]
    assessment = analysis.assess_step(specs, history)
    return Reading(phase=assessment.phase, reason=assessment.reason)


def _staging(rollout: Rollout, now: datetime) -> Reading:
    """The staging tests' phase from their results; enqueue a run when none is on its way."""
    attempt = rollout.staging_results.order_by("-attempt").values_list("attempt", flat=True).first() or 0
    results = list(rollout.staging_results.filter(attempt=attempt)) if attempt else []
    if any(r.passed is False for r in results):
        failed = ", ".join(f"{r.get_test_display()}: {r.detail}" for r in results if r.passed is False)
        return Reading(Phase.FAILED, f"staging tests failed: {failed}")
    if len(results) == STAGING_TEST_COUNT and all(r.passed for r in results):
        return Reading(Phase.SUCCESSFUL, "every staging test passed")
    complete = len(results) == STAGING_TEST_COUNT  # some could not run: a new attempt after a pause
    lease = rollout.tests_lease_until
    if lease is not None and now < lease and not complete:
        return Reading(Phase.RUNNING, f"staging tests attempt {attempt} running")
    retry_at = max((r.ran_at for r in results), default=now) + STAGING_TESTS_RETRY
    if complete and now < retry_at:
        return Reading(Phase.RUNNING, "staging tests could not run: trying again shortly")
    next_attempt = attempt + 1
    claimed = Rollout.objects.filter(pk=rollout.pk, tests_lease_until=lease).update(
        tests_lease_until=now + STAGING_TESTS_LEASE
    )
    if claimed:
        enqueue_on_commit(
            "apps.deployments.tasks.run_staging_tests",
            rollout.pk,
            next_attempt,
            task_id=f"staging-tests-{rollout.pk}-{next_attempt}",
        )
    return Reading(Phase.RUNNING, f"staging tests attempt {next_attempt} enqueued")


def _read(rollout: Rollout, now: datetime) -> Reading:
    if rollout.state == State.ANALYSING:
        return _analysis(rollout, now)
    if rollout.state == State.STAGING_TESTS:
        return _staging(rollout, now)
    return Reading()


def decide(rollout: Rollout, now: datetime) -> tuple[machine.Decision, str]:
    """What the tick should do with `rollout` now, and the cause it records if the rollout ends badly.

    Reads what the state needs, storing a due analysis measurement on the way.
    """
    state = State(rollout.state)
    kind = machine.Kind.STAGING if rollout.kind == Rollout.Kind.STAGING else machine.Kind.PRODUCTION
    if state is State.CANARY and rollout.stable_id is None:
        # Nothing in Production to compare a canary against: the first release goes out whole.
        decision = machine.Decision(
            action=machine.Action.PROMOTE,
            source=state,
            target=State.PROMOTING,
            step_index=rollout.step_index,
            reason="no version in Production to compare against: full rollout",
        )
        return decision, rollout.cause
    reading = _read(rollout, now)
    decision = machine.next_action(
        state,
        rollout.step_index,
        rollout.steps(),
        reading.phase,
        now,
        machine.Deadlines(progress=rollout.deadline_at),
        kind=kind,
    )
    explained = (machine.Action.ROLL_BACK, machine.Action.PAUSE, machine.Action.REJECT)
    if decision.action in explained and reading.reason:
        decision = replace(decision, reason=f"{decision.reason}: {reading.reason}")
    failed = Rollout.Cause.ANALYSIS_ERROR if reading.phase is Phase.ERROR else Rollout.Cause.ANALYSIS_FAILED
    cause = {
        machine.Action.REJECT: Rollout.Cause.STAGING_TESTS_FAILED,
        machine.Action.ABORT: Rollout.Cause.DEADLINE,  # the tick aborts on the progress deadline only
        machine.Action.ROLL_BACK: failed,
    }.get(decision.action, rollout.cause)
    return decision, cause


def move(
    rollout: Rollout, decision: machine.Decision, *, cause: str, actor=None, now: datetime | None = None
) -> bool:
    """Compare-and-set the rollout from `decision.source` to `decision.target`, with its event and audit
    event. False (nothing written) when the rollout is no longer where the decision was taken."""
    now = now or timezone.now()
    target = State(decision.target)
    if not machine.allowed(decision.source, target):
        raise ValueError(f"a rollout cannot go from {decision.source} to {target}")
    changes = {
        "state": target.value,
        "step_index": decision.step_index,
        "revision": F("revision") + 1,
        "cause": cause,
        "updated_at": now,
    }
    if decision.action not in FINISHING:  # a finishing move keeps the reason the rollout ends for
        changes["reason"] = decision.reason[:2000]
    if target is State.ANALYSING:
        changes.update(
            weight_bp=decision.weight_bp, step_started_at=now, last_measured_at=None,
            analysis_run=F("analysis_run") + 1,
        )  # fmt: skip
    elif target is State.STAGING_TESTS:
        changes.update(tests_lease_until=None)
    elif target is State.SUCCEEDED:
        changes.update(weight_bp=machine.FULL_WEIGHT_BP, finished_at=now)
    elif target in (State.ROLLED_BACK, State.ABORTED):
        changes.update(weight_bp=0, finished_at=now)
    elif target in (State.STAGED, State.REJECTED):
        changes.update(finished_at=now)
    if decision.source is State.PENDING:
        changes["deadline_at"] = now + timedelta(seconds=rollout.policy.progress_deadline_s)
    if decision.action is machine.Action.RESUME:
        # A person resumed: the deadline counts again from now (it was not checked while paused).
        changes["deadline_at"] = now + timedelta(seconds=rollout.policy.progress_deadline_s)
    updated = Rollout.objects.filter(
        pk=rollout.pk, state=decision.source.value, step_index=rollout.step_index, revision=rollout.revision
    ).update(**changes)
    if not updated:
        return False
    before = {"state": rollout.state, "step": rollout.step_index, "weight_bp": rollout.weight_bp}
    rollout.refresh_from_db()
    RolloutEvent.objects.create(
        rollout=rollout,
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        action=decision.action.value,
        from_state=decision.source.value,
        to_state=target.value,
        step_index=rollout.step_index,
        weight_bp=rollout.weight_bp,
        revision=rollout.revision,
        reason=decision.reason[:2000],
    )
    audit_record(
        actor=actor,
        action=f"deployment.{decision.action.value}",
        obj=rollout,
        before=before,
        after={
            "state": rollout.state,
            "step": rollout.step_index,
            "weight_bp": rollout.weight_bp,
            "revision": rollout.revision,
            "reason": decision.reason,
        },
    )
    return True


def _locked(rollout_id: int, *, wait: bool) -> Rollout | None:
    rows = Rollout.objects.select_related("model", "candidate", "stable", "policy", "promotion_request")
    if wait:
        return rows.select_for_update(of=("self",)).filter(pk=rollout_id).first()
    return rows.select_for_update(skip_locked=True, of=("self",)).filter(pk=rollout_id).first()


def apply(rollout: Rollout, decision: machine.Decision, *, cause: str, actor=None, now=None) -> bool:
    """Effect, then compare-and-set (the machine's contract); the caller holds the rollout's lock."""
    rollout.cause = cause  # the effect reads why the rollout ends
    if decision.action not in FINISHING:
        rollout.reason = decision.reason
    effect_apply(rollout, decision, actor)
    return move(rollout, decision, cause=cause, actor=actor, now=now)


def rollout_advance(*, rollout_id: int, now: datetime | None = None, actor=None) -> int:
    """Advance one rollout until it has to wait; returns the moves made. Another holder: skipped."""
    moves = 0
    for _ in range(MAX_MOVES_PER_ADVANCE):
        with transaction.atomic():
            rollout = _locked(rollout_id, wait=False)
            if rollout is None or rollout.state not in TICK_STATES:
                return moves
            decision, cause = decide(rollout, now or timezone.now())
            if not decision.moves:
                return moves
            if not apply(rollout, decision, cause=cause, actor=actor, now=now):
                return moves
        moves += 1
    return moves


def controller_tick(*, now: datetime | None = None) -> dict:
    """The beat tick: start the rollouts of completed promotions, advance every active rollout."""
    from .starting import rollouts_start_missing

    started = rollouts_start_missing()
    moved = 0
    ids = list(Rollout.objects.filter(state__in=TICK_STATES).order_by("pk").values_list("pk", flat=True))
    for rollout_id in ids:
        try:
            moved += rollout_advance(rollout_id=rollout_id, now=now)
        except Exception:  # one broken rollout must not stop the others; it is logged and retried next tick
            log.exception("rollout #%s could not be advanced", rollout_id)
    aliases = canary_aliases_schedule(now=now)
    return {"started": started, "rollouts": len(ids), "moves": moved, "aliases": aliases}


ALIAS_RETRY_AFTER = timedelta(seconds=60)


def canary_aliases_schedule(*, now: datetime | None = None) -> int:
    """Sweep: rollouts whose `canary` alias still has to follow them, and no publication is on its way."""
    from django.db.models import Q

    from hafnium_portal.enqueue import enqueue

    now = now or timezone.now()
    stale = Q(alias_enqueued_at__isnull=True) | Q(alias_enqueued_at__lt=now - ALIAS_RETRY_AFTER)
    scheduled = 0
    for rollout_id, marker in Rollout.objects.filter(stale, alias_pending=True).values_list(
        "pk", "alias_enqueued_at"
    )[:100]:
        if Rollout.objects.filter(pk=rollout_id, alias_enqueued_at=marker).update(alias_enqueued_at=now):
            scheduled += enqueue("apps.deployments.tasks.publish_canary_alias", rollout_id)
    return scheduled
