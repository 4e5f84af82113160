"""Governance actions: policy, promotion requests, approvals, rejections, withdrawals, expiry, publication.

Each action runs in one transaction, checks its rules (separation of duties among them), writes its
audit event in the same transaction and schedules notifications after the commit.
"""

import hashlib
import hmac
import json
from datetime import timedelta

import requests
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from apps.accounts.roles import Role, roles_of
from apps.audit.services import audit_record
from apps.registry.cards import model_card
from apps.registry.models import LADDER, ModelVersion, Stage, next_stage
from apps.registry.selectors import production_version
from apps.registry.services import aliases_publish, version_stage_set
from hafnium_portal.enqueue import enqueue_on_commit
from hafnium_portal.errors import Conflict, DomainError

from . import notifications
from .models import DEFAULT_RULES, Approval, Notification, PromotionPolicy, PromotionRequest, RequestComment
from .permissions import REQUEST_REFUSED, can_request_promotion
from .signals import promotion_completed

Status = PromotionRequest.Status

# --- policy --------------------------------------------------------------------------------------


def policy_current() -> PromotionPolicy:
    policy = PromotionPolicy.objects.first()
    if policy is None:
        policy, _ = PromotionPolicy.objects.get_or_create(
            version=1, defaults={"rules": DEFAULT_RULES, "note": "the default governance table"}
        )
    return policy


def policy_validate(*, rules: dict, request_ttl_days: int, metric_margin: float) -> None:
    """A policy names each reviewed stage once, with distinct known roles, and sane limits."""
    known_roles = {role.value for role in Role}
    reviewed = {stage.value for stage in LADDER[1:]}
    if not isinstance(rules, dict) or set(rules) != reviewed:
        raise DomainError(f"the policy must name the approvers of each of: {', '.join(sorted(reviewed))}")
    for stage, roles in rules.items():
        if (
            not isinstance(roles, list)
            or not roles
            or set(roles) - known_roles
            or len(set(roles)) != len(roles)
        ):
            raise DomainError(f"the approvers for {stage} must be distinct known roles, not {roles!r}")
    if request_ttl_days < 1 or not 0 <= metric_margin < 1:
        raise DomainError("request_ttl_days must be at least 1 and metric_margin between 0 and 1")


@transaction.atomic
def policy_publish(
    *, actor, rules: dict, request_ttl_days: int, metric_margin: float, note: str = ""
) -> PromotionPolicy:
    """A new version of the policy (admins only). Earlier versions stay, as decisions refer to them."""
    if not actor.is_superuser:
        raise PermissionDenied("Only an administrator may change the promotion policy.")
    policy_validate(rules=rules, request_ttl_days=request_ttl_days, metric_margin=metric_margin)
    previous = policy_current()
    policy = PromotionPolicy.objects.create(
        version=previous.version + 1,
        rules=rules,
        request_ttl_days=request_ttl_days,
        metric_margin=metric_margin,
        note=note,
        created_by=actor,
    )
    audit_record(
        actor=actor,
        action="governance.policy_published",
        obj=policy,
        before={"version": previous.version, "rules": previous.rules},
        after={
            "version": policy.version,
            "rules": rules,
            "ttl_days": request_ttl_days,
            "margin": metric_margin,
        },
    )
    return policy


# --- evidence and pre-checks ---------------------------------------------------------------------


def evidence_of(version: ModelVersion) -> dict:
    """What an approval is given on: if any of it changes, pending approvals become void."""
    return {
        "model": version.model.name,
        "version": version.version,
        "artifact_sha256": version.artifact_sha256,
        "run_id": version.run_id,
        "dataset_sha256": version.dataset.sha256 if version.dataset_id else "",
        "model_card_sha256": model_card(version).sha256,
        "metrics": version.metrics,
    }


def _digest(evidence: dict) -> str:
    return hashlib.sha256(json.dumps(evidence, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def prechecks_for(version: ModelVersion, to_stage: str, policy: PromotionPolicy) -> list[dict]:
    card = model_card(version)
    checks = [
        {
            "name": "Model card complete",
            "passed": card.complete,
            "detail": "complete" if card.complete else f"missing: {', '.join(card.missing)}",
        },
        {
            "name": "Signature present",
            "passed": bool(version.signature),
            "detail": "input and output schema recorded" if version.signature else "no signature",
        },
    ]
    production = production_version(version.model)
    auc = version.metrics.get("roc_auc")
    if production is None or production.pk == version.pk:
        checks.append({"name": "Metrics vs production", "passed": True, "detail": "no version in production"})
    elif auc is None or production.metrics.get("roc_auc") is None:
        checks.append({"name": "Metrics vs production", "passed": False, "detail": "ROC AUC missing"})
    else:
        floor = production.metrics["roc_auc"] - policy.metric_margin
        checks.append(
            {
                "name": "Metrics vs production",
                "passed": auc >= floor,
                "detail": f"ROC AUC {auc:.4f} vs production v{production.version} "
                f"{production.metrics['roc_auc']:.4f} (margin {policy.metric_margin})",
            }
        )
    if to_stage == Stage.PRODUCTION:
        # Rollouts (staging tests) are not built yet: the check says so instead of passing silently.
        checks.append({"name": "Staging tests", "passed": None, "detail": "no staging test results recorded"})
    return checks


# --- requests ------------------------------------------------------------------------------------


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
                evidence_sha256=_digest(evidence),
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


def evidence_refresh(*, request: PromotionRequest) -> bool:
    """Re-pin the evidence of a pending request; if it changed, void its approvals. Returns whether it did."""
    with transaction.atomic():
        locked = PromotionRequest.objects.select_for_update().select_related("version").get(pk=request.pk)
        if locked.status != Status.PENDING:
            return False
        current = evidence_of(locked.version)
        if _digest(current) == locked.evidence_sha256:
            return False
        changed = sorted(key for key in current if current[key] != locked.evidence.get(key))
        reason = f"the evidence changed ({', '.join(changed)}) after the approval was given"
        voided = list(locked.approvals.filter(voided_at__isnull=True))
        locked.approvals.filter(pk__in=[a.pk for a in voided]).update(
            voided_at=timezone.now(), void_reason=reason
        )
        before = {"evidence": locked.evidence, "voided_approvals": [a.pk for a in voided]}
        locked.evidence, locked.evidence_sha256 = current, _digest(current)
        locked.prechecks = prechecks_for(locked.version, locked.to_stage, locked.policy)
        locked.save(update_fields=["evidence", "evidence_sha256", "prechecks"])
        audit_record(
            actor=None,
            action="promotion.evidence_changed",
            obj=locked,
            before=before,
            after={"evidence": current},
        )
        notifications.approvals_voided(locked, voided, reason)
    request.refresh_from_db()
    return True


def _locked(request: PromotionRequest) -> PromotionRequest:
    """The request re-read under a row lock: deciders on one request queue up here."""
    return PromotionRequest.objects.select_for_update().select_related("version", "policy").get(pk=request.pk)


def _decision_role(actor, request: PromotionRequest, role: str | None) -> str:
    """The role in which `actor` may decide on `request` now, or the reason they may not."""
    if request.status != Status.PENDING:
        raise Conflict(
            f"Request #{request.pk} is {request.get_status_display().lower()}; it can no longer be decided."
        )
    if actor.pk == request.requested_by_id:
        raise PermissionDenied("You made this request, so you cannot approve or reject it.")
    if actor.pk == request.version.created_by_id:
        raise PermissionDenied("You created this version, so you cannot approve or reject its promotion.")
    active = request.approvals.filter(voided_at__isnull=True)
    if active.filter(approver=actor).exists():
        raise Conflict("You have already decided on this request; one person fills at most one role.")
    held = {r.value for r in roles_of(actor)}
    mine = [r for r in request.required_roles if r in held]
    if not mine:
        raise PermissionDenied(
            f"This request needs a decision from {' and '.join(request.required_roles)}; "
            "you hold none of these roles."
        )
    filled = set(active.values_list("role", flat=True))
    open_roles = [r for r in mine if r not in filled]
    if role:
        if role not in mine:
            raise PermissionDenied(f"You cannot decide as {role} on this request.")
        if role not in open_roles:
            raise Conflict(f"The {role} decision on this request has already been given.")
        return role
    if not open_roles:
        raise Conflict(f"The {' and '.join(mine)} decision on this request has already been given.")
    if len(open_roles) > 1:
        raise DomainError(
            f"You hold several of the roles this request needs; choose one of: {', '.join(open_roles)}."
        )
    return open_roles[0]


def promotion_approve(
    *, actor, request: PromotionRequest, comment: str = "", role: str | None = None
) -> Approval:
    """Approve in one role; the approval that fills the last role moves the stage (then MLflow follows)."""
    if evidence_refresh(request=request):
        raise Conflict(
            "The evidence changed since this request was made: earlier approvals are void. Review it again."
        )
    with transaction.atomic():
        locked = _locked(request)
        role = _decision_role(actor, locked, role)
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
                )
        except IntegrityError as exc:
            raise Conflict(
                f"The {role} decision on this request has just been given by someone else."
            ) from exc
        audit_record(
            actor=actor,
            action="promotion.approved_in_role",
            obj=locked,
            after={"role": role, "comment": approval.comment},
        )
        notifications.decision_made(locked, approval)
        filled = set(locked.approvals.filter(voided_at__isnull=True).values_list("role", flat=True))
        if filled >= set(locked.required_roles):
            _approve_request(actor, locked)
    request.refresh_from_db()
    return approval


def _move(request: PromotionRequest, *, to: str, actor, action: str, **detail) -> bool:
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


def _approve_request(actor, request: PromotionRequest) -> None:
    """All roles approved: move the stage now; the MLflow alias is published after the commit."""
    moved = _move(
        request,
        to=Status.PUBLISHING,
        actor=actor,
        action="promotion.approved",
        stage=request.to_stage,
        policy=request.policy.version,
    )
    if not moved:
        raise Conflict(f"Request #{request.pk} was decided meanwhile.")
    version = ModelVersion.objects.select_for_update().get(pk=request.version_id)
    version_stage_set(
        actor=actor, version=version, stage=Stage(request.to_stage), reason=f"promotion request #{request.pk}"
    )
    # Pending requests of the version this one replaced can no longer complete: close them now.
    superseded = PromotionRequest.objects.filter(
        version__model_id=version.model_id, version__stage=Stage.ARCHIVED, status=Status.PENDING
    )
    for stale in superseded:
        reason = f"v{stale.version.version} was archived when request #{request.pk} was approved"
        if _move(stale, to=Status.EXPIRED, actor=actor, action="promotion.superseded", reason=reason):
            notifications.request_closed(stale)
    enqueue_on_commit("apps.governance.tasks.publish_promotion", request.pk)


def promotion_publish(*, request: PromotionRequest) -> bool:
    """Set the MLflow aliases for an approved request and complete it. Safe to run twice."""
    aliases_publish(model=request.version.model)  # RegistryUnavailable: the task retries
    with transaction.atomic():
        request.refresh_from_db()
        if request.status != Status.PUBLISHING or not _move(
            request, to=Status.COMPLETED, actor=None, action="promotion.completed", stage=request.to_stage
        ):
            return False
        notifications.request_closed(request)
        # The seam for rollouts: deployments listen for completed promotions to Staging and Production.
        transaction.on_commit(lambda: promotion_completed.send(sender=PromotionRequest, request=request))
    return True


def promotion_reject(*, actor, request: PromotionRequest, comment: str, role: str | None = None) -> Approval:
    comment = (comment or "").strip()
    if not comment:
        raise DomainError("A rejection needs a comment saying why.")
    with transaction.atomic():
        locked = _locked(request)
        role = _decision_role(actor, locked, role)
        if not _move(
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
        )
        notifications.decision_made(locked, approval)
    request.refresh_from_db()
    return approval


def promotion_withdraw(*, actor, request: PromotionRequest) -> PromotionRequest:
    if actor.pk != request.requested_by_id:
        raise PermissionDenied("Only the requester may withdraw a request.")
    with transaction.atomic():
        request.refresh_from_db()
        if request.status != Status.PENDING or not _move(
            request, to=Status.WITHDRAWN, actor=actor, action="promotion.withdrawn"
        ):
            raise Conflict(
                f"Request #{request.pk} is {request.get_status_display().lower()}; it cannot be withdrawn."
            )
        notifications.request_closed(request)
    return request


def promotion_comment(*, actor, request: PromotionRequest, body: str) -> RequestComment:
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
            if _move(request, to=Status.EXPIRED, actor=None, action="promotion.expired"):
                notifications.request_closed(request)
                expired += 1
    return expired


def evidence_refresh_for_model(*, model) -> int:
    """After a change to a model (its card): re-pin the evidence of its pending requests."""
    pending = PromotionRequest.objects.filter(version__model=model, status=Status.PENDING)
    return sum(evidence_refresh(request=request) for request in pending)


# --- the notification outbox ---------------------------------------------------------------------

NOTIFICATION_ATTEMPTS = 20


def webhook_signature(body: bytes) -> str:
    return "sha256=" + hmac.new(settings.GOVERNANCE_WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()


def notification_deliver(*, notification: Notification) -> bool:
    """Send it (mail, or the webhook POST signed with HMAC-SHA256 of the body) and mark it sent.

    At least once: a crash between sending and marking sends it again on the next attempt.
    """
    Notification.objects.filter(pk=notification.pk).update(attempts=F("attempts") + 1)
    try:
        if notification.channel == Notification.Channel.EMAIL:
            send_mail(notification.subject, notification.body, None, notification.recipients)
        else:
            body = json.dumps(notification.payload, sort_keys=True).encode()
            response = requests.post(
                settings.GOVERNANCE_WEBHOOK_URL,
                data=body,
                headers={"Content-Type": "application/json", "X-Hafnium-Signature": webhook_signature(body)},
                timeout=10,
            )
            response.raise_for_status()
    except Exception as exc:
        Notification.objects.filter(pk=notification.pk).update(
            last_error=f"{type(exc).__name__}: {exc}"[:2000]
        )
        raise
    return bool(
        Notification.objects.filter(pk=notification.pk, sent_at__isnull=True).update(sent_at=timezone.now())
    )


def notifications_pending(*, older_than: timedelta = timedelta(minutes=1)) -> list[int]:
    """Unsent notifications past their first chance, that have not used up their attempts."""
    pending = Notification.objects.filter(
        sent_at__isnull=True, created_at__lt=timezone.now() - older_than, attempts__lt=NOTIFICATION_ATTEMPTS
    )
    return list(pending.values_list("pk", flat=True)[:500])
