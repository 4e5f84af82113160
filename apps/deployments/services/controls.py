"""A person's controls on a rollout (pause, resume, promote now, abort), the emergency rollback, and the
review of that rollback by a second person.

A control takes the rollout's row lock (waiting for a tick that holds it: ticks are short), asks the
machine whether the move is allowed (`command_decision`), and moves with the same compare-and-set,
event and audit event as the controller. Promote now, abort and the rollback then advance the rollout
at once (weight zero or full), not at the next tick.
"""

from dataclasses import replace

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.registry.models import ModelVersion, Stage, StageTransition
from apps.registry.selectors import production_version
from hafnium_portal.errors import Conflict, DomainError

from .. import machine
from ..models import ACTIVE_STATES, RollbackReview, Rollout
from ..permissions import (
    CONTROL_REFUSED,
    REVIEW_OWN_REFUSED,
    REVIEW_REFUSED,
    ROLLBACK_REFUSED,
    may_control,
    may_review,
    may_roll_back,
)
from ..selectors import policy_in_force
from .controller import _locked, apply, rollout_advance

Command = machine.Command
# Controls after which the rollout goes on at once rather than at the next tick.
ADVANCE_NOW = frozenset({Command.PROMOTE_NOW, Command.ABORT, Command.EMERGENCY_ROLLBACK})
SOURCES = ("person", "monitoring")


def _command(*, actor, rollout: Rollout, command: Command, reason: str, cause: str | None = None) -> Rollout:
    with transaction.atomic():
        locked = _locked(rollout.pk, wait=True)
        try:
            decision = machine.command_decision(
                locked.state, command, step_index=locked.step_index, reason=reason
            )
        except machine.TransitionRefused as refused:
            raise Conflict(str(refused)) from refused
        if command is Command.PROMOTE_NOW:
            decision = replace(decision, reason=f"promoted now: {decision.reason}")
        if not apply(locked, decision, cause=cause if cause is not None else locked.cause, actor=actor):
            raise Conflict("The rollout moved meanwhile; reload and try again.")
    if command in ADVANCE_NOW:
        rollout_advance(rollout_id=rollout.pk, actor=actor)
    rollout.refresh_from_db()
    return rollout


def _check_control(actor) -> None:
    if not may_control(actor):
        raise PermissionDenied(CONTROL_REFUSED)


def rollout_pause(*, actor, rollout: Rollout, reason: str = "") -> Rollout:
    """Hold the canary at its weight; the analysis stops until a person resumes, promotes or aborts."""
    _check_control(actor)
    return _command(actor=actor, rollout=rollout, command=Command.PAUSE, reason=reason)


def rollout_resume(*, actor, rollout: Rollout, reason: str = "") -> Rollout:
    """Go on from a pause: the step's weight is set again and its analysis starts afresh."""
    _check_control(actor)
    return _command(actor=actor, rollout=rollout, command=Command.RESUME, reason=reason)


def rollout_promote_now(*, actor, rollout: Rollout, reason: str) -> Rollout:
    """Skip the remaining steps: full rollout now, recorded with the person's reason."""
    _check_control(actor)
    return _command(actor=actor, rollout=rollout, command=Command.PROMOTE_NOW, reason=reason)


def rollout_abort(*, actor, rollout: Rollout, reason: str) -> Rollout:
    """Traffic back on the stable version now; the candidate stays where it was (it did not fail)."""
    _check_control(actor)
    return _command(actor=actor, rollout=rollout, command=Command.ABORT, reason=reason,
                    cause=Rollout.Cause.ABORTED)  # fmt: skip


# --- the emergency rollback ---------------------------------------------------------------------------


def _last_good(model, production: ModelVersion) -> ModelVersion | None:
    """The version that was in Production before `production` and is still archived (loadable, not
    rolled back or rejected since)."""
    left = (
        StageTransition.objects.filter(
            version__model=model,
            from_stage=Stage.PRODUCTION,
            to_stage=Stage.ARCHIVED,
            version__stage=Stage.ARCHIVED,
        )
        .exclude(version=production)
        .select_related("version")
        .order_by("-at", "-id")
        .first()
    )
    return left.version if left else None


def _rollout_of_production(model, production: ModelVersion, actor) -> Rollout:
    """The succeeded rollout that made `production` what it is; adopted as one if it came otherwise."""
    rollout = (
        Rollout.objects.filter(model=model, candidate=production, kind=Rollout.Kind.CANARY,
                               state=Rollout.State.SUCCEEDED)
        .order_by("-created_at", "-id")
        .first()
    )  # fmt: skip
    if rollout is not None and rollout.stable is not None and rollout.stable.stage == Stage.ARCHIVED:
        return rollout
    last_good = _last_good(model, production)
    if last_good is None:
        raise DomainError(f"{model} has no earlier Production version left to roll back to.")
    # A Production version that came without a rollout (or whose previous one is gone): the rollback
    # gets a rollout of its own, as if it had succeeded from the last good version.
    now = timezone.now()
    adopted = Rollout.objects.create(
        model=model,
        candidate=production,
        stable=last_good,
        kind=Rollout.Kind.CANARY,
        policy=policy_in_force(model),
        state=Rollout.State.SUCCEEDED,
        weight_bp=machine.FULL_WEIGHT_BP,
        started_by=actor if getattr(actor, "is_authenticated", False) else None,
        reason=f"adopted for an emergency rollback to v{last_good.version}",
        finished_at=now,
    )
    audit_record(
        actor=actor,
        action="deployment.adopted",
        obj=adopted,
        after={"candidate": production.version, "stable": last_good.version},
    )
    return adopted


def rollback_to_last_good(*, model, actor, reason: str, source: str = "person") -> Rollout:
    """Emergency rollback: the model's Production version out (Rolled back), the last good one back in,
    traffic on it at once; audited, on-call paged, and a review opened for a second person.

    `source` "person" (an ML Engineer or Model Risk, checked here) or the system that asks (monitoring,
    with the system actor: `actor` None). Raises DomainError/Conflict when there is nothing to roll back.
    """
    if source not in SOURCES:
        raise DomainError(f"source must be one of {', '.join(SOURCES)}")
    is_person = getattr(actor, "is_authenticated", False)
    if source == "person" and not (is_person and may_roll_back(actor)):
        raise PermissionDenied(ROLLBACK_REFUSED)
    reason = (reason or "").strip()
    if not reason:
        raise DomainError("An emergency rollback needs a reason.")
    if "\x00" in reason:
        raise DomainError("The reason may not contain a NUL character.")
    with transaction.atomic():
        production = production_version(model)
        if production is None:
            raise DomainError(f"{model} has no version in Production to roll back.")
        running = Rollout.objects.filter(
            model=model, kind=Rollout.Kind.CANARY, state__in=ACTIVE_STATES
        ).first()
        if running is not None:
            raise Conflict(
                f"A canary of v{running.candidate.version} is running (#{running.pk}): abort it instead, "
                "which puts traffic back on the Production version."
            )
        rollout = _rollout_of_production(model, production, actor)
        locked = _locked(rollout.pk, wait=True)
        try:
            decision = machine.command_decision(locked.state, Command.EMERGENCY_ROLLBACK, reason=reason)
        except machine.TransitionRefused as refused:
            raise Conflict(str(refused)) from refused
        if not apply(locked, decision, cause=Rollout.Cause.EMERGENCY, actor=actor):
            raise Conflict("The rollout moved meanwhile; reload and try again.")
        review = RollbackReview.objects.create(
            rollout=locked, requested_by=actor if is_person else None, source=source, reason=reason
        )
        audit_record(
            actor=actor,
            action="deployment.rollback_review_opened",
            obj=review,
            after={"rollout": locked.pk, "source": source, "reason": reason},
        )
    rollout_advance(rollout_id=rollout.pk, actor=actor)
    rollout.refresh_from_db()
    return rollout


def rollback_review_confirm(*, actor, review: RollbackReview, note: str = "") -> RollbackReview:
    """A second person (ML Engineer or Model Risk, not the one who rolled back) confirms the rollback."""
    if not getattr(actor, "is_authenticated", False) or not may_review(actor, review):
        raise PermissionDenied(REVIEW_OWN_REFUSED if review.requested_by_id == actor.pk else REVIEW_REFUSED)
    note = (note or "").strip()
    if "\x00" in note:
        raise DomainError("The note may not contain a NUL character.")
    with transaction.atomic():
        updated = RollbackReview.objects.filter(pk=review.pk, status=RollbackReview.Status.OPEN).update(
            status=RollbackReview.Status.CONFIRMED, reviewer=actor, note=note, reviewed_at=timezone.now()
        )
        if not updated:
            raise Conflict("This rollback has already been reviewed.")
        review.refresh_from_db()
        audit_record(
            actor=actor,
            action="deployment.rollback_reviewed",
            obj=review,
            before={"status": RollbackReview.Status.OPEN},
            after={"status": review.status, "note": note},
        )
    return review
