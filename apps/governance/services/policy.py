"""The promotion policy: versioned data, published by an administrator."""

from django.core.exceptions import PermissionDenied
from django.db import transaction

from apps.accounts.roles import Role
from apps.audit.services import audit_record
from apps.registry.models import LADDER
from hafnium_portal.errors import DomainError

from ..models import PromotionPolicy
from ..selectors import policy_current


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
