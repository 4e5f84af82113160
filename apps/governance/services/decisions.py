"""Decisions on promotion requests: approve, reject, and publishing an approved promotion to MLflow."""

from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from apps.audit.services import audit_record
from apps.registry.models import ModelVersion, Stage
from apps.registry.services import aliases_publish, version_stage_set
from hafnium_portal.enqueue import enqueue, enqueue_on_commit
from hafnium_portal.errors import Conflict, DomainError

from .. import notifications
from ..models import Approval, PromotionRequest
from ..selectors import decision_standing, failed_hard_checks, prechecks_for
from ..signals import promotion_completed
from .evidence import evidence_refresh
from .requests import request_move

Status = PromotionRequest.Status

EVIDENCE_MOVED = "The evidence changed since you loaded the page; reload and review it before deciding."
# How long an enqueued publication is left to its task (and its retries) before the sweep enqueues it again.
PUBLISH_LEASE = timedelta(minutes=30)
PUBLISH_TASK = "apps.governance.tasks.publish_promotion"


def _locked(request: PromotionRequest) -> PromotionRequest:
    """The request re-read under a row lock: deciders on one request queue up here."""
    return PromotionRequest.objects.select_for_update().select_related("version", "policy").get(pk=request.pk)


def _check_seen_evidence(locked: PromotionRequest, seen: str | None) -> None:
    """The decider decides on the evidence they were shown, or not at all."""
    if seen is not None and seen != locked.evidence_sha256:
        raise Conflict(EVIDENCE_MOVED)


def promotion_approve(
    *,
    actor,
    request: PromotionRequest,
    comment: str = "",
    role: str | None = None,
    evidence_sha256: str | None = None,
    override_reason: str = "",
) -> Approval:
    """Approve in one role; the approval that fills the last role moves the stage (then MLflow follows).

    `evidence_sha256` is the evidence the approver was shown (the pages and the API send it): if it
    moved since, nothing is written. A failed hard pre-check blocks the approval unless the approver
    overrides it with a written `override_reason`, recorded on the approval and in the audit event.
    """
    if evidence_refresh(request=request):
        raise Conflict(
            "The evidence changed since this request was made: earlier approvals are void. Review it again."
        )
    override_reason = (override_reason or "").strip()
    with transaction.atomic():
        locked = _locked(request)
        standing = decision_standing(actor, locked)
        role = standing.role_for(role)
        _check_seen_evidence(locked, evidence_sha256)
        prechecks = prechecks_for(locked.version, locked.to_stage, locked.policy)
        failed = failed_hard_checks(prechecks)
        if failed and not override_reason:
            raise DomainError(
                f"Pre-checks failed: {', '.join(failed)}. Approving anyway needs an override: "
                "write the reason in “Override reason”."
            )
        if prechecks != locked.prechecks:
            locked.prechecks = prechecks
            locked.save(update_fields=["prechecks"])
        try:
            with transaction.atomic():
                approval = Approval.objects.create(
                    request=locked,
                    approver=actor,
                    role=role,
                    decision=Approval.Decision.APPROVE,
                    comment=(comment or "").strip(),
                    evidence_sha256=locked.evidence_sha256,
                    policy_version=locked.policy.version,
                    overridden_checks=failed,
                    override_reason=override_reason if failed else "",
                    creator_unknown=standing.creator_unknown,
                )
        except IntegrityError as exc:
            raise Conflict(
                f"The {role} decision on this request has just been given by someone else."
            ) from exc
        after = {"role": role, "comment": approval.comment}
        if failed:
            after["override"] = {"checks": failed, "reason": override_reason}
        if standing.creator_unknown:
            after["creator_unknown"] = True
        audit_record(actor=actor, action="promotion.approved_in_role", obj=locked, after=after)
        notifications.decision_made(locked, approval)
        filled = set(locked.approvals.filter(voided_at__isnull=True).values_list("role", flat=True))
        if filled >= set(locked.required_roles):
            _approve_request(actor, locked)
    request.refresh_from_db()
    return approval


def promotion_reject(
    *,
    actor,
    request: PromotionRequest,
    comment: str,
    role: str | None = None,
    evidence_sha256: str | None = None,
) -> Approval:
    comment = (comment or "").strip()
    if not comment:
        raise DomainError("A rejection needs a comment saying why.")
    with transaction.atomic():
        locked = _locked(request)
        standing = decision_standing(actor, locked)
        role = standing.role_for(role)
        _check_seen_evidence(locked, evidence_sha256)
        if not request_move(
            locked, to=Status.REJECTED, actor=actor, action="promotion.rejected", role=role, comment=comment
        ):
            raise Conflict(f"Request #{locked.pk} was decided meanwhile.")
        approval = Approval.objects.create(
            request=locked,
            approver=actor,
            role=role,
            decision=Approval.Decision.REJECT,
            comment=comment,
            evidence_sha256=locked.evidence_sha256,
            policy_version=locked.policy.version,
            creator_unknown=standing.creator_unknown,
        )
        notifications.decision_made(locked, approval)
    request.refresh_from_db()
    return approval


# Stages a completed promotion hands over to deployments instead of moving the version at once: the
# staging deployment and its tests move a version to Staging (or Rejected), the canary to Production.
HANDED_OVER = frozenset({Stage.STAGING, Stage.PRODUCTION})


def _approve_request(actor, request: PromotionRequest) -> None:
    """All roles approved: move the stage now (or leave it to a rollout); MLflow follows after the commit."""
    moved = request_move(
        request,
        to=Status.PUBLISHING,
        actor=actor,
        action="promotion.approved",
        stage=request.to_stage,
        policy=request.policy.version,
    )
    if not moved:
        raise Conflict(f"Request #{request.pk} was decided meanwhile.")
    if request.to_stage not in HANDED_OVER:
        _move_stage(actor, request)
    PromotionRequest.objects.filter(pk=request.pk).update(
        publish_scheduled_until=timezone.now() + PUBLISH_LEASE
    )
    enqueue_on_commit(PUBLISH_TASK, request.pk)


def _move_stage(actor, request: PromotionRequest) -> None:
    version = ModelVersion.objects.select_for_update().get(pk=request.version_id)
    version_stage_set(
        actor=actor, version=version, stage=Stage(request.to_stage), reason=f"promotion request #{request.pk}"
    )
    promotions_supersede(actor=actor, model_id=version.model_id, why=f"request #{request.pk} was approved")


def promotions_supersede(*, actor, model_id: int, why: str) -> int:
    """Expire the pending requests of the model's archived versions: they can no longer complete.

    Called when a stage move archived a version (here, and by deployments when a rollout moves one).
    """
    superseded = PromotionRequest.objects.filter(
        version__model_id=model_id, version__stage=Stage.ARCHIVED, status=Status.PENDING
    ).select_related("version")
    expired = 0
    for stale in superseded:
        reason = f"v{stale.version.version} was archived when {why}"
        if request_move(stale, to=Status.EXPIRED, actor=actor, action="promotion.superseded", reason=reason):
            notifications.request_closed(stale)
            expired += 1
    return expired


def promotion_publish(*, request: PromotionRequest) -> bool:
    """Set the MLflow aliases for an approved request and complete it. Safe to run twice."""
    aliases_publish(model=request.version.model)  # RegistryUnavailable: the task retries
    with transaction.atomic():
        request.refresh_from_db()
        if request.status != Status.PUBLISHING or not request_move(
            request, to=Status.COMPLETED, actor=None, action="promotion.completed", stage=request.to_stage
        ):
            return False
        notifications.request_closed(request)
        # The seam for rollouts: deployments take over completed promotions to Staging and Production
        # (HANDED_OVER) and move the version's stage when the staging tests or the canary say so.
        transaction.on_commit(lambda: promotion_completed.send(sender=PromotionRequest, request=request))
    return True


def promotion_publish_postpone(*, request_id: int, seconds: float) -> None:
    """A publication retries in `seconds`: keep the sweep from enqueueing another copy meanwhile."""
    until = timezone.now() + timedelta(seconds=seconds) + timedelta(minutes=1)
    PromotionRequest.objects.filter(pk=request_id, status=Status.PUBLISHING).update(
        publish_scheduled_until=until
    )


def promotions_publish_schedule(*, now=None, limit: int = 500) -> list[int]:
    """Sweep: enqueue the publication of approved requests that no task is scheduled for (an outage lost
    it, or its retries ran out). Each is claimed with a compare-and-set on its schedule marker first, so
    running the sweep again (or twice at once) enqueues nothing more until the marker passes."""
    now = now or timezone.now()
    free = Q(publish_scheduled_until__isnull=True) | Q(publish_scheduled_until__lt=now)
    due = PromotionRequest.objects.filter(free, status=Status.PUBLISHING)
    scheduled = []
    for request_id in list(due.values_list("pk", flat=True)[:limit]):
        claimed = PromotionRequest.objects.filter(free, pk=request_id, status=Status.PUBLISHING).update(
            publish_scheduled_until=now + PUBLISH_LEASE
        )
        if not claimed:
            continue
        if enqueue(PUBLISH_TASK, request_id):
            scheduled.append(request_id)
        else:  # the broker is down: leave it due for the next sweep
            PromotionRequest.objects.filter(pk=request_id).update(publish_scheduled_until=None)
    return scheduled
