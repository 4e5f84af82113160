"""Reads of governance, scoped to the user who asks."""

from datetime import date, datetime, time

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from apps.accounts.roles import roles_of
from apps.registry.models import RegisteredModel, Stage, StageTransition
from apps.registry.selectors import models_visible_to

from .models import Approval, PromotionPolicy, PromotionRequest


def requests_visible_to(user) -> QuerySet[PromotionRequest]:
    return PromotionRequest.objects.filter(version__model__in=models_visible_to(user)).select_related(
        "version", "version__model", "version__created_by", "requested_by", "policy"
    )


def inbox_for(user) -> QuerySet[PromotionRequest]:
    """Pending requests waiting for a decision in one of the user's roles, oldest first.

    Required roles are copied into each request from its policy; requests are matched through their
    policy's rules (a handful of policy versions), so the inbox is one query however many requests.
    A request stays in the inbox while one of the user's roles it needs is still unfilled.
    """
    held = sorted(role.value for role in roles_of(user))
    if not held:
        return PromotionRequest.objects.none()
    active = Approval.objects.filter(request=OuterRef("pk"), voided_at__isnull=True)
    filled = {f"filled_{i}": Exists(active.filter(role=role)) for i, role in enumerate(held)}
    wanted = Q(pk__in=[])
    for policy in PromotionPolicy.objects.all():
        for stage, roles in policy.rules.items():
            needed = [i for i, role in enumerate(held) if role in roles]
            if needed:
                wanted |= Q(policy=policy, to_stage=stage) & ~Q(**{f"filled_{i}": True for i in needed})
    return (
        requests_visible_to(user)
        .annotate(**filled)
        .filter(wanted, status=PromotionRequest.Status.PENDING)
        .exclude(requested_by=user)
        .exclude(version__created_by=user)
        .exclude(Exists(active.filter(approver=user)))
        .order_by("created_at", "id")
    )


def my_requests(user) -> QuerySet[PromotionRequest]:
    return requests_visible_to(user).filter(requested_by=user)


def production_on(model: RegisteredModel, day: date) -> dict | None:
    """Which version of `model` was in Production at the end of `day`, since when, and who approved it."""
    end = timezone.make_aware(datetime.combine(day, time.max))
    entered = (
        StageTransition.objects.filter(version__model=model, to_stage=Stage.PRODUCTION, at__lte=end)
        .select_related("version", "actor")
        .order_by("-at", "-id")
        .first()
    )
    if entered is None:
        return None
    left = StageTransition.objects.filter(
        version=entered.version, from_stage=Stage.PRODUCTION, at__gt=entered.at, at__lte=end
    ).exists()
    if left:
        return None
    request = (
        PromotionRequest.objects.filter(
            version=entered.version, to_stage=Stage.PRODUCTION, decided_at__lte=end
        )
        .exclude(status__in=[PromotionRequest.Status.REJECTED, PromotionRequest.Status.WITHDRAWN,
                             PromotionRequest.Status.EXPIRED])
        .order_by("-decided_at")
        .first()
    )  # fmt: skip
    approvals = (
        list(request.approvals.filter(voided_at__isnull=True).select_related("approver")) if request else []
    )
    return {"version": entered.version, "since": entered.at, "moved_by": entered.actor, "request": request,
            "approvals": approvals}  # fmt: skip
