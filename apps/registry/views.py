"""Pages of the registry: the model list, a model, a version and its model card, compare, sync now.

Pages render from the portal's own records (the mirror), never from MLflow, so they work while
MLflow is down; the last failed sync is shown instead.
"""

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.forms.models import model_to_dict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_http_methods, require_POST

from apps.accounts.roles import may_sync
from apps.accounts.selectors import teams_visible_to

from . import permissions, selectors, services
from .cards import METRIC_ORDER, NARRATIVE_TITLES, model_card
from .forms import CompareForm, ModelCardForm, ModelFilterForm
from .models import ModelCardRevision, SyncRun

PAGE_SIZE = 25
CARD_REVISIONS_SHOWN = 20


def _sync_context() -> dict:
    last = selectors.last_sync()
    return {"failed_sync": last if last is not None and last.status == SyncRun.Status.FAILED else None}


@login_required
def model_list(request):
    # The team choices only need names; the members the teams page prefetches are not wanted here.
    form = ModelFilterForm(request.GET, teams=teams_visible_to(request.user).prefetch_related(None))
    models = selectors.model_list(request.user, **form.filters())
    page = Paginator(models, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"form": form, "page": page, "query": urlencode(form.query()), "filtered": bool(form.query())}
    # htmx swaps only the table; a history restore (no snapshot in the browser) needs the whole page.
    if request.htmx and not request.htmx.history_restore_request:
        response = render(request, "registry/partials/_model_table.html", context)
    else:
        response = render(request, "registry/model_list.html", {**context, **_sync_context()})
    patch_vary_headers(response, ["HX-Request"])
    return response


@login_required
def model_detail(request, name: str):
    model = permissions.model_for_user(request.user, name)
    versions = selectors.versions_with_history(request.user, model)
    context = {
        "model": model,
        "owners": selectors.owners_of(model),
        "alias_drifts": selectors.open_alias_drifts(model),
        "page": Paginator(versions, PAGE_SIZE).get_page(request.GET.get("page")),
        **_sync_context(),
    }
    return render(request, "registry/model_detail.html", context)


@login_required
def version_detail(request, name: str, version: int):
    model_version = permissions.version_for_user(request.user, name, version)
    model = model_version.model
    card = model_card(model_version)
    context = {
        "model": model,
        "version": model_version,
        "card": card,
        "narrative": [
            {"key": key, "title": title, "text": card.narrative.get(key, "")}
            for key, title in NARRATIVE_TITLES.items()
        ],
        "missing": [NARRATIVE_TITLES.get(item, item.capitalize()) for item in card.missing],
        "params": sorted(model_version.params.items()),
        "production": selectors.production_version(model),
        "can_edit_card": permissions.can_edit_card(request.user, model),
    }
    return render(request, "registry/version_detail.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def card_edit(request, name: str):
    model = permissions.model_card_for_editing(request.user, name)
    status = 200
    if request.method == "POST":
        form = ModelCardForm(request.POST)
        if form.is_valid():
            try:
                services.model_card_edit(actor=request.user, model=model, **form.cleaned_data)
            except services.DomainError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, f"The model card of {model.name} was saved.")
                latest = selectors.latest_version(model)
                if latest is None:
                    return redirect("registry:model-detail", name=model.name)
                return redirect("registry:version-detail", name=model.name, version=latest.version)
        status = 400
    else:
        current = selectors.current_card_revision(model)
        initial = model_to_dict(current, ModelCardRevision.NARRATIVE_FIELDS) if current else None
        form = ModelCardForm(initial=initial)
    revisions = selectors.card_revisions(model)
    context = {
        "model": model,
        "form": form,
        "revisions": revisions[:CARD_REVISIONS_SHOWN],
        "revision_count": revisions.count(),
    }
    return render(request, "registry/card_edit.html", context, status=status)


def _compared_metrics(a, b) -> list[dict]:
    names = [m for m in METRIC_ORDER if m in a.metrics or m in b.metrics]
    names += sorted((set(a.metrics) | set(b.metrics)) - set(names))
    rows = []
    for name in names:
        value_a, value_b = a.metrics.get(name), b.metrics.get(name)
        rows.append(
            {
                "name": name,
                "a": value_a,
                "b": value_b,
                "a_ci": a.confidence_intervals.get(name),
                "b_ci": b.confidence_intervals.get(name),
                "difference": value_a - value_b if value_a is not None and value_b is not None else None,
            }
        )
    return rows


def _chart_series(version) -> dict:
    curves = version.curves or {}
    return {
        "label": f"v{version.version} ({version.get_stage_display()})",
        **{k: curves.get(k) for k in ("roc", "pr")},
    }


@login_required
def compare(request, name: str):
    model = permissions.model_for_user(request.user, name)
    versions = list(selectors.version_list(request.user, model=model).order_by("-version"))
    form = CompareForm(request.GET, versions=versions, production=selectors.production_version(model))
    context = {"model": model, "form": form, "versions": versions}
    if not form.is_valid():
        return render(request, "registry/compare.html", context, status=400)
    a, b = form.cleaned_data.get("version_a"), form.cleaned_data.get("version_b")
    if a is not None:
        context.update(
            version_a=a,
            version_b=b,
            metrics=_compared_metrics(a, b),
            chart_data={"series": [_chart_series(a), _chart_series(b)]},
            chart_versions=[a] if a == b else [a, b],
        )
    return render(request, "registry/compare.html", context)


@login_required
@require_POST
def sync(request):
    """Sync now: enqueue a mirror of MLflow, then go back to the model the button was pressed on."""
    model = permissions.model_for_user(request.user, request.POST.get("model", ""))
    if not may_sync(request.user):
        raise PermissionDenied(
            "Managers, Model Risk and Compliance read the registry; "
            "syncing is for data scientists and ML engineers."
        )
    if services.registry_sync_request(actor=request.user):
        messages.success(request, "Sync started")
    else:
        messages.error(
            request, "The sync could not be started: the task queue is unreachable. Try again later."
        )
    return redirect(reverse("registry:model-detail", kwargs={"name": model.name}))
