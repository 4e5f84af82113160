"""The rollout state machine: step plans, each decision of the tick, the controls, and every move allowed."""

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from apps.deployments.analysis import (
    DEFAULT_METRICS,
    Phase,
    PolicyError,
    Verdict,
    assess_step,
    measure_all,
    summarise,
)
from apps.deployments.machine import (
    COMMANDS,
    FINISHED,
    TRANSITIONS,
    WITH_CANARY_STEP,
    Action,
    Command,
    Deadlines,
    Decision,
    Effect,
    Kind,
    State,
    Step,
    TransitionRefused,
    allowed,
    command_decision,
    measurement_due,
    next_action,
    plan_rollout,
    plan_steps,
)

NOW = datetime(2026, 12, 2, 20, 0, tzinfo=UTC)
NO_DEADLINE = Deadlines()
FOUR_STEPS = plan_steps([500, 2500, 5000, 10_000])


def drive(state, step_index, steps, phases, *, kind=Kind.PRODUCTION, deadlines=NO_DEADLINE, limit=50):
    """Apply the tick's decisions as the controller would (each one checked against TRANSITIONS).

    `phases` gives, per decision taken while analysing (or in staging tests), the phase the analysis
    reports; returns the decisions that moved the rollout, stopping at the first WAIT or a finish.
    """
    phases = iter(phases)
    taken = []
    for _ in range(limit):
        phase = (
            next(phases, Phase.RUNNING) if state in (State.ANALYSING, State.STAGING_TESTS) else Phase.RUNNING
        )
        decision = next_action(state, step_index, steps, phase, NOW, deadlines, kind=kind)
        if not decision.moves:
            return taken, state, decision
        assert allowed(state, decision.target), decision
        taken.append(decision)
        state, step_index = decision.target, decision.step_index
    raise AssertionError("the machine never settled")


# --- plan_steps ---------------------------------------------------------------------------------------


def test_default_plan_is_a_5_percent_canary_then_full_rollout():
    steps = plan_steps()
    assert steps == [Step(0, 500), Step(1, 10_000)]
    assert [s.percent for s in steps] == [5.0, 100.0]
    assert steps[-1].is_full
    assert not steps[0].is_full


def test_plan_5_25_50_100():
    assert [s.weight_bp for s in FOUR_STEPS] == [500, 2500, 5000, 10_000]
    assert [s.index for s in FOUR_STEPS] == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ([], "at least one canary step and the full rollout are needed"),
        ("500,10000", "must be a list of weights in basis points"),
        (500, "must be a list of weights in basis points"),
        ([10_000], "at least one canary step below 10000 is needed"),
        ([500, 5000], "the last step must be 10000 (100 %, the full rollout), got 5000"),
        ([500, 500, 10_000], "step 2: 500 does not increase on the step before (500)"),
        ([2500, 500, 10_000], "step 2: 500 does not increase on the step before (2500)"),
        ([0, 10_000], "step 1: weight must be between 1 and 10000 basis points, got 0"),
        ([-5, 10_000], "step 1: weight must be between 1 and 10000 basis points, got -5"),
        ([500, 10_001], "step 2: weight must be between 1 and 10000 basis points, got 10001"),
        ([5.0, 10_000], "step 1: 5.0 is not a whole number of basis points"),
        (["500", 10_000], "step 1: '500' is not a whole number of basis points"),
        ([True, 10_000], "step 1: True is not a whole number of basis points"),
        ([None, 10_000], "step 1: None is not a whole number of basis points"),
        ([*range(1, 21), 10_000], "at most 20 steps, got 21"),
    ],
)
def test_invalid_step_policies_are_refused_with_a_clear_message(weights, message):
    with pytest.raises(PolicyError) as refused:
        plan_steps(weights)
    assert refused.value.field == "steps"
    assert message in refused.value.message


def test_a_rollout_plan_knows_its_shortest_duration():
    plan = plan_rollout(
        weights_bp=[500, 2500, 5000, 10_000],
        metrics=DEFAULT_METRICS,
        analysis_interval_s=10,
        progress_deadline_s=120,
    )
    assert plan.shortest_duration == timedelta(seconds=30)
    assert len(plan.steps) == 4


def test_a_progress_deadline_the_steps_cannot_meet_is_refused():
    with pytest.raises(PolicyError) as refused:
        plan_rollout(
            weights_bp=[500, 2500, 10_000],
            metrics=DEFAULT_METRICS,
            analysis_interval_s=30,
            progress_deadline_s=60,
        )
    assert refused.value.field == "progress_deadline_s"
    assert "60 s cannot be met: the canary steps alone take at least 60 s" in refused.value.message


@pytest.mark.parametrize(
    ("interval", "deadline", "field"),
    [
        (0, 60, "analysis_interval_s"),
        (-1, 60, "analysis_interval_s"),
        (5, float("inf"), "progress_deadline_s"),
    ],
)
def test_non_positive_timings_are_refused(interval, deadline, field):
    with pytest.raises(PolicyError) as refused:
        plan_rollout(
            weights_bp=[500, 10_000],
            metrics=DEFAULT_METRICS,
            analysis_interval_s=interval,
            progress_deadline_s=deadline,
        )
    assert refused.value.field == field


def test_a_plan_without_metrics_is_refused():
    with pytest.raises(PolicyError, match="at least one metric"):
        plan_rollout(weights_bp=[500, 10_000], metrics=[], analysis_interval_s=5, progress_deadline_s=60)


# --- the tick: production rollouts --------------------------------------------------------------------


def test_analysing_step_waits_while_its_analysis_runs():
    taken, state, last = drive(State.PENDING, 0, FOUR_STEPS, [Phase.RUNNING])
    assert [d.action for d in taken] == [Action.START_CANARY, Action.START_ANALYSIS]
    assert taken[-1].weight_bp == 500
    assert state is State.ANALYSING
    assert last.action is Action.WAIT


def test_healthy_canary_walks_5_25_50_then_promotes():
    taken, state, last = drive(State.PENDING, 0, FOUR_STEPS, [Phase.SUCCESSFUL] * 3)
    assert [d.action for d in taken] == [
        Action.START_CANARY,
        Action.START_ANALYSIS,
        Action.ADVANCE,
        Action.START_ANALYSIS,
        Action.ADVANCE,
        Action.START_ANALYSIS,
        Action.PROMOTE,
        Action.FINISH_PROMOTION,
    ]
    assert [d.weight_bp for d in taken if d.effect is Effect.SET_CANARY_WEIGHT] == [500, 2500, 5000]
    assert taken[-1].effect is Effect.PROMOTE_FULLY
    assert state is State.SUCCEEDED
    assert last.action is Action.WAIT


def test_default_plan_promotes_after_the_5_percent_step():
    taken, state, _ = drive(State.PENDING, 0, plan_steps(), [Phase.SUCCESSFUL])
    assert [d.target for d in taken] == [State.CANARY, State.ANALYSING, State.PROMOTING, State.SUCCEEDED]
    assert state is State.SUCCEEDED


def test_running_analysis_waits():
    decision = next_action(State.ANALYSING, 1, FOUR_STEPS, Phase.RUNNING, NOW, NO_DEADLINE)
    assert decision.action is Action.WAIT
    assert decision.target is None
    assert decision.reason == "analysing step 25 %"


def test_failed_analysis_rolls_back_to_stable_at_once():
    taken, state, _ = drive(State.ANALYSING, 2, FOUR_STEPS, [Phase.FAILED])
    assert [(d.action, d.target) for d in taken] == [
        (Action.ROLL_BACK, State.ROLLING_BACK),
        (Action.FINISH_ROLLBACK, State.ROLLED_BACK),
    ]
    assert taken[0].reason == "analysis failed"
    assert taken[1].effect is Effect.RESTORE_STABLE
    assert state is State.ROLLED_BACK


def test_analysis_error_past_the_limit_rolls_back_as_in_argo():
    decision = next_action(State.ANALYSING, 0, FOUR_STEPS, Phase.ERROR, NOW, NO_DEADLINE)
    assert (decision.action, decision.target) == (Action.ROLL_BACK, State.ROLLING_BACK)
    assert "analysis error" in decision.reason


def test_inconclusive_analysis_pauses_for_a_person_and_stays_paused():
    taken, state, last = drive(State.ANALYSING, 0, FOUR_STEPS, [Phase.INCONCLUSIVE])
    assert [(d.action, d.target) for d in taken] == [(Action.PAUSE, State.PAUSED)]
    assert state is State.PAUSED
    assert last.action is Action.WAIT
    assert "person" in last.reason


def test_paused_rollout_is_never_promoted_nor_aborted_by_the_tick_even_past_the_deadline():
    past = Deadlines(progress=NOW - timedelta(hours=1))
    for phase in Phase:
        decision = next_action(State.PAUSED, 0, FOUR_STEPS, phase, NOW, past)
        assert decision.action is Action.WAIT


@pytest.mark.parametrize("state", [State.PENDING, State.CANARY, State.ANALYSING])
def test_progress_deadline_aborts_a_stuck_rollout(state):
    deadlines = Deadlines(progress=NOW)
    taken, final, _ = drive(state, 0, FOUR_STEPS, [Phase.RUNNING], deadlines=deadlines)
    assert [(d.action, d.target) for d in taken] == [
        (Action.ABORT, State.ABORTING),
        (Action.FINISH_ABORT, State.ABORTED),
    ]
    assert "progress deadline passed" in taken[0].reason
    assert taken[1].effect is Effect.RESTORE_STABLE
    assert final is State.ABORTED


def test_before_the_deadline_nothing_is_aborted():
    deadlines = Deadlines(progress=NOW + timedelta(seconds=1))
    decision = next_action(State.ANALYSING, 0, FOUR_STEPS, Phase.RUNNING, NOW, deadlines)
    assert decision.action is Action.WAIT


def test_a_failed_analysis_past_the_deadline_is_still_a_rollback_with_its_measurements():
    deadlines = Deadlines(progress=NOW - timedelta(seconds=1))
    decision = next_action(State.ANALYSING, 0, FOUR_STEPS, Phase.FAILED, NOW, deadlines)
    assert decision.action is Action.ROLL_BACK


def test_promotion_and_rollback_in_progress_finish_whatever_the_deadline():
    past = Deadlines(progress=NOW - timedelta(hours=1))
    assert next_action(State.PROMOTING, 0, FOUR_STEPS, Phase.RUNNING, NOW, past).target is State.SUCCEEDED
    assert (
        next_action(State.ROLLING_BACK, 0, FOUR_STEPS, Phase.RUNNING, NOW, past).target is State.ROLLED_BACK
    )


@pytest.mark.parametrize("state", sorted(FINISHED))
def test_finished_rollouts_are_left_alone_by_the_tick(state):
    assert next_action(state, 0, FOUR_STEPS, Phase.FAILED, NOW, Deadlines(progress=NOW)).action is Action.WAIT


def test_a_canary_state_with_a_step_index_outside_the_canary_steps_is_a_bug():
    with pytest.raises(ValueError, match="not a canary step"):
        next_action(State.ANALYSING, 3, FOUR_STEPS, Phase.RUNNING, NOW, NO_DEADLINE)
    with pytest.raises(ValueError, match="plan_steps"):
        next_action(State.PENDING, 0, [Step(0, 500)], Phase.RUNNING, NOW, NO_DEADLINE)


# --- the tick: staging deployments --------------------------------------------------------------------


def test_staging_deployment_passes_its_tests():
    taken, state, _ = drive(State.PENDING, 0, plan_steps(), [Phase.SUCCESSFUL], kind=Kind.STAGING)
    assert [(d.target, d.effect) for d in taken] == [
        (State.STAGING, Effect.NONE),
        (State.STAGING_TESTS, Effect.DEPLOY_TO_STAGING),
        (State.STAGED, Effect.MARK_STAGED),
    ]
    assert state is State.STAGED


def test_a_failed_staging_test_rejects_the_version():
    taken, state, _ = drive(State.STAGING_TESTS, 0, plan_steps(), [Phase.FAILED], kind=Kind.STAGING)
    assert [(d.action, d.effect) for d in taken] == [(Action.REJECT, Effect.MARK_REJECTED)]
    assert state is State.REJECTED


@pytest.mark.parametrize("phase", [Phase.RUNNING, Phase.ERROR, Phase.INCONCLUSIVE])
def test_staging_tests_that_could_not_run_are_retried_until_the_deadline(phase):
    decision = next_action(State.STAGING_TESTS, 0, plan_steps(), phase, NOW, NO_DEADLINE, kind=Kind.STAGING)
    assert decision.action is Action.WAIT
    late = next_action(
        State.STAGING_TESTS, 0, plan_steps(), phase, NOW, Deadlines(progress=NOW), kind=Kind.STAGING
    )
    assert (late.action, late.target) == (Action.ABORT, State.ABORTING)


# --- the controls -------------------------------------------------------------------------------------


def test_pause_and_resume_restart_the_current_step():
    paused = command_decision(State.ANALYSING, Command.PAUSE, step_index=2)
    assert (paused.target, paused.step_index) == (State.PAUSED, 2)
    resumed = command_decision(State.PAUSED, Command.RESUME, step_index=2)
    assert (resumed.action, resumed.target, resumed.step_index) == (Action.RESUME, State.CANARY, 2)
    # Back in canary, the tick sets the same step's weight again before analysing afresh.
    again = next_action(resumed.target, resumed.step_index, FOUR_STEPS, Phase.RUNNING, NOW, NO_DEADLINE)
    assert (again.effect, again.weight_bp) == (Effect.SET_CANARY_WEIGHT, 5000)


def test_promote_now_skips_the_remaining_steps_with_a_reason():
    decision = command_decision(
        State.ANALYSING, Command.PROMOTE_NOW, step_index=0, reason="  fix for an incident "
    )
    assert (decision.target, decision.reason) == (State.PROMOTING, "fix for an incident")
    with pytest.raises(TransitionRefused, match="promote now needs a reason"):
        command_decision(State.ANALYSING, Command.PROMOTE_NOW, reason="   ")


def test_abort_from_the_canary_goes_back_to_stable():
    decision = command_decision(State.PAUSED, Command.ABORT, reason="wrong features")
    assert decision.target is State.ABORTING
    finish = next_action(State.ABORTING, 0, FOUR_STEPS, Phase.RUNNING, NOW, NO_DEADLINE)
    assert (finish.target, finish.effect) == (State.ABORTED, Effect.RESTORE_STABLE)


def test_emergency_rollback_applies_to_a_succeeded_rollout_only():
    decision = command_decision(State.SUCCEEDED, Command.EMERGENCY_ROLLBACK, reason="fraud spike")
    assert (decision.action, decision.target) == (Action.ROLL_BACK, State.ROLLING_BACK)
    with pytest.raises(TransitionRefused, match="cannot emergency rollback a rollout that is analysing"):
        command_decision(State.ANALYSING, Command.EMERGENCY_ROLLBACK, reason="x")


@pytest.mark.parametrize(
    ("state", "command", "message"),
    [
        (State.SUCCEEDED, Command.ABORT, "cannot abort a rollout that is succeeded"),
        (State.ROLLED_BACK, Command.RESUME, "cannot resume a rollout that is rolled back"),
        (State.PAUSED, Command.PAUSE, "cannot pause a rollout that is paused"),
        (State.PROMOTING, Command.ABORT, "cannot abort a rollout that is promoting"),
        (State.STAGING_TESTS, Command.PROMOTE_NOW, "cannot promote now a rollout that is staging tests"),
    ],
)
def test_controls_that_do_not_fit_the_state_are_refused_with_a_message(state, command, message):
    with pytest.raises(TransitionRefused) as refused:
        command_decision(state, command, reason="because")
    assert message in str(refused.value)


def test_a_reason_with_a_nul_byte_is_refused():
    with pytest.raises(TransitionRefused, match="NUL"):
        command_decision(State.ANALYSING, Command.ABORT, reason="stop\x00")


# --- the map itself -----------------------------------------------------------------------------------


def _step_indexes(state: State, steps) -> list[int]:
    return list(range(len(steps) - 1)) if state in WITH_CANARY_STEP else [0]


def test_every_decision_of_the_tick_is_an_allowed_transition():
    deadline_cases = [NO_DEADLINE, Deadlines(progress=NOW), Deadlines(progress=NOW + timedelta(minutes=5))]
    checked = 0
    for steps in (plan_steps(), FOUR_STEPS):
        for state, phase, kind, deadlines in itertools.product(State, Phase, Kind, deadline_cases):
            for index in _step_indexes(state, steps):
                decision = next_action(state, index, steps, phase, NOW, deadlines, kind=kind)
                assert isinstance(decision, Decision)
                assert decision.source is state
                if decision.moves:
                    assert allowed(state, decision.target), (state, phase, kind, decision)
                else:
                    assert decision.action is Action.WAIT
                # A weight is named exactly when the routing table must be set.
                assert (decision.weight_bp is not None) == (decision.effect is Effect.SET_CANARY_WEIGHT)
                if decision.target in WITH_CANARY_STEP:
                    assert 0 <= decision.step_index < len(steps) - 1
                checked += 1
    assert checked > 500


def test_every_control_is_an_allowed_transition_or_refused():
    for state, command in itertools.product(State, Command):
        try:
            decision = command_decision(state, command, step_index=0, reason="checked")
        except TransitionRefused:
            assert state not in COMMANDS[command][0]
            continue
        assert allowed(state, decision.target), (state, command)


def test_every_state_is_reachable_and_only_finished_ones_are_dead_ends():
    reachable, frontier = {State.PENDING}, [State.PENDING]
    while frontier:
        for target in TRANSITIONS[frontier.pop()]:
            if target not in reachable:
                reachable.add(target)
                frontier.append(target)
    assert reachable == set(State)
    dead_ends = {state for state, targets in TRANSITIONS.items() if not targets}
    assert dead_ends == FINISHED - {State.SUCCEEDED}
    assert set(TRANSITIONS) == set(State)


# --- when to measure ----------------------------------------------------------------------------------


def test_first_measurement_one_interval_after_the_weight_was_set_then_every_interval():
    started = NOW
    interval = timedelta(seconds=10)
    assert not measurement_due(started + timedelta(seconds=9), started, None, interval)
    assert measurement_due(started + timedelta(seconds=10), started, None, interval)
    last = started + timedelta(seconds=10)
    assert not measurement_due(started + timedelta(seconds=19), started, last, interval)
    assert measurement_due(started + timedelta(seconds=20), started, last, interval)
    # A measurement of a previous step does not count for this one.
    assert not measurement_due(
        started + timedelta(seconds=5), started, started - timedelta(seconds=30), interval
    )


# --- the analysis and the machine together, as the controller will run them --------------------------


def run_canary(windows, steps=FOUR_STEPS, metrics=DEFAULT_METRICS, deadline=None):
    """A controller in miniature: one tick per interval, `windows(tick)` reads (canary, stable) or raises.

    Returns the states the rollout went through and the measurements taken.
    """
    state, index, step_history, measurements = State.PENDING, 0, [], []
    states = [state]
    deadlines = Deadlines(progress=deadline)
    for tick in range(40):
        now = NOW + timedelta(seconds=10 * tick)
        if state is State.ANALYSING:
            taken = measure_all(metrics, lambda tick=tick: windows(tick))
            step_history += taken
            measurements += taken
        phase = assess_step(metrics, step_history).phase if state is State.ANALYSING else Phase.RUNNING
        decision = next_action(state, index, steps, phase, now, deadlines)
        while decision.moves:
            assert allowed(state, decision.target)
            if decision.target is State.CANARY:
                step_history = []  # each step's analysis starts afresh
            state, index = decision.target, decision.step_index
            states.append(state)
            decision = next_action(state, index, steps, Phase.RUNNING, now, deadlines)
        if state in FINISHED or state is State.PAUSED:
            break
    return states, measurements


def healthy(tick):
    return summarised(requests=500), summarised(requests=9500)


def summarised(requests, errors=0, latency=20.0, score=0.2):
    statuses = ["error"] * errors + ["ok"] * (requests - errors)
    return summarise([latency] * requests, statuses, [False] * requests, [score] * requests)


def test_healthy_canary_goes_through_every_step_to_full_rollout():
    states, measurements = run_canary(healthy)
    assert states[-1] is State.SUCCEEDED
    assert states.count(State.CANARY) == 3
    assert {m.verdict for m in measurements} == {Verdict.SUCCESSFUL}


def test_failing_canary_is_rolled_back_at_its_first_bad_measurement():
    def degrades_at_the_25_percent_step(tick):
        # Tick 1 measures the 5 % step; from tick 2 on (the 25 % step) 5 % of the canary's answers fail.
        canary = summarised(requests=500, errors=25) if tick >= 2 else summarised(requests=500)
        return canary, summarised(requests=9500)

    states, measurements = run_canary(degrades_at_the_25_percent_step)
    assert states[-2:] == [State.ROLLING_BACK, State.ROLLED_BACK]
    assert State.PROMOTING not in states
    assert states.count(State.CANARY) == 2
    failed = [m for m in measurements if m.verdict is Verdict.FAILED]
    assert [m.metric for m in failed] == ["error_rate"]
    assert failed[0].value == pytest.approx(0.05)


def test_canary_without_traffic_is_paused_and_never_promoted():
    states, measurements = run_canary(lambda tick: (summarised(requests=3), healthy(tick)[1]))
    assert states[-1] is State.PAUSED
    assert State.PROMOTING not in states
    assert {m.verdict for m in measurements} == {Verdict.INCONCLUSIVE}


def test_metric_source_down_rolls_back_after_the_consecutive_error_limit():
    def down(tick):
        raise ConnectionError("redis down")

    states, measurements = run_canary(down)
    assert states[-2:] == [State.ROLLING_BACK, State.ROLLED_BACK]
    # Five intervals of errors (limit 4) for each of the four metrics, and not one counted as a failure.
    assert len(measurements) == 5 * len(DEFAULT_METRICS)
    assert {m.verdict for m in measurements} == {Verdict.ERROR}


def test_stuck_canary_is_aborted_at_the_progress_deadline():
    # Traffic that never fills a window, with a generous inconclusive limit: only the deadline ends it.
    patient = [spec.__class__(**{**spec.as_dict(), "inconclusive_limit": 100}) for spec in DEFAULT_METRICS]
    states, _ = run_canary(
        lambda tick: (summarised(requests=3), healthy(tick)[1]),
        metrics=patient,
        deadline=NOW + timedelta(seconds=60),
    )
    assert states[-2:] == [State.ABORTING, State.ABORTED]
