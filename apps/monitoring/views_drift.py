"""Drift report pages: the managers' list, a report, its self-contained export, starting a run."""

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.staticfiles import finders
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from apps.deployments.forms import NoteForm
from apps.registry.models import Stage
from apps.registry.permissions import model_for_user
from apps.registry.selectors import models_visible_to
from hafnium_portal.errors import DomainError

from . import charts_drift, selectors
from .forms_drift import DriftReportFilterForm
from .models import DriftRun, Investigation
from .permissions import (
    can_close_investigation,
    can_start_drift_run,
    check_start_drift_run,
    drift_run_for_user,
)
from .services.drift_responses import investigation_close
from .services.drift_runs import drift_run_request

PAGE_SIZE = 25
HEATMAP_RUNS = 20


@login_required
@require_GET
def report_list(request):
    form = DriftReportFilterForm(request.GET)
    filters = form.filters()
    page = Paginator(selectors.drift_report_list(request.user, **filters), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    production = models_visible_to(request.user).filter(versions__stage=Stage.PRODUCTION).distinct()
    context = {
        "form": form,
        "page": page,
        "query": urlencode(form.query()),
        "filtered": any(filters.values()),
        "runnable": [model for model in production if can_start_drift_run(request.user, model)],
        "model_names": list(models_visible_to(request.user).values_list("name", flat=True)),
    }
    return render(request, "monitoring/drift_report_list.html", context, status=400 if form.errors else 200)


def _report_context(run: DriftRun) -> dict:
    results = selectors.feature_results(run)
    runs = selectors.previous_runs(run, limit=HEATMAP_RUNS)
    history = selectors.psi_history(runs)
    charts = (
        charts_drift.report_charts(run, results, runs, history)
        if run.status == DriftRun.Status.SUCCEEDED
        else {}
    )
    embedding = next((result for result in results if result.kind == "embedding"), None)
    return {
        "run": run,
        "results": [result for result in results if result.kind != "embedding"],
        "embedding": embedding,
        "embedding_charts": [name for name in charts if name.startswith("chart-embedding-")],
        "charts": charts,
        "responses": list(run.responses.all()),
        "investigations": list(selectors.open_investigations(run.model)),
        "owners": list(run.model.owners.values_list("username", flat=True)),
        "summary": run.summary or {},
        "policy": run.policy,
    }


@login_required
@require_GET
def report_detail(request, pk: int):
    run = drift_run_for_user(request.user, pk)
    context = _report_context(run)
    context["may_run"] = can_start_drift_run(request.user, run.model)
    context["may_close"] = can_close_investigation(request.user, run.model)
    return render(request, "monitoring/drift_report.html", context)


@login_required
@require_GET
def run_progress(request, pk: int):
    """The progress bar (htmx polls it); once the run has ended, the page reloads to show the report."""
    run = drift_run_for_user(request.user, pk)
    response = render(request, "monitoring/partials/_drift_progress.html", {"run": run})
    if run.status in (DriftRun.Status.SUCCEEDED, DriftRun.Status.FAILED):
        response["HX-Refresh"] = "true"
    return response


def _static_text(path: str) -> str:
    found = finders.find(path)
    with open(found, encoding="utf-8") as source:
        return source.read()


def export_filename(run: DriftRun) -> str:
    return f"drift-report-{run.model.name}-run{run.pk}-{run.window_end:%Y%m%d-%H%M}.html"


@login_required
@require_GET
def report_export(request, pk: int):
    """The report as one HTML file that opens anywhere, offline: plotly.js, the script and the data inline."""
    run = drift_run_for_user(request.user, pk)
    if run.status != DriftRun.Status.SUCCEEDED:
        return HttpResponse("This run has no report yet.", status=409, content_type="text/plain")
    context = _report_context(run)
    context.update(
        exported_at=timezone.now(),
        exported_by=request.user.get_username(),
        plotly_js=_static_text("vendor/plotly/plotly.min.js"),
        report_js=_static_text("js/drift_report.js"),
        bootstrap_css=_static_text("vendor/bootstrap/bootstrap.min.css"),
    )
    html = render_to_string("monitoring/drift_report_export.html", context, request=request)
    response = HttpResponse(html, content_type="text/html; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{export_filename(run)}"'
    return response


@login_required
@require_POST
def run_start(request, name: str):
    """Start a drift run now (the model's production version, the policy's window ending now)."""
    model = model_for_user(request.user, name)
    check_start_drift_run(request.user, model)
    try:
        run = drift_run_request(actor=request.user, model=model)
    except DomainError as exc:
        messages.error(request, str(exc))
        return redirect("monitoring:drift_reports")
    return redirect("monitoring:drift_report", pk=run.pk)


@login_required
@require_POST
def investigation_close_view(request, pk: int):
    """Close an open investigation with a note of what was found; back to the report it came from."""
    investigation = get_object_or_404(
        Investigation.objects.filter(model__in=models_visible_to(request.user)).select_related("model"), pk=pk
    )
    try:  # the form refuses a malformed note (NUL, too long); the service checks the caller's right (403)
        note = NoteForm(request.POST).text()
        investigation_close(actor=request.user, investigation=investigation, note=note)
    except DomainError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Investigation #{investigation.pk} of {investigation.model.name} closed.")
    if investigation.run_id is not None:
        return redirect("monitoring:drift_report", pk=investigation.run_id)
    return redirect("monitoring:drift_reports")
