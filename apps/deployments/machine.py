"""The rollout state machine as data: states, allowed moves, step plans, and what a tick or a person decides.

Plain Python, no Django. The controller (a Celery beat tick) loads a rollout, asks `next_action` for a
`Decision` and applies it; a person's control (pause, resume, promote now, abort, emergency rollback)
goes through `command_decision`. Neither function touches anything: they only say what should happen.

How the controller applies a Decision (the contract these functions are written for):

- Each state whose name is a verb in progress (staging, canary, promoting, rolling_back, aborting)
  owns side effects that the controller makes true *before* leaving it: `Decision.effect` names them
  (set the routing weight, move aliases, alert). Every effect is idempotent, so a worker killed after
  the effect and before the compare-and-set simply repeats it on the next tick.
- The move itself is a compare-and-set on (state, step_index) writing an event row and an audit event;
  zero rows updated means another worker or a person moved first, and the tick drops its decision.
- Effects and the compare-and-set run under the rollout's row lock, which commands take too, so a stale
  tick cannot write a routing weight after a person aborted.
- A tick may apply decisions one after another until it gets `WAIT` (a failed analysis becomes
  rolling_back and then rolled_back in the same tick: "canary weight 0 at once").

States (issue 9 items 2-6): a *staging* deployment goes pending -> staging -> staging_tests -> staged,
or -> rejected when a staging test fails. A *production* rollout goes pending -> canary (weight of
step i being set) -> analysing (measurements at each interval) -> canary (next step) ... -> promoting ->
succeeded; a failed or erroring analysis goes rolling_back -> rolled_back; too many inconclusive
measurements go to paused (a person resumes, promotes or aborts); the progress deadline or a person's
abort goes aborting -> aborted. An emergency rollback takes a succeeded rollout to rolling_back.

As in Argo Rollouts: `setWeight: 100` is the promotion itself, not an analysed step (with no traffic
left on stable there is nothing to compare against); a paused canary keeps its weight; an aborted one
goes back to weight zero. As for a paused Kubernetes Deployment's `progressDeadlineSeconds`, the
progress deadline is not checked while paused: the rollout waits for a person. Where we differ: a
paused rollout resumed sets its step's weight again and starts that step's analysis afresh (a new
analysis run), and an Error analysis is a rollback with its own reason, kept apart from a failed one.
"""

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from apps.deployments.analysis import MetricSpec, Phase, PolicyError

FULL_WEIGHT_BP = 10_000  # basis points: 10000 = 100 % of the traffic
MAX_STEPS = 20


class State(enum.StrEnum):
    PENDING = "pending"
    STAGING = "staging"
    STAGING_TESTS = "staging_tests"
    STAGED = "staged"
    REJECTED = "rejected"
    CANARY = "canary"
    ANALYSING = "analysing"
    PAUSED = "paused"
    PROMOTING = "promoting"
    SUCCEEDED = "succeeded"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"
    ABORTING = "aborting"
    ABORTED = "aborted"


class Kind(enum.StrEnum):
    """What a deployment is for: the staging environment and its tests, or production traffic."""

    STAGING = "staging"
    PRODUCTION = "production"


# Every allowed move. Anything else is refused (a lost race or an invalid move).
TRANSITIONS: dict[State, frozenset[State]] = {
    State.PENDING: frozenset({State.STAGING, State.CANARY, State.ABORTING}),
    State.STAGING: frozenset({State.STAGING_TESTS, State.ABORTING}),
    State.STAGING_TESTS: frozenset({State.STAGED, State.REJECTED, State.ABORTING}),
    State.STAGED: frozenset(),
    State.REJECTED: frozenset(),
    State.CANARY: frozenset({State.ANALYSING, State.PAUSED, State.PROMOTING, State.ABORTING}),
    State.ANALYSING: frozenset(
        {State.CANARY, State.PAUSED, State.PROMOTING, State.ROLLING_BACK, State.ABORTING}
    ),
    State.PAUSED: frozenset({State.CANARY, State.PROMOTING, State.ABORTING}),
    State.PROMOTING: frozenset({State.SUCCEEDED}),
    # Emergency rollback of the version a rollout made Production.
    State.SUCCEEDED: frozenset({State.ROLLING_BACK}),
    State.ROLLING_BACK: frozenset({State.ROLLED_BACK}),
    State.ROLLED_BACK: frozenset(),
    State.ABORTING: frozenset({State.ABORTED}),
    State.ABORTED: frozenset(),
}

# Where the tick has nothing more to do (succeeded still accepts an emergency rollback from a person).
FINISHED = frozenset({State.STAGED, State.REJECTED, State.SUCCEEDED, State.ROLLED_BACK, State.ABORTED})
# Where the overall progress deadline aborts: states that move on their own when things work.
DEADLINE_APPLIES = frozenset(
    {State.PENDING, State.STAGING, State.STAGING_TESTS, State.CANARY, State.ANALYSING}
)
# States in which a canary weight (the current step's) is or may be live.
WITH_CANARY_STEP = frozenset({State.CANARY, State.ANALYSING, State.PAUSED})


def allowed(source: State, target: State) -> bool:
    return State(target) in TRANSITIONS[State(source)]


class Action(enum.StrEnum):
    WAIT = "wait"
    START_STAGING = "start_staging"
    RUN_STAGING_TESTS = "run_staging_tests"
    FINISH_STAGING = "finish_staging"
    REJECT = "reject"
    START_CANARY = "start_canary"
    START_ANALYSIS = "start_analysis"
    ADVANCE = "advance"
    PAUSE = "pause"
    RESUME = "resume"
    PROMOTE = "promote"
    FINISH_PROMOTION = "finish_promotion"
    ROLL_BACK = "roll_back"
    FINISH_ROLLBACK = "finish_rollback"
    ABORT = "abort"
    FINISH_ABORT = "finish_abort"


class Effect(enum.StrEnum):
    """What the controller makes true (idempotently) before the compare-and-set of a decision."""

    NONE = "none"
    # The version answers on the staging environment of the inference service.
    DEPLOY_TO_STAGING = "deploy_to_staging"
    # Staging tests passed: stage Staging, alias `staging`; the requester and approvers are told.
    MARK_STAGED = "mark_staged"
    # A staging test failed: stage Rejected with the reason, no alias moves, people told.
    MARK_REJECTED = "mark_rejected"
    # The routing table sends `Decision.weight_bp` to the candidate (sticky), alias `canary` on it.
    SET_CANARY_WEIGHT = "set_canary_weight"
    # 100 % to the candidate, stage Production, alias `production` moved, `canary` removed, the
    # previous version archived (kept loadable).
    PROMOTE_FULLY = "promote_fully"
    # Traffic back on the stable version only, `canary` removed, the previous Production version
    # restored if it had been replaced, the candidate Rolled back, on-call alerted.
    RESTORE_STABLE = "restore_stable"


@dataclass(frozen=True)
class Step:
    """One step of a rollout: the candidate's share of production traffic, in basis points."""

    index: int
    weight_bp: int

    @property
    def is_full(self) -> bool:
        """The last step: the candidate takes everything, which is the promotion."""
        return self.weight_bp == FULL_WEIGHT_BP

    @property
    def percent(self) -> float:
        return self.weight_bp / 100


@dataclass(frozen=True)
class Deadlines:
    """Instants computed by the controller from the policy; None means no such deadline."""

    progress: datetime | None = None


@dataclass(frozen=True)
class Decision:
    """What should happen to a rollout now: `target` None means stay (WAIT)."""

    action: Action
    source: State
    target: State | None
    step_index: int
    reason: str
    effect: Effect = Effect.NONE
    # The canary weight the routing table must hold, for SET_CANARY_WEIGHT.
    weight_bp: int | None = None

    @property
    def moves(self) -> bool:
        return self.target is not None


class TransitionRefused(ValueError):
    """A person asked for a move the rollout's state does not allow; the message is for them."""


# --- policies ---------------------------------------------------------------------------------------


def plan_steps(weights_bp: Sequence[int] = (500, FULL_WEIGHT_BP)) -> list[Step]:
    """The steps of a policy's weights (basis points, increasing, ending at 10000).

    Raises PolicyError("steps", ...) with a message naming the step at fault.
    """
    if isinstance(weights_bp, str | bytes) or not isinstance(weights_bp, Sequence):
        raise PolicyError("steps", "must be a list of weights in basis points, e.g. [500, 10000]")
    if not weights_bp:
        raise PolicyError(
            "steps", "at least one canary step and the full rollout are needed, e.g. [500, 10000]"
        )
    if len(weights_bp) > MAX_STEPS:
        raise PolicyError("steps", f"at most {MAX_STEPS} steps, got {len(weights_bp)}")
    steps = []
    for index, weight in enumerate(weights_bp):
        where = f"step {index + 1}"
        if not isinstance(weight, int) or isinstance(weight, bool):
            raise PolicyError(
                "steps", f"{where}: {weight!r} is not a whole number of basis points (100 bp = 1 %)"
            )
        if not 1 <= weight <= FULL_WEIGHT_BP:
            raise PolicyError(
                "steps", f"{where}: weight must be between 1 and {FULL_WEIGHT_BP} basis points, got {weight}"
            )
        if steps and weight <= steps[-1].weight_bp:
            raise PolicyError(
                "steps", f"{where}: {weight} does not increase on the step before ({steps[-1].weight_bp})"
            )
        steps.append(Step(index=index, weight_bp=weight))
    if not steps[-1].is_full:
        raise PolicyError(
            "steps",
            f"the last step must be {FULL_WEIGHT_BP} (100 %, the full rollout), got {steps[-1].weight_bp}",
        )
    if len(steps) == 1:
        raise PolicyError(
            "steps", f"at least one canary step below {FULL_WEIGHT_BP} is needed before the full rollout"
        )
    return steps


@dataclass(frozen=True)
class RolloutPlan:
    """A validated rollout policy's timing: steps, analysis interval, metrics, progress deadline."""

    steps: tuple[Step, ...]
    metrics: tuple[MetricSpec, ...]
    analysis_interval: timedelta
    progress_deadline: timedelta

    @property
    def shortest_duration(self) -> timedelta:
        """The least time the canary steps take when every measurement passes."""
        per_step = max(m.required_successes for m in self.metrics)
        return self.analysis_interval * per_step * (len(self.steps) - 1)


def plan_rollout(
    *,
    weights_bp: Sequence[int],
    metrics: Sequence[MetricSpec],
    analysis_interval_s: float,
    progress_deadline_s: float,
) -> RolloutPlan:
    """Validate a rollout policy as a whole; PolicyError names the field at fault."""
    steps = plan_steps(weights_bp)
    if not metrics:
        raise PolicyError(
            "metrics", "at least one metric is needed: a canary nobody measures is not analysed"
        )
    for name, value in (
        ("analysis_interval_s", analysis_interval_s),
        ("progress_deadline_s", progress_deadline_s),
    ):
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not value > 0
            or value == float("inf")
        ):
            raise PolicyError(name, f"must be a positive number of seconds, got {value!r}")
    plan = RolloutPlan(
        steps=tuple(steps),
        metrics=tuple(metrics),
        analysis_interval=timedelta(seconds=analysis_interval_s),
        progress_deadline=timedelta(seconds=progress_deadline_s),
    )
    if plan.progress_deadline <= plan.shortest_duration:
        raise PolicyError(
            "progress_deadline_s",
            f"{progress_deadline_s:g} s cannot be met: the canary steps alone take at least "
            f"{plan.shortest_duration.total_seconds():g} s ({len(steps) - 1} steps x "
            f"{max(m.required_successes for m in metrics)} measurements x {analysis_interval_s:g} s)",
        )
    return plan


def measurement_due(
    now: datetime, step_started_at: datetime, last_measured_at: datetime | None, interval: timedelta
):
    """Whether the analysis of the current step should take a measurement now.

    The first measurement comes one interval after the step's weight was set (a window of traffic at
    that weight), the next ones one interval after the previous.
    """
    since = (
        last_measured_at
        if last_measured_at is not None and last_measured_at >= step_started_at
        else step_started_at
    )
    return now >= since + interval


# --- decisions --------------------------------------------------------------------------------------


def _check_step(state: State, step_index: int, steps: Sequence[Step]) -> None:
    if not steps or not steps[-1].is_full:
        raise ValueError("steps must come from plan_steps (ending at the full rollout)")
    if state in WITH_CANARY_STEP and not 0 <= step_index < len(steps) - 1:
        raise ValueError(f"step_index {step_index} is not a canary step of {len(steps)} steps")


def next_action(
    state: State,
    step_index: int,
    steps: Sequence[Step],
    phase: Phase,
    now: datetime,
    deadlines: Deadlines,
    *,
    kind: Kind = Kind.PRODUCTION,
) -> Decision:
    """What the controller's tick should do with a rollout.

    `phase` is the current step's analysis (`analysis.assess_step`) while analysing, the staging tests'
    overall result while in staging_tests, and is ignored elsewhere. Pure and deterministic.

    Order of precedence while analysing: a failed or erroring analysis rolls back (the measurements
    that failed are the outcome, even past the deadline); then the progress deadline aborts; then
    inconclusive pauses, successful advances (or promotes after the last canary step), running waits.
    """
    state, phase, kind = State(state), Phase(phase), Kind(kind)
    _check_step(state, step_index, steps)

    def decide(action, target, reason, effect=Effect.NONE, index=step_index, weight=None) -> Decision:
        return Decision(
            action=action,
            source=state,
            target=target,
            step_index=index,
            reason=reason,
            effect=effect,
            weight_bp=weight,
        )

    def wait(reason: str) -> Decision:
        return decide(Action.WAIT, None, reason)

    if state in FINISHED:
        return wait(f"{state.value}: nothing left for the controller")
    if state is State.PROMOTING:
        return decide(Action.FINISH_PROMOTION, State.SUCCEEDED, "full rollout", Effect.PROMOTE_FULLY)
    if state is State.ROLLING_BACK:
        return decide(
            Action.FINISH_ROLLBACK, State.ROLLED_BACK, "traffic back on stable", Effect.RESTORE_STABLE
        )
    if state is State.ABORTING:
        return decide(Action.FINISH_ABORT, State.ABORTED, "traffic back on stable", Effect.RESTORE_STABLE)
    if state is State.PAUSED:
        return wait("paused: waiting for a person to resume, promote or abort")

    if state is State.ANALYSING and phase in (Phase.FAILED, Phase.ERROR):
        why = "analysis failed" if phase is Phase.FAILED else "analysis error: the metrics could not be read"
        return decide(Action.ROLL_BACK, State.ROLLING_BACK, why)
    if state in DEADLINE_APPLIES and deadlines.progress is not None and now >= deadlines.progress:
        return decide(
            Action.ABORT, State.ABORTING, f"progress deadline passed ({deadlines.progress.isoformat()})"
        )

    if state is State.PENDING:
        if kind is Kind.STAGING:
            return decide(Action.START_STAGING, State.STAGING, "deploy to staging")
        return decide(Action.START_CANARY, State.CANARY, f"canary at {steps[0].percent:g} %", index=0)
    if state is State.STAGING:
        return decide(
            Action.RUN_STAGING_TESTS, State.STAGING_TESTS, "deployed to staging", Effect.DEPLOY_TO_STAGING
        )
    if state is State.STAGING_TESTS:
        if phase is Phase.SUCCESSFUL:
            return decide(
                Action.FINISH_STAGING, State.STAGED, "every staging test passed", Effect.MARK_STAGED
            )
        if phase is Phase.FAILED:
            return decide(Action.REJECT, State.REJECTED, "a staging test failed", Effect.MARK_REJECTED)
        # Running, or tests that could not run (errors): try again until the progress deadline.
        return wait(f"staging tests {phase.value}")
    step = steps[step_index]
    if state is State.CANARY:
        return decide(
            Action.START_ANALYSIS,
            State.ANALYSING,
            f"canary weight {step.percent:g} % set",
            Effect.SET_CANARY_WEIGHT,
            weight=step.weight_bp,
        )
    # analysing
    if phase is Phase.INCONCLUSIVE:
        return decide(Action.PAUSE, State.PAUSED, "analysis inconclusive: paused for a person")
    if phase is Phase.SUCCESSFUL:
        following = steps[step_index + 1]
        if following.is_full:
            return decide(Action.PROMOTE, State.PROMOTING, f"step {step.percent:g} % passed: full rollout")
        return decide(
            Action.ADVANCE,
            State.CANARY,
            f"step {step.percent:g} % passed: next {following.percent:g} %",
            index=step_index + 1,
        )
    return wait(f"analysing step {step.percent:g} %")


class Command(enum.StrEnum):
    """The controls a person has on a rollout (issue 9 item 6)."""

    PAUSE = "pause"
    RESUME = "resume"
    PROMOTE_NOW = "promote_now"
    ABORT = "abort"
    EMERGENCY_ROLLBACK = "emergency_rollback"


# Where each control applies, its action and target.
COMMANDS: dict[Command, tuple[frozenset[State], Action, State]] = {
    Command.PAUSE: (frozenset({State.CANARY, State.ANALYSING}), Action.PAUSE, State.PAUSED),
    # Back to canary: the step's weight is set again (idempotent) and its analysis starts afresh.
    Command.RESUME: (frozenset({State.PAUSED}), Action.RESUME, State.CANARY),
    Command.PROMOTE_NOW: (WITH_CANARY_STEP, Action.PROMOTE, State.PROMOTING),
    Command.ABORT: (
        frozenset({State.PENDING, State.STAGING, State.STAGING_TESTS}) | WITH_CANARY_STEP,
        Action.ABORT,
        State.ABORTING,
    ),
    Command.EMERGENCY_ROLLBACK: (frozenset({State.SUCCEEDED}), Action.ROLL_BACK, State.ROLLING_BACK),
}
# Controls recorded with a reason a person must give.
NEEDS_REASON = frozenset({Command.PROMOTE_NOW, Command.ABORT, Command.EMERGENCY_ROLLBACK})


def command_decision(state: State, command: Command, *, step_index: int = 0, reason: str = "") -> Decision:
    """The decision for a person's control, or TransitionRefused with a message saying why not."""
    state, command = State(state), Command(command)
    sources, action, target = COMMANDS[command]
    label = command.value.replace("_", " ")
    if state not in sources:
        where = ", ".join(sorted(s.value for s in sources))
        raise TransitionRefused(
            f"cannot {label} a rollout that is {state.value.replace('_', ' ')} (only: {where})"
        )
    reason = (reason or "").strip()
    if command in NEEDS_REASON and not reason:
        raise TransitionRefused(f"{label} needs a reason")
    if "\x00" in reason:
        raise TransitionRefused("the reason may not contain a NUL character")
    return Decision(
        action=action,
        source=state,
        target=target,
        step_index=step_index,
        reason=reason or f"{label} by a person",
    )
