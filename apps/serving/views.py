"""Pages and probes of serving."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connection
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from apps.registry import permissions
from hafnium_portal.errors import DomainError

from . import hotpath, services, warm
from .forms import PolicyForm, RuleForm
from .models import FallbackRule


@never_cache
@require_GET
def inference_health(request):
    """Liveness and health of an inference process: 200 while it can answer, "degraded" without Redis.

    Without Redis the process still scores (no response cache, per-process breakers, logs held in the
    process); without the database it scores with the config it has. Both are reported.
    """
    checks = {}
    try:
        hotpath.redis_client().ping()
        checks["redis"] = {"ok": True}
    except Exception as exc:
        checks["redis"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = {"ok": True}
    except Exception as exc:
        checks["database"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    down = [name for name, check in checks.items() if not check["ok"]]
    reasons = {
        "redis": "Redis is down: scoring goes on without the response cache, with per-process breakers, "
        "its logs held in the process",
        "database": "the database is down: scoring goes on with the config this process has",
    }
    body = {
        "status": "degraded" if down else "ok",
        "down": down,
        "checks": checks,
        "logs_waiting_in_process": len(hotpath._pending_logs),
        "warming": not warm.warmed.is_set(),
    }
    if down:
        body["reason"] = "; ".join(reasons[name] for name in down)
    return JsonResponse(body)


def not_found(request, exception=None):
    return JsonResponse({"detail": "Not found."}, status=404)


def server_error(request):
    return JsonResponse({"detail": "Internal error."}, status=500)


@login_required
def model_panel(request, name: str):
    """The "Serving" panel of a model page (loaded by htmx): same visibility as the model page."""
    from .selectors import serving_summary

    model = permissions.model_for_user(request.user, name)
    return render(request, "serving/partials/_model_panel.html", {"model": model, **serving_summary(model)})


POLICIES_PER_PAGE = 20


def _editable_model(request, name: str):
    """The model for a change of its thresholds or rules: 404 if the user may not see it, 403 if they
    may see it but are not an ML Engineer."""
    model = permissions.model_for_user(request.user, name)
    if not services.can_edit_serving(request.user):
        raise PermissionDenied("Only an ML Engineer may change a model's thresholds and fallback rules.")
    return model


@login_required
@require_http_methods(["GET", "POST"])
def thresholds(request, name: str):
    """A model's serving thresholds (with their versions) and fallback rules; ML Engineers change them."""
    from .selectors import fallback_rules, policy_history

    model = (
        permissions.model_for_user(request.user, name)
        if request.method == "GET"
        else _editable_model(request, name)
    )
    current = services.policy_current(model)
    status = 200
    if request.method == "POST":
        form = PolicyForm(request.POST)
        if form.is_valid():
            values = {key: form.cleaned_data[key] for key in services.config.DEFAULT_POLICY}
            try:
                policy = services.policy_publish(
                    actor=request.user, model=model, note=form.cleaned_data["reason"], **values
                )
            except DomainError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(
                    request, f"Version {policy.version} of the thresholds of {model.name} is in force."
                )
                return redirect("serving:thresholds", name=model.name)
        status = 400
    else:
        form = PolicyForm(initial={key: getattr(current, key) for key in services.config.DEFAULT_POLICY})
    history = Paginator(policy_history(model), POLICIES_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "model": model,
        "current": current,
        "form": form,
        "page": history,
        "rules": fallback_rules(model),
        "can_edit": services.can_edit_serving(request.user),
    }
    return render(request, "serving/thresholds.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def rule_edit(request, name: str, rule_id: int | None = None):
    """Add a fallback rule (no rule_id) or change one."""
    model = _editable_model(request, name)
    rule = get_object_or_404(FallbackRule, model=model, pk=rule_id) if rule_id else FallbackRule(model=model)
    status = 200
    if request.method == "POST":
        form = RuleForm(request.POST, instance=rule)
        if form.is_valid():
            try:
                services.rule_save(actor=request.user, rule=form.instance)
            except DomainError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, f"The fallback rule of {model.name} was saved.")
                return redirect("serving:thresholds", name=model.name)
        status = 400
    else:
        form = RuleForm(instance=rule)
    return render(
        request, "serving/rule_form.html", {"model": model, "rule": rule, "form": form}, status=status
    )


@login_required
@require_http_methods(["GET", "POST"])
def rule_delete(request, name: str, rule_id: int):
    """Delete a fallback rule, after a confirmation page."""
    model = _editable_model(request, name)
    rule = get_object_or_404(FallbackRule, model=model, pk=rule_id)
    if request.method == "POST":
        services.rule_delete(actor=request.user, rule=rule)
        messages.success(request, f"The fallback rule of {model.name} was deleted.")
        return redirect("serving:thresholds", name=model.name)
    return render(request, "serving/rule_delete.html", {"model": model, "rule": rule})
