"""Reads of deployments, scoped to the user who asks: rollout lists and details, the live traffic split,
staging test results, the rollback reviews waiting for a person."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone

from apps.accounts.roles import Role, roles_of
from apps.registry.models import ModelVersion, RegisteredModel
from apps.registry.selectors import models_visible_to

from . import machine
from .models import (
    ACTIVE_STATES,
    AnalysisMeasurement,
    RollbackReview,
    Rollout,
    RolloutEvent,
    RolloutPolicy,
    StagingTestResult,
)

# The `state` filter value that means "every state the controller still moves".
ACTIVE = "active"


def rollouts_visible_to(user) -> QuerySet[Rollout]:
    return Rollout.objects.filter(model__in=models_visible_to(user)).select_related(
        "model", "candidate", "stable", "policy", "started_by"
    )


def rollouts_for(
    user, *, model: RegisteredModel | str | None = None, state: str | None = None, kind: str | None = None
) -> QuerySet[Rollout]:
    """The rollouts the user sees, newest first; `model` a model or its name, `state` a state or "active"."""
    rollouts = rollouts_visible_to(user)
    if isinstance(model, RegisteredModel):
        rollouts = rollouts.filter(model=model)
    elif model:
        rollouts = rollouts.filter(model__name=model)
    if state == ACTIVE:
        rollouts = rollouts.filter(state__in=ACTIVE_STATES)
    elif state:
        rollouts = rollouts.filter(state=state)
    if kind:
        rollouts = rollouts.filter(kind=kind)
    return rollouts.order_by("-created_at", "-id")


@dataclass
class StepView:
    """One step of a rollout's plan as the timeline shows it."""

    index: int
    weight_bp: int
    status: str  # "done", "current", "pending", "skipped"
    started_at: datetime | None = None

    @property
    def percent(self) -> float:
        return self.weight_bp / 100


@dataclass
class RolloutDetail:
    rollout: Rollout
    steps: list[StepView]
    events: list[RolloutEvent]
    measurements: list[AnalysisMeasurement]
    staging_results: list[StagingTestResult]
    review: RollbackReview | None
    # The controls the user may use now (machine.Command values): the page shows these buttons only.
    commands: list[str] = field(default_factory=list)
    may_roll_back: bool = False


def _steps(rollout: Rollout, events: list[RolloutEvent]) -> list[StepView]:
    if rollout.kind != Rollout.Kind.CANARY:
        return []
    started = {}
    for event in events:
        if event.to_state == Rollout.State.ANALYSING:
            started.setdefault(event.step_index, event.at)
    views = []
    succeeded = rollout.state == Rollout.State.SUCCEEDED or (
        rollout.state == Rollout.State.ROLLED_BACK and rollout.cause == Rollout.Cause.EMERGENCY
    )
    for step in machine.plan_steps(rollout.policy.weights):
        if step.is_full:
            status = "done" if succeeded else "pending"
            at = next((e.at for e in events if e.to_state == Rollout.State.SUCCEEDED), None)
        elif step.index < rollout.step_index or (succeeded and step.index in started):
            status, at = "done", started.get(step.index)
        elif step.index == rollout.step_index and rollout.state in machine.WITH_CANARY_STEP:
            status, at = "current", started.get(step.index)
        elif succeeded:
            status, at = "skipped", None  # promoted now, past this step
        else:
            status, at = ("done" if step.index in started else "pending"), started.get(step.index)
        views.append(StepView(index=step.index, weight_bp=step.weight_bp, status=status, started_at=at))
    return views


def commands_for(user, rollout: Rollout) -> list[str]:
    """The controls `user` may use on `rollout` in its current state."""
    from .permissions import may_control, may_roll_back

    allowed = []
    for command, (sources, _action, _target) in machine.COMMANDS.items():
        if rollout.state not in sources:
            continue
        if command is machine.Command.EMERGENCY_ROLLBACK:
            if may_roll_back(user) and rollout.kind == Rollout.Kind.CANARY:
                allowed.append(command.value)
        elif may_control(user):
            allowed.append(command.value)
    return allowed


def rollout_detail(user, pk: int) -> RolloutDetail:
    """Everything the rollout page shows; 404 when the user may not see the rollout."""
    from .permissions import may_roll_back, rollout_for_user

    rollout = rollout_for_user(user, pk)
    events = list(rollout.events.select_related("actor"))
    return RolloutDetail(
        rollout=rollout,
        steps=_steps(rollout, events),
        events=events,
        measurements=list(rollout.measurements.all()),
        staging_results=list(rollout.staging_results.all()),
        review=RollbackReview.objects.filter(rollout=rollout)
        .select_related("requested_by", "reviewer")
        .first(),
        commands=commands_for(user, rollout),
        may_roll_back=may_roll_back(user),
    )


def measurements_of(rollout: Rollout, *, step_index: int | None = None, run: int | None = None):
    measurements = rollout.measurements.all()
    if step_index is not None:
        measurements = measurements.filter(step_index=step_index)
    if run is not None:
        measurements = measurements.filter(analysis_run=run)
    return measurements.order_by("measured_at", "id")


def active_rollout(model: RegisteredModel, kind: str = Rollout.Kind.CANARY) -> Rollout | None:
    return (
        Rollout.objects.filter(model=model, kind=kind, state__in=ACTIVE_STATES)
        .select_related("candidate", "stable", "policy")
        .first()
    )


def traffic_split(model: RegisteredModel) -> dict:
    """The live split of production traffic for the model page: who answers what share, and the canary.

    Read from the routing table in PostgreSQL (the source of truth; Redis holds its copy).
    """
    from apps.serving.routing import routes_get

    canary = active_rollout(model)
    return {"weights": routes_get(model, environment="production"), "rollout": canary}


def policy_in_force(model: RegisteredModel | None) -> RolloutPolicy:
    """The newest policy of the model, else the newest default one (created on first use)."""
    if model is not None:
        own = RolloutPolicy.objects.filter(model=model).order_by("-version").first()
        if own is not None:
            return own
    default = RolloutPolicy.objects.filter(model__isnull=True).order_by("-version").first()
    if default is None:
        default, _ = RolloutPolicy.objects.get_or_create(
            model=None,
            version=1,
            defaults={"steps": [500, machine.FULL_WEIGHT_BP], "note": "the default rollout policy"},
        )
    return default


def policies_of(model: RegisteredModel) -> QuerySet[RolloutPolicy]:
    return RolloutPolicy.objects.filter(Q(model=model) | Q(model__isnull=True)).order_by(
        "model_id", "-version"
    )


# --- staging tests -----------------------------------------------------------------------------------


@dataclass
class StagingVerdict:
    """Where a version stands with its staging tests: passed True/False, or None (not run, running)."""

    passed: bool | None
    detail: str
    rollout: Rollout | None = None
    results: list[StagingTestResult] = field(default_factory=list)


def staging_verdict(version: ModelVersion) -> StagingVerdict:
    """The result of the version's latest staging deployment (the Production pre-check reads it)."""
    rollout = (
        Rollout.objects.filter(candidate=version, kind=Rollout.Kind.STAGING)
        .order_by("-created_at", "-id")
        .first()
    )
    if rollout is None:
        return StagingVerdict(None, "no staging test results recorded")
    results = list(rollout.staging_results.filter(attempt=_last_attempt(rollout)))
    if rollout.state == Rollout.State.STAGED:
        return StagingVerdict(True, f"all {len(results)} staging tests passed", rollout, results)
    if rollout.state == Rollout.State.REJECTED:
        failed = ", ".join(r.get_test_display() for r in results if r.passed is False)
        return StagingVerdict(False, f"failed: {failed or rollout.reason}", rollout, results)
    where = f"staging deployment #{rollout.pk}: {rollout.get_state_display().lower()}"
    return StagingVerdict(None if rollout.is_active else False, where, rollout, results)


def _last_attempt(rollout: Rollout) -> int:
    last = rollout.staging_results.order_by("-attempt").values_list("attempt", flat=True).first()
    return last or 0


# --- rollback reviews (the second person's inbox) ------------------------------------------------------


def rollback_reviews_for(user) -> QuerySet[RollbackReview]:
    """Open reviews of emergency rollbacks for `user`: the rollback roles, not the one who rolled back."""
    if not user.is_authenticated:
        return RollbackReview.objects.none()
    held = set(roles_of(user))
    if not (user.is_superuser or held & {Role.ML_ENGINEER, Role.MODEL_RISK}):
        return RollbackReview.objects.none()
    return (
        RollbackReview.objects.filter(
            status=RollbackReview.Status.OPEN, rollout__model__in=models_visible_to(user)
        )
        .exclude(requested_by=user.pk)
        .select_related("rollout", "rollout__model", "rollout__candidate", "rollout__stable", "requested_by")
        .order_by("created_at", "id")
    )


def rollouts_of_user_models(user, *, limit: int = 5) -> list[Rollout]:
    """The home card's "your rollouts": active rollouts of the models the user sees, then the latest."""
    visible = rollouts_visible_to(user)
    active = list(visible.filter(state__in=ACTIVE_STATES).order_by("-created_at")[:limit])
    if len(active) < limit:
        recent = visible.exclude(state__in=ACTIVE_STATES).filter(
            updated_at__gte=timezone.now() - timedelta(days=7)
        )
        active += list(recent.order_by("-updated_at")[: limit - len(active)])
    return active


def with_events(rollouts: QuerySet[Rollout]) -> QuerySet[Rollout]:
    return rollouts.prefetch_related(
        Prefetch("events", queryset=RolloutEvent.objects.select_related("actor"))
    )
