"""Evidence of pending requests: re-pinned when a version's card or records change, voiding approvals."""

from django.db import transaction
from django.utils import timezone

from apps.audit.services import audit_record

from .. import notifications
from ..models import PromotionRequest
from ..selectors import evidence_digest, evidence_of, prechecks_for

Status = PromotionRequest.Status


def evidence_refresh(*, request: PromotionRequest) -> bool:
    """Re-pin the evidence of a pending request; if it changed, void its approvals. Returns whether it did."""
    with transaction.atomic():
        locked = PromotionRequest.objects.select_for_update().select_related("version").get(pk=request.pk)
        if locked.status != Status.PENDING:
            return False
        current = evidence_of(locked.version)
        if evidence_digest(current) == locked.evidence_sha256:
            return False
        changed = sorted(key for key in current if current[key] != locked.evidence.get(key))
        reason = f"the evidence changed ({', '.join(changed)}) after the approval was given"
        voided = list(locked.approvals.filter(voided_at__isnull=True))
        locked.approvals.filter(pk__in=[a.pk for a in voided]).update(
            voided_at=timezone.now(), void_reason=reason
        )
        before = {"evidence": locked.evidence, "voided_approvals": [a.pk for a in voided]}
        locked.evidence, locked.evidence_sha256 = current, evidence_digest(current)
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


def evidence_refresh_for_model(*, model) -> int:
    """After a change to a model (its card): re-pin the evidence of its pending requests."""
    pending = PromotionRequest.objects.filter(version__model=model, status=Status.PENDING)
    return sum(evidence_refresh(request=request) for request in pending)
