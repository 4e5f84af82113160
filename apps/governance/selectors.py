"""Reads of governance, scoped to the user who asks: the policy in force, evidence and pre-checks, who may
decide on a request and in which role, the inbox, a model's promotion history."""

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, datetime, time

from django.core.exceptions import PermissionDenied
from django.db.models import BooleanField, Case, Exists, OuterRef, Prefetch, Q, QuerySet, Value, When
from django.utils import timezone

from apps.accounts.roles import roles_of
from apps.registry.cards import model_card
from apps.registry.models import ModelVersion, RegisteredModel, Stage, StageTransition
from apps.registry.selectors import models_visible_to, production_version
from hafnium_portal.errors import Conflict, DomainError

from .models import DEFAULT_RULES, Approval, PromotionPolicy, PromotionRequest, RequestComment
from .prechecks import prechecks_registered

Status = PromotionRequest.Status

# --- the policy in force -------------------------------------------------------------------------


def policy_current() -> PromotionPolicy:
    """The newest policy. Migrations write the default one (post_migrate), so there always is one."""
    policy = PromotionPolicy.objects.first()
    if policy is None:  # a database flushed without its post_migrate signal (some test set-ups)
        policy, _ = PromotionPolicy.objects.get_or_create(
            version=1, defaults={"rules": DEFAULT_RULES, "note": "the default governance table"}
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


def evidence_digest(evidence: dict) -> str:
    return hashlib.sha256(json.dumps(evidence, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def prechecks_for(version: ModelVersion, to_stage: str, policy: PromotionPolicy) -> list[dict]:
    """The pre-checks of a promotion. A failed `hard` one blocks approval unless the approver overrides
    it with a written reason; the others inform."""
    card = model_card(version)
    checks = [
        {
            "name": "Model card complete",
            "hard": True,
            "passed": card.complete,
            "detail": "complete" if card.complete else f"missing: {', '.join(card.missing)}",
        },
        {
            "name": "Signature present",
            "hard": True,
            "passed": bool(version.signature),
            "detail": "input and output schema recorded" if version.signature else "no signature",
        },
    ]
    production = production_version(version.model)
    auc = version.metrics.get("roc_auc")
    metrics = {"name": "Metrics vs production", "hard": True}
    if production is None or production.pk == version.pk:
        checks.append({**metrics, "passed": True, "detail": "no version in production"})
    elif auc is None or production.metrics.get("roc_auc") is None:
        checks.append({**metrics, "passed": False, "detail": "ROC AUC missing"})
    else:
        floor = production.metrics["roc_auc"] - policy.metric_margin
        checks.append(
            {
                **metrics,
                "passed": auc >= floor,
                "detail": f"ROC AUC {auc:.4f} vs production v{production.version} "
                f"{production.metrics['roc_auc']:.4f} (margin {policy.metric_margin})",
            }
        )
    checks += [check(version) for check in prechecks_registered(to_stage)]
    return checks


def failed_hard_checks(prechecks: list[dict]) -> list[str]:
    return [check["name"] for check in prechecks if check.get("hard") and check.get("passed") is False]


# --- who may decide on a request, in which role --------------------------------------------------


@dataclass
class DecisionStanding:
    """Where a user stands on a request: whether they may decide, in which roles, and if not, why."""

    may_decide: bool
    roles_held: list[str]  # the required roles the user holds
    roles_open: list[str]  # ... whose decision is still awaited
    creator_unknown: bool
    refusal: Exception | None = None
    facts: dict = field(default_factory=dict)

    def role_for(self, role: str | None) -> str:
        """The role the user decides in (`role` if given), or raise why they may not."""
        if self.refusal is not None:
            raise self.refusal
        if role:
            if role not in self.roles_held:
                raise PermissionDenied(f"You cannot decide as {role} on this request.")
            if role not in self.roles_open:
                raise Conflict(f"The {role} decision on this request has already been given.")
            return role
        if len(self.roles_open) > 1:
            raise DomainError(
                "You hold several of the roles this request needs; choose one of: "
                f"{', '.join(self.roles_open)}."
            )
        return self.roles_open[0]


def _fact(condition: Q):
    """A condition as a true/false column (never NULL: a version without a creator compares as false)."""
    return Case(When(condition, then=Value(True)), default=Value(False), output_field=BooleanField())


def _with_standing(user, requests: QuerySet[PromotionRequest]) -> QuerySet[PromotionRequest]:
    """`requests` annotated with the facts that decide whether `user` may decide on each, and `may_decide`.

    The one statement of the rule, used by the services (under the request's lock), the inbox and the
    decision panel. Separation of duties: never the requester, never the version's creator (the portal
    user, or the MLflow user name of a version synced from MLflow), one person one role. Required roles
    are matched through the request's policy rules (a handful of policy versions), so the inbox stays
    one query however many requests.
    """
    held = [role.value for role in roles_of(user)]
    active = Approval.objects.filter(request=OuterRef("pk"), voided_at__isnull=True)
    username = user.get_username()
    creator = Q(version__created_by=user.pk) | (
        Q(version__mlflow_user=username) & ~Q(version__mlflow_user="")
    )
    facts = {
        "is_pending": _fact(Q(status=Status.PENDING)),
        "is_requester": _fact(Q(requested_by=user.pk)),
        "is_creator": _fact(creator),
        "creator_unknown": _fact(Q(version__created_by__isnull=True, version__mlflow_user="")),
        "has_decided": Exists(active.filter(approver=user.pk)),
    }
    policies = list(PromotionPolicy.objects.values_list("pk", "rules"))
    awaited = Q(pk__in=[])
    for i, role in enumerate(held):
        needs = Q(pk__in=[])
        for policy_id, rules in policies:
            for stage, roles in rules.items():
                if role in roles:
                    needs |= Q(policy_id=policy_id, to_stage=stage)
        facts[f"needs_{i}"] = _fact(needs)
        facts[f"filled_{i}"] = Exists(active.filter(role=role))
        awaited |= Q(**{f"needs_{i}": True, f"filled_{i}": False})
    may_decide = (
        Q(is_pending=True, is_requester=False, is_creator=False, has_decided=False) & awaited
        if held
        else Q(pk__in=[])
    )
    return requests.annotate(**facts).annotate(may_decide=_fact(may_decide))


def _refusal(row: PromotionRequest, roles_held: list[str]) -> Exception:
    """Why the user may not decide on `row`, from the facts `_with_standing` annotated it with."""
    if not row.is_pending:
        return Conflict(
            f"Request #{row.pk} is {row.get_status_display().lower()}; it can no longer be decided."
        )
    if row.is_requester:
        return PermissionDenied("You made this request, so you cannot approve or reject it.")
    if row.is_creator:
        return PermissionDenied("You created this version, so you cannot approve or reject its promotion.")
    if row.has_decided:
        return Conflict("You have already decided on this request; one person fills at most one role.")
    if not roles_held:
        return PermissionDenied(
            f"This request needs a decision from {' and '.join(row.required_roles)}; "
            "you hold none of these roles."
        )
    return Conflict(f"The {' and '.join(roles_held)} decision on this request has already been given.")


def decision_standing(user, request: PromotionRequest) -> DecisionStanding:
    """Where `user` stands on `request` now (read fresh: call it under the request's lock to act on it)."""
    row = _with_standing(user, PromotionRequest.objects.filter(pk=request.pk)).get()
    held = [role.value for role in roles_of(user)]
    roles_held = [held[i] for i in range(len(held)) if getattr(row, f"needs_{i}")]
    roles_open = [
        held[i] for i in range(len(held)) if getattr(row, f"needs_{i}") and not getattr(row, f"filled_{i}")
    ]
    return DecisionStanding(
        may_decide=bool(row.may_decide),
        roles_held=roles_held,
        roles_open=roles_open if row.may_decide else [],
        creator_unknown=bool(row.creator_unknown),
        refusal=None if row.may_decide else _refusal(row, roles_held),
    )


def requests_visible_to(user) -> QuerySet[PromotionRequest]:
    return PromotionRequest.objects.filter(version__model__in=models_visible_to(user)).select_related(
        "version", "version__model", "version__created_by", "requested_by", "policy"
    )


def inbox_for(user) -> QuerySet[PromotionRequest]:
    """Pending requests waiting for a decision the user may give (`decision_standing`), oldest first.

    A request stays in the inbox while one of the user's roles it needs is still unfilled.
    """
    if not roles_of(user):
        return PromotionRequest.objects.none()
    return (
        _with_standing(user, requests_visible_to(user))
        .filter(may_decide=True, status=Status.PENDING)
        .order_by("created_at", "id")
    )


def my_requests(user, *, status: str = "") -> QuerySet[PromotionRequest]:
    mine = requests_visible_to(user).filter(requested_by=user)
    return mine.filter(status=status) if status else mine


def with_active_approvals(requests: QuerySet[PromotionRequest]) -> QuerySet[PromotionRequest]:
    """Each request's standing approvals as `active_approvals`, one query for a page of requests."""
    active = Approval.objects.filter(voided_at__isnull=True).select_related("approver")
    return requests.prefetch_related(Prefetch("approvals", queryset=active, to_attr="active_approvals"))


def with_missing_roles(promotions) -> list[PromotionRequest]:
    """The requests (read `with_active_approvals`), each with `missing_roles`: the required roles whose
    decision is still awaited."""
    rows = list(promotions)
    for promotion in rows:
        filled = {approval.role for approval in promotion.active_approvals}
        promotion.missing_roles = [role for role in promotion.required_roles if role not in filled]
    return rows


def with_decisions(requests: QuerySet[PromotionRequest]) -> QuerySet[PromotionRequest]:
    """Approvals and comments read with a list, two queries whatever its length."""
    return requests.prefetch_related(
        Prefetch("approvals", queryset=Approval.objects.select_related("approver")),
        Prefetch("comments", queryset=RequestComment.objects.select_related("author")),
    )


def requests_filtered(
    user, *, inbox: bool = False, mine: bool = False, status=None, model=None, to_stage=None
) -> QuerySet[PromotionRequest]:
    """The API's list: the user's inbox or every request they see, narrowed by the given filters."""
    requests = inbox_for(user) if inbox else requests_visible_to(user)
    if mine:
        requests = requests.filter(requested_by=user)
    if status:
        requests = requests.filter(status=status)
    if model:
        requests = requests.filter(version__model__name=model)
    if to_stage:
        requests = requests.filter(to_stage=to_stage)
    return requests


def open_request_of(user, version: ModelVersion) -> PromotionRequest | None:
    return requests_visible_to(user).filter(version=version, status__in=PromotionRequest.OPEN).first()


def requests_of_model(user, model: RegisteredModel) -> QuerySet[PromotionRequest]:
    """A model's requests with every approval (voided ones too), newest first."""
    approvals = Prefetch("approvals", queryset=Approval.objects.select_related("approver"))
    return requests_visible_to(user).filter(version__model=model).prefetch_related(approvals)


def requests_of_version(user, version: ModelVersion) -> QuerySet[PromotionRequest]:
    return requests_visible_to(user).filter(version=version).order_by("-created_at", "-id")


def approvals_of(request: PromotionRequest) -> list[Approval]:
    return list(request.approvals.select_related("approver"))


def comments_of(request: PromotionRequest) -> QuerySet:
    return request.comments.select_related("author")


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
