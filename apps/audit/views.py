"""Pages of the audit trail: the event list with its filters, exports (CSV, JSON) and chain verification.

Open to holders of `audit.view_auditevent` (Compliance, Model Risk, managers, administrators). The list
pages by event id (keyset), so no page counts the trail, however long it is.
"""

import json
from datetime import UTC
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_POST

from hafnium_portal.csv_safe import csv_lines

from . import chain, selectors, services
from .forms import EventFilterForm
from .permissions import check_can_read_audit, verification_for_user

PAGE_SIZE = 50
EXPORT_CHUNK = 2_000


def _event_id(value) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _page(events, params) -> dict:
    """The page of `events` (newest first) just older than event `before` or newer than event `after`."""
    before, after = _event_id(params.get("before")), _event_id(params.get("after"))
    if after is not None:
        rows = list(events.filter(pk__gt=after).order_by("pk")[: PAGE_SIZE + 1])
        has_newer, rows = len(rows) > PAGE_SIZE, rows[:PAGE_SIZE][::-1]
        has_older = events.filter(pk__lte=after).exists()
    else:
        older = events if before is None else events.filter(pk__lt=before)
        rows = list(older[: PAGE_SIZE + 1])
        has_older, rows = len(rows) > PAGE_SIZE, rows[:PAGE_SIZE]
        has_newer = before is not None and events.filter(pk__gte=before).exists()
    return {
        "events": rows,
        "first_page": before is None and after is None,
        "newer": rows[0].pk if rows and has_newer else None,
        "older": rows[-1].pk if rows and has_older else None,
    }


@login_required
@require_GET
def event_list(request):
    check_can_read_audit(request.user)
    form = EventFilterForm(request.GET)
    events = selectors.event_list(request.user, **form.filters())
    query = urlencode(form.query())
    context = {"form": form, "query": query, "filtered": bool(query), **_page(events, request.GET)}
    # htmx swaps only the table; a history restore (no snapshot in the browser) needs the whole page.
    if request.htmx and not request.htmx.history_restore_request:
        response = render(request, "audit/partials/_event_table.html", context)
    else:
        context |= {
            "run": selectors.latest_verification(request.user),
            "action_names": selectors.action_names(request.user),
            "object_types": selectors.object_types(request.user),
        }
        response = render(request, "audit/event_list.html", context)
    patch_vary_headers(response, ["HX-Request"])
    return response


def _export_rows(events):
    """The events in chain order (oldest first), read in chunks while the response streams."""
    for event in events.order_by("id").values(*chain.EXPORTED).iterator(chunk_size=EXPORT_CHUNK):
        # The time as the hash covers it (UTC, microseconds): each exported row can be re-hashed.
        yield {**event, "at": event["at"].astimezone(UTC).isoformat(timespec="microseconds")}


def _filtered_events(request):
    check_can_read_audit(request.user)  # here, not in the stream: a refusal must come before the 200
    return selectors.event_list(request.user, **EventFilterForm(request.GET).filters())


def _attachment(response, extension: str):
    stamp = timezone.now().astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="audit-events-{stamp}.{extension}"'
    return response


def _json(value) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


@login_required
@require_GET
def export_csv(request):
    """The current filter's events as CSV: the escaping note, a header row, then one row per event;
    before/after as JSON. Cells a spreadsheet could run as formulas are escaped (see csv_safe)."""
    rows = _export_rows(_filtered_events(request))

    def cells():
        for row in rows:
            row["before"], row["after"] = _json(row["before"]), _json(row["after"])
            yield [row[name] for name in chain.EXPORTED]

    response = StreamingHttpResponse(
        csv_lines(chain.EXPORTED, cells()), content_type="text/csv; charset=utf-8"
    )
    return _attachment(response, "csv")


@login_required
@require_GET
def export_json(request):
    """The current filter's events as one JSON array of objects."""
    rows = _export_rows(_filtered_events(request))

    def chunks():
        yield "["
        for n, row in enumerate(rows):
            yield ("," if n else "") + "\n" + _json(row)
        yield "\n]\n"

    return _attachment(StreamingHttpResponse(chunks(), content_type="application/json"), "json")


@login_required
@require_POST
def verify(request):
    """Start a verification of the whole trail (a Celery task), or show the one already under way."""
    check_can_read_audit(request.user)
    run = services.verification_request(actor=request.user)
    if request.htmx:
        return render(request, "audit/partials/_verification.html", {"run": run})
    messages.info(request, f"Verification #{run.pk} of the audit chain started; its progress is shown below.")
    return redirect("audit:event-list")


@login_required
@require_GET
def verification(request, pk: int):
    """A verification's status, polled by the page (htmx) while it runs."""
    run = verification_for_user(request.user, pk)
    return render(request, "audit/partials/_verification.html", {"run": run})
