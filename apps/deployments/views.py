"""Pages of deployments: the rollouts list, a rollout with its live progress (htmx polling), its chart,
analysis and staging tests, and the controls a person has on it.

Views parse input, fetch through permissions, call one service and render; a refused control shows the
service's reason with its status (400, 403, 409) and changes nothing.
"""

from datetime import timedelta
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import trigger_client_event

from apps.registry.permissions import model_for_user
from apps.registry.selectors import models_visible_to, production_version
from apps.serving.selectors import timeseries
from hafnium_portal.errors import DomainError

from . import charts, panels, permissions, selectors, services
from .forms import NoteForm, ReasonForm, RolloutFilterForm
from .models import Rollout

PAGE_SIZE = 25
# How often a running rollout's page asks for its progress, and for its chart (a heavier read).
POLL_SECONDS = 2
CHART_POLL_SECONDS = 10
MEASUREMENTS_SHOWN = 60
CHART_LEAD_IN = timedelta(minutes=1)
# The events the page's parts exchange: the live part saw the rollout move; a control was used.
MOVED = "rollout-moved"
ACTED = "rollout-acted"
REFUSED = (DomainError, PermissionDenied)


def _status_of(refusal: Exception) -> int:
    return 403 if isinstance(refusal, PermissionDenied) else refusal.status_code


def _message_of(refusal: Exception) -> str:
    return str(refusal) or "You may not do this."


# --- the list ------------------------------------------------------------------------------------


@login_required
@require_GET
def rollout_list(request):
    names = models_visible_to(request.user).order_by("name").values_list("name", flat=True)
    form = RolloutFilterForm(request.GET, model_names=list(names))
    filters = form.filters()
    rollouts = selectors.rollouts_for(
        request.user,
        model=filters["model"] or None,
        state=filters["state"] or None,
        kind=filters["kind"] or None,
    )
    page = Paginator(rollouts, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "form": form,
        "page": page,
        "query": urlencode(form.query()),
        "filtered": bool(form.query()),
        "reviews": selectors.rollback_reviews_for(request.user),
    }
    return render(request, "deployments/rollout_list.html", context, status=400 if form.errors else 200)


# --- a rollout -----------------------------------------------------------------------------------


def _markers(events) -> list[charts.Marker]:
    """The chart's vertical lines: each step's weight set, and the moves a person or the outcome made."""
    markers = []
    for event in events:
        if event.to_state == Rollout.State.ANALYSING and event.from_state == Rollout.State.CANARY:
            markers.append(charts.Marker(event.at, f"{event.weight_bp / 100:g} %"))
        elif event.to_state in (
            Rollout.State.PAUSED,
            Rollout.State.SUCCEEDED,
            Rollout.State.ROLLED_BACK,
            Rollout.State.ABORTED,
        ):
            markers.append(charts.Marker(event.at, Rollout.State(event.to_state).label.lower()))
    return markers


def _slo(rollout: Rollout) -> dict:
    policy = rollout.policy
    return {"error_rate_slo": policy.error_rate_max, "p99_slo_ms": policy.latency_p99_max_ms}


def _chart(rollout: Rollout, events) -> dict | None:
    """The canary-vs-stable figure over the rollout's life so far, from a minute before it started (the
    stable's baseline); None for a staging deployment."""
    if rollout.kind != Rollout.Kind.CANARY:
        return None
    since = rollout.created_at - CHART_LEAD_IN
    until = rollout.finished_at or timezone.now()
    step = charts.bucket_seconds((until - since).total_seconds())
    versions = [v.version for v in (rollout.candidate, rollout.stable) if v is not None]
    series = timeseries(rollout.model, since=since, until=until, step_seconds=step, versions=versions)
    return charts.rollout_figure(
        canary=series.get(rollout.candidate.version, []),
        stable=series.get(rollout.stable.version, []) if rollout.stable else [],
        canary_name=f"v{rollout.candidate.version} (canary)",
        stable_name=f"v{rollout.stable.version} (stable)" if rollout.stable else "stable",
        markers=_markers(events),
        **_slo(rollout),
    )


# How each analysis metric reads: its label, and its values as shown (rates as percentages).
METRICS = {
    "error_rate": ("Error rate", lambda v: f"{100 * v:.3g} %"),
    "latency_p99_ms": ("p99 latency", lambda v: f"{v:.4g} ms"),
    "fallback_share": ("Fallback share", lambda v: f"{100 * v:.3g} %"),
    "score_shift": ("Score shift", lambda v: f"{100 * v:.3g} %"),
}


def _measurement_row(measurement) -> dict:
    label, shown = METRICS.get(measurement.metric, (measurement.metric, lambda v: f"{v:.6g}"))
    return {
        "metric": measurement.metric,
        "label": label,
        "value": "—" if measurement.value is None else shown(measurement.value),
        "threshold": shown(measurement.threshold),
        "comparator": measurement.comparator,
        "verdict": measurement.verdict,
        "message": measurement.message,
        "step": f"{measurement.weight_bp / 100:g} %",
        "canary_requests": measurement.canary_requests,
        "stable_requests": measurement.stable_requests,
        "measured_at": measurement.measured_at,
    }


def _live_context(detail) -> dict:
    """What the live part shows: state, steps, analysis, staging tests, timeline; and whether to poll."""
    rollout = detail.rollout
    latest = detail.measurements[::-1][:MEASUREMENTS_SHOWN]
    events = detail.events[::-1]
    for event in events:
        event.percent = event.weight_bp / 100
    return {
        "detail": detail,
        "rollout": rollout,
        "polling": rollout.is_active,
        "poll_seconds": POLL_SECONDS,
        "measurements": [_measurement_row(m) for m in latest],
        "measurements_total": len(detail.measurements),
        "measurements_hidden": len(detail.measurements) > len(latest),
        "events": events,
    }


def _controls_context(user, detail, **extra) -> dict:
    """The controls `user` has now (the selectors' rule from the state and the permissions), and the
    review of an emergency rollback when they are the second person it waits for."""
    review = detail.review
    return {
        "detail": detail,
        "rollout": detail.rollout,
        "commands": set(detail.commands),
        "can_review": review is not None
        and review.status == review.Status.OPEN
        and permissions.may_review(user, review),
        **extra,
    }


def _page_context(user, detail, **extra) -> dict:
    return {
        **_live_context(detail),
        **_controls_context(user, detail, **extra),
        "chart": _chart(detail.rollout, detail.events),
        "chart_poll_seconds": CHART_POLL_SECONDS,
    }


@login_required
@require_GET
def rollout_detail(request, pk: int):
    detail = selectors.rollout_detail(request.user, pk)
    return render(request, "deployments/rollout_detail.html", _page_context(request.user, detail))


@login_required
@require_GET
def rollout_live(request, pk: int):
    """The live part (htmx polls it). When the rollout moved since the page last saw it (`seen`, its
    revision then), the controls and the chart are told to refresh; a finished rollout's part comes back
    without its polling trigger."""
    detail = selectors.rollout_detail(request.user, pk)
    response = render(request, "deployments/partials/_live.html", _live_context(detail))
    if request.GET.get("seen", str(detail.rollout.revision)) != str(detail.rollout.revision):
        trigger_client_event(response, MOVED, after="settle")
    return response


@login_required
@require_GET
def rollout_controls(request, pk: int):
    detail = selectors.rollout_detail(request.user, pk)
    return render(request, "deployments/partials/_controls.html", _controls_context(request.user, detail))


@login_required
@require_GET
def rollout_chart(request, pk: int):
    detail = selectors.rollout_detail(request.user, pk)
    context = {
        "rollout": detail.rollout,
        "chart": _chart(detail.rollout, detail.events),
        "chart_poll_seconds": CHART_POLL_SECONDS,
    }
    return render(request, "deployments/partials/_chart.html", context)


@login_required
@require_GET
def model_traffic(request, name: str):
    """The model page's Traffic panel (htmx polls it while a rollout moves the split)."""
    model = model_for_user(request.user, name)
    context = {"model": model, **panels.traffic_context(request.user, model)}
    return render(request, "deployments/panels/_traffic.html", context)


# --- controls ------------------------------------------------------------------------------------


def _controlled(request, pk: int, action, done: str):
    """Run a control on a rollout the user may steer (404/403 from permissions otherwise). On success:
    the controls part with the message (htmx, and the live part is told to refresh) or a redirect back.
    On refusal: the reason with its status; the service has changed nothing."""
    rollout = permissions.rollout_for_control(request.user, pk)
    try:
        action(rollout, ReasonForm(request.POST).text())
    except REFUSED as refusal:
        status, extra = _status_of(refusal), {"control_error": _message_of(refusal)}
    else:
        status, extra = 200, {"control_message": done.format(pk=rollout.pk)}
    if not request.htmx:
        if status == 200:
            messages.success(request, extra["control_message"])
            return redirect("deployments:rollout-detail", pk=rollout.pk)
        detail = selectors.rollout_detail(request.user, pk)
        context = _page_context(request.user, detail, **extra)
        return render(request, "deployments/rollout_detail.html", context, status=status)
    detail = selectors.rollout_detail(request.user, pk)
    context = _controls_context(request.user, detail, **extra)
    response = render(request, "deployments/partials/_controls.html", context, status=status)
    if status == 200:
        trigger_client_event(response, ACTED, after="settle")
    return response


@login_required
@require_POST
def rollout_pause(request, pk: int):
    def pause(rollout, reason):
        services.rollout_pause(actor=request.user, rollout=rollout, reason=reason)

    return _controlled(request, pk, pause, "Rollout #{pk} is paused: its canary weight stays as it is.")


@login_required
@require_POST
def rollout_resume(request, pk: int):
    def resume(rollout, reason):
        services.rollout_resume(actor=request.user, rollout=rollout, reason=reason)

    return _controlled(request, pk, resume, "Rollout #{pk} resumed: its step's analysis starts afresh.")


@login_required
@require_POST
def rollout_promote(request, pk: int):
    def promote(rollout, reason):
        services.rollout_promote_now(actor=request.user, rollout=rollout, reason=reason)

    return _controlled(
        request, pk, promote, "Rollout #{pk} is promoted: the candidate takes all the traffic."
    )


@login_required
@require_POST
def rollout_abort(request, pk: int):
    def abort(rollout, reason):
        services.rollout_abort(actor=request.user, rollout=rollout, reason=reason)

    return _controlled(
        request, pk, abort, "Rollout #{pk} is aborted: traffic goes back to the stable version."
    )


@login_required
@require_POST
def review_confirm(request, pk: int):
    """A second person confirms an emergency rollback (the review it opened), with an optional note."""
    review = permissions.review_for_reviewing(request.user, pk)
    try:
        services.rollback_review_confirm(
            actor=request.user, review=review, note=NoteForm(request.POST).text()
        )
    except REFUSED as refusal:
        detail = selectors.rollout_detail(request.user, review.rollout_id)
        context = _page_context(request.user, detail, control_error=_message_of(refusal))
        return render(request, "deployments/rollout_detail.html", context, status=_status_of(refusal))
    messages.success(request, f"You confirmed the emergency rollback of {review.rollout.model.name}.")
    return redirect("deployments:rollout-detail", pk=review.rollout_id)


@login_required
@require_http_methods(["GET", "POST"])
def model_rollback(request, name: str):
    """The emergency rollback of a model's Production version to the last good one: this page says what
    will happen and asks for a reason (the confirmation). The person lands on the page of the rollout that
    carries the rollback (the one that made the version Production). Refused: the reason, with its
    status, and nothing moved."""
    model = permissions.model_for_rollback(request.user, name)
    form = ReasonForm(request.POST or None)
    status, error = 200, ""
    if request.method == "POST":
        try:
            rollback = services.rollback_to_last_good(model=model, actor=request.user, reason=form.text())
        except REFUSED as refusal:
            status, error = _status_of(refusal), _message_of(refusal)
        else:
            restored = f"v{rollback.stable.version}" if rollback.stable else "the last good version"
            messages.success(
                request,
                f"{model.name} v{rollback.candidate.version} was rolled back: {restored} answers production "
                "traffic again. A second person reviews the rollback.",
            )
            return redirect("deployments:rollout-detail", pk=rollback.pk)
    context = {
        "model": model,
        "form": form,
        "error": error,
        "production": production_version(model),
        "active": selectors.active_rollout(model),
    }
    return render(request, "deployments/rollback.html", context, status=status)
