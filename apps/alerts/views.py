"""The alerts pages: the list (filters, pagination), one alert with its timeline, acknowledge, resolve."""

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from hafnium_portal.errors import DomainError

from . import selectors, services
from .forms import AlertFilterForm, NoteForm
from .permissions import alert_for_user, alert_to_respond, may_respond

PAGE_SIZE = 25


@login_required
def alert_list(request):
    form = AlertFilterForm(request.GET)
    filters = form.filters()
    page = Paginator(selectors.alert_list(request.user, **filters), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    given = {name: value for name, value in filters.items() if value}
    context = {
        "form": form,
        "page": page,
        "query": urlencode(given),
        "filtered": bool(given),
        "sources": selectors.alert_sources(request.user),
    }
    return render(request, "alerts/alert_list.html", context, status=400 if form.errors else 200)


def _detail(request, alert, *, form=None, error: str = "", status: int = 200):
    context = {
        "alert": alert,
        "timeline": selectors.alert_timeline(alert),
        "may_respond": may_respond(request.user),
        "form": form or NoteForm(),
        "error": error,
    }
    return render(request, "alerts/alert_detail.html", context, status=status)


@login_required
def alert_detail(request, pk: int):
    return _detail(request, alert_for_user(request.user, pk))


def _respond(request, pk: int, action, done: str):
    """Run acknowledge or resolve on a POST: 404/403 from the permission helper, the form's error (400)
    or the service's refusal (409: someone else moved it first) on the page, else back with a message."""
    alert = alert_to_respond(request.user, pk)
    form = NoteForm(request.POST)
    if not form.is_valid():
        return _detail(request, alert, form=form, status=400)
    try:
        action(alert=alert, actor=request.user, note=form.cleaned_data["note"])
    except (DomainError, PermissionDenied) as refusal:
        alert.refresh_from_db()
        status = 403 if isinstance(refusal, PermissionDenied) else refusal.status_code
        return _detail(request, alert, form=form, error=str(refusal), status=status)
    messages.success(request, done)
    return redirect("alerts:detail", pk=alert.pk)


@login_required
@require_POST
def alert_acknowledge(request, pk: int):
    return _respond(request, pk, services.alert_acknowledge, "You acknowledged the alert.")


@login_required
@require_POST
def alert_resolve(request, pk: int):
    return _respond(request, pk, services.alert_resolve_one, "You resolved the alert.")
