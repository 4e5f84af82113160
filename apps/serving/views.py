"""Pages and probes of serving."""

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from . import hotpath, warm


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
    from apps.registry import permissions

    from .selectors import serving_summary

    model = permissions.model_for_user(request.user, name)
    return render(request, "serving/partials/_model_panel.html", {"model": model, **serving_summary(model)})


def open_breakers(request):
    """Context processor: the open-breaker banner of every page, for signed-in users."""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    from .selectors import open_breakers as selected

    return {"open_breakers": selected()}
