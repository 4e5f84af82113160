"""Pages of governance: request a promotion, the approvals inbox, my requests, a request and its decision,
a model's stage history with "which version was in production on date D".

Views parse input, fetch through permissions, call one service and render; a refused action shows the
service's reason with its status (400, 403, 409) and writes nothing.
"""

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from apps.registry import permissions as registry_permissions
from apps.registry import selectors as registry_selectors
from apps.registry.cards import METRIC_ORDER
from apps.registry.models import next_stage
from apps.registry.selectors import production_version
from hafnium_portal.errors import Conflict, DomainError

from . import permissions, selectors, services
from .forms import (
    CommentForm,
    DecisionForm,
    MyRequestsFilterForm,
    ProductionOnForm,
    PromotionRequestForm,
)
from .models import PromotionRequest
from .permissions import request_for_user

PAGE_SIZE = 25
REFUSED = (DomainError, PermissionDenied)


def _status_of(refusal: Exception) -> int:
    return 403 if isinstance(refusal, PermissionDenied) else refusal.status_code


def _message_of(refusal: Exception) -> str:
    return str(refusal) or "You may not do this."


# --- request a promotion -------------------------------------------------------------------------


def _version_from_query(request):
    try:
        pk = int(request.GET.get("version", ""))
    except ValueError:
        raise Http404("No version given.") from None
    return permissions.version_for_promotion(request.user, pk)


@login_required
@require_http_methods(["GET", "POST"])
def request_create(request):
    version = _version_from_query(request)
    target = next_stage(version.stage)
    status, error = 200, ""
    if request.method == "POST":
        form = PromotionRequestForm(request.POST)
        form.is_valid()  # every field is optional text: the service judges the values
        try:
            promotion = services.promotion_request_create(
                actor=request.user,
                version=version,
                to_stage=form.cleaned_data.get("to_stage", ""),
                justification=form.cleaned_data.get("justification", ""),
            )
        except REFUSED as refusal:
            status, error = _status_of(refusal), _message_of(refusal)
        else:
            messages.success(
                request,
                f"Request #{promotion.pk} to promote {version} to {promotion.get_to_stage_display()} "
                "was sent to its approvers.",
            )
            return redirect("governance:request-detail", pk=promotion.pk)
    else:
        form = PromotionRequestForm(initial={"to_stage": target.value if target else ""})
        if target is None:
            status = 400
            error = f"{version} is in {version.get_stage_display()} and cannot be promoted further."
    policy = selectors.policy_current()
    context = {
        "version": version,
        "model": version.model,
        "target": target,
        "form": form,
        "error": error,
        "policy": policy,
        "required_roles": policy.rules.get(target.value, []) if target else [],
        "prechecks": selectors.prechecks_for(version, target, policy) if target else [],
        "open_request": selectors.open_request_of(request.user, version),
    }
    return render(request, "governance/request_form.html", context, status=status)


# --- lists ---------------------------------------------------------------------------------------


@login_required
def inbox(request):
    promotions = selectors.with_active_approvals(selectors.inbox_for(request.user))
    page = Paginator(promotions, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = selectors.with_missing_roles(page.object_list)
    return render(request, "governance/inbox.html", {"page": page, "rows": rows, "query": ""})


@login_required
def my_requests(request):
    form = MyRequestsFilterForm(request.GET)
    status = form.status_filter()
    promotions = selectors.with_active_approvals(selectors.my_requests(request.user, status=status))
    page = Paginator(promotions, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "form": form,
        "page": page,
        "rows": selectors.with_missing_roles(page.object_list),
        "query": urlencode({"status": status}) if status else "",
        "filtered": bool(status),
    }
    return render(request, "governance/my_requests.html", context, status=400 if form.errors else 200)


# --- a request and its decision ------------------------------------------------------------------


def _decision_context(user, promotion: PromotionRequest) -> dict:
    """What the decision panel shows: progress per required role, voided approvals, and the viewer's
    possible actions, from the same rule the services decide by (`selectors.decision_standing`)."""
    approvals = selectors.approvals_of(promotion)
    active = {approval.role: approval for approval in approvals if approval.voided_at is None}
    standing = selectors.decision_standing(user, promotion)
    pending = promotion.status == PromotionRequest.Status.PENDING
    viewer_decision = next((a for a in approvals if a.voided_at is None and a.approver_id == user.pk), None)
    failed_checks = selectors.failed_hard_checks(promotion.prechecks)
    return {
        "promotion": promotion,
        "role_rows": [{"role": role, "approval": active.get(role)} for role in promotion.required_roles],
        "voided": [approval for approval in approvals if approval.voided_at is not None],
        "viewer_decision": viewer_decision,
        "can_decide": standing.may_decide,
        "decided_roles": standing.roles_held
        if pending and viewer_decision is None and isinstance(standing.refusal, Conflict)
        else [],
        "role_choices": standing.roles_open if len(standing.roles_open) > 1 else [],
        "can_withdraw": pending and promotion.requested_by_id == user.pk,
        "failed_checks": failed_checks,
        "creator_unknown": standing.creator_unknown,
    }


def _compared_metrics(evidence_metrics: dict, production) -> list[dict]:
    theirs = production.metrics if production is not None else {}
    names = [m for m in METRIC_ORDER if m in evidence_metrics or m in theirs]
    names += sorted((set(evidence_metrics) | set(theirs)) - set(names))
    rows = []
    for name in names:
        ours, prod = evidence_metrics.get(name), theirs.get(name)
        difference = ours - prod if ours is not None and prod is not None else None
        rows.append({"name": name, "value": ours, "production": prod, "difference": difference})
    return rows


def _detail_context(user, promotion: PromotionRequest) -> dict:
    production = production_version(promotion.version.model)
    return {
        **_decision_context(user, promotion),
        "production": production,
        "metrics": _compared_metrics(promotion.evidence.get("metrics") or {}, production),
        "comments": selectors.comments_of(promotion),
        "comment_form": CommentForm(),
        "can_comment": permissions.can_comment(user, promotion),
    }


@login_required
def request_detail(request, pk: int):
    promotion = request_for_user(request.user, pk)
    return render(request, "governance/request_detail.html", _detail_context(request.user, promotion))


def _decided(request, promotion: PromotionRequest, action):
    """Run a decision action (it returns the message saying what happened). On success: the decision
    panel (htmx) or a redirect back with the message. On refusal: the reason with its status, on the
    panel (htmx) or on the whole page; the service has written nothing."""
    try:
        done = action()
    except REFUSED as refusal:
        promotion.refresh_from_db()
        status, extra = _status_of(refusal), {"decision_error": _message_of(refusal)}
        if request.htmx:
            context = {**_decision_context(request.user, promotion), **extra}
            return render(request, "governance/partials/_decision.html", context, status=status)
        context = {**_detail_context(request.user, promotion), **extra}
        return render(request, "governance/request_detail.html", context, status=status)
    if request.htmx:
        context = {**_decision_context(request.user, promotion), "decision_message": done}
        return render(request, "governance/partials/_decision.html", context)
    messages.success(request, done)
    return redirect("governance:request-detail", pk=promotion.pk)


def _decision_input(request, *, approving: bool = False) -> dict:
    form = DecisionForm(request.POST)
    form.is_valid()  # optional text fields: the service judges the values
    decision = {
        "comment": form.cleaned_data.get("comment", ""),
        "role": form.cleaned_data.get("role") or None,
        # The evidence the page showed; a form without it cannot match (the service answers 409).
        "evidence_sha256": form.cleaned_data.get("evidence_sha256", ""),
    }
    if approving:
        decision["override_reason"] = form.cleaned_data.get("override_reason", "")
    return decision


@login_required
@require_POST
def request_approve(request, pk: int):
    promotion = request_for_user(request.user, pk)

    def approve() -> str:
        approval = services.promotion_approve(
            actor=request.user, request=promotion, **_decision_input(request, approving=True)
        )
        done = f"You approved request #{promotion.pk} as {approval.role}."
        if promotion.status != PromotionRequest.Status.PENDING:
            done += f" It is now {promotion.get_status_display().lower()}."
        return done

    return _decided(request, promotion, approve)


@login_required
@require_POST
def request_reject(request, pk: int):
    promotion = request_for_user(request.user, pk)

    def reject() -> str:
        rejection = services.promotion_reject(
            actor=request.user, request=promotion, **_decision_input(request)
        )
        return f"You rejected request #{promotion.pk} as {rejection.role}."

    return _decided(request, promotion, reject)


@login_required
@require_POST
def request_withdraw(request, pk: int):
    promotion = request_for_user(request.user, pk)

    def withdraw() -> str:
        services.promotion_withdraw(actor=request.user, request=promotion)
        return f"You withdrew request #{promotion.pk}."

    return _decided(request, promotion, withdraw)


@login_required
@require_POST
def request_comment(request, pk: int):
    promotion = request_for_user(request.user, pk)
    form = CommentForm(request.POST)
    form.is_valid()
    try:
        services.promotion_comment(
            actor=request.user, request=promotion, body=form.cleaned_data.get("body", "")
        )
    except REFUSED as refusal:
        context = {**_detail_context(request.user, promotion), "comment_form": form}
        context["comment_error"] = _message_of(refusal)
        return render(request, "governance/request_detail.html", context, status=_status_of(refusal))
    messages.success(request, "Your comment was added.")
    return redirect(f"{reverse('governance:request-detail', args=[promotion.pk])}#comments")


# --- a model's stage history ---------------------------------------------------------------------


@login_required
def model_history(request, name: str):
    model = registry_permissions.model_for_user(request.user, name)
    form = ProductionOnForm(request.GET)
    answer, asked = None, False
    if form.is_valid() and form.cleaned_data["date"] is not None:
        asked = True
        answer = selectors.production_on(model, form.cleaned_data["date"])
    transitions = registry_selectors.stage_history(model)
    page = Paginator(selectors.requests_of_model(request.user, model), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    context = {
        "model": model,
        "form": form,
        "asked": asked,
        "answer": answer,
        "transitions": transitions,
        "page": page,
        "query": urlencode({"date": request.GET["date"]}) if request.GET.get("date") else "",
    }
    return render(request, "governance/model_history.html", context, status=400 if form.errors else 200)
