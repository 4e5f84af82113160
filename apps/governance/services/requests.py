"""Promotion requests: asking, withdrawing, discussing, expiring; and the one way a request changes status."""

from datetime import timedelta

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.registry.models import ModelVersion, Stage, next_stage
from hafnium_portal.errors import Conflict, DomainError

from .. import notifications
from ..models import PromotionRequest, RequestComment
from ..permissions import COMMENT_REFUSED, REQUEST_REFUSED, can_comment, can_request_promotion
from ..selectors import evidence_digest, evidence_of, policy_current, prechecks_for

Status = PromotionRequest.Status


def request_move(request: PromotionRequest, *, to: str, actor, action: str, **detail) -> bool:
    """Compare-and-set the request's status from what it was read as to `to`, with its audit event.

    False (and nothing written) when someone else moved it first. The allowed moves are
    PromotionRequest.TRANSITIONS; anything else is a bug, not a user error.
    """
    current = Status(request.status)
    if to not in PromotionRequest.TRANSITIONS.get(current, ()):
        raise ValueError(f"a promotion request cannot go from {current} to {to}")
    decided = {"decided_at": timezone.now()} if current == Status.PENDING else {}
    if not PromotionRequest.objects.filter(pk=request.pk, status=current).update(status=to, **decided):
        return False
    request.refresh_from_db()
    audit_record(
        actor=actor, action=action, obj=request, before={"status": current}, after={"status": to, **detail}
    )
    return True


def promotion_request_create(
    *, actor, version: ModelVersion, to_stage: str, justification: str
) -> PromotionRequest:
    """A member of the model's team asks to move a version one stage up, with a justification."""
    if not can_request_promotion(actor, version.model):
        raise PermissionDenied(REQUEST_REFUSED)
    if to_stage not in Stage.values:
        raise DomainError(f"unknown stage {to_stage!r}")
    following = next_stage(version.stage)
    if following is None:
        raise DomainError(f"{version} is in {version.get_stage_display()} and cannot be promoted further")
    if to_stage != following:
        raise DomainError(
            f"{version} is in {version.get_stage_display()}: it can be promoted to {following.label} only "
            "(one stage at a time)"
        )
    justification = (justification or "").strip()
    if not justification:
        raise DomainError("A justification is required.")
    policy = policy_current()
    evidence = evidence_of(version)
    try:
        with transaction.atomic():
            existing = PromotionRequest.objects.filter(
                version=version, to_stage=to_stage, status__in=PromotionRequest.OPEN
            ).first()
            if existing:
                raise Conflict(
                    f"Request #{existing.pk} already asks to promote {version} to {following.label}."
                )
            request = PromotionRequest.objects.create(
                version=version,
                from_stage=version.stage,
                to_stage=to_stage,
                requested_by=actor,
                justification=justification,
                policy=policy,
                required_roles=policy.rules[to_stage],
                evidence=evidence,
                evidence_sha256=evidence_digest(evidence),
                prechecks=prechecks_for(version, to_stage, policy),
                expires_at=timezone.now() + timedelta(days=policy.request_ttl_days),
            )
            audit_record(
                actor=actor,
                action="promotion.requested",
                obj=request,
                after={"to_stage": to_stage, "policy": policy.version, "evidence": evidence},
            )
            notifications.request_created(request)
    except IntegrityError as exc:  # a second request raced this one past the check above
        raise Conflict(f"An open request already asks to promote {version} to {following.label}.") from exc
    return request


def promotion_withdraw(*, actor, request: PromotionRequest) -> PromotionRequest:
    if actor.pk != request.requested_by_id:
        raise PermissionDenied("Only the requester may withdraw a request.")
    with transaction.atomic():
        request.refresh_from_db()
        if request.status != Status.PENDING or not request_move(
            request, to=Status.WITHDRAWN, actor=actor, action="promotion.withdrawn"
        ):
            raise Conflict(
                f"Request #{request.pk} is {request.get_status_display().lower()}; it cannot be withdrawn."
            )
        notifications.request_closed(request)
    return request


def promotion_comment(*, actor, request: PromotionRequest, body: str) -> RequestComment:
    """A comment on the request's discussion, by its team or the approver roles of its stage."""
    if not can_comment(actor, request):
        raise PermissionDenied(COMMENT_REFUSED)
    body = (body or "").strip()
    if not body:
        raise DomainError("A comment cannot be empty.")
    with transaction.atomic():
        comment = RequestComment.objects.create(request=request, author=actor, body=body)
        audit_record(actor=actor, action="promotion.commented", obj=request, after={"comment": body})
    return comment


def promotions_expire(*, now=None) -> int:
    """Expire pending requests past their time (beat, every few minutes)."""
    now = now or timezone.now()
    expired = 0
    for request in PromotionRequest.objects.filter(status=Status.PENDING, expires_at__lt=now):
        with transaction.atomic():
            if request_move(request, to=Status.EXPIRED, actor=None, action="promotion.expired"):
                notifications.request_closed(request)
                expired += 1
    return expired
