"""Pages of the audit trail: the event list with its filters, exports (CSV, JSON) and chain verification.

Open to holders of `audit.view_auditevent` (Compliance, Model Risk, managers, administrators). The list
pages by event id (keyset), so no page counts the trail, however long it is.
"""

import csv
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

from . import chain, selectors, services
from .forms import EventFilterForm
from .permissions import check_can_read_audit

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


class _Echo:
    """What csv.writer writes to: each line is handed back, to be streamed."""

    def write(self, line: str) -> str:
        return line


@login_required
@require_GET
def export_csv(request):
    """The current filter's events as CSV: a header row, then one row per event; before/after as JSON."""
    rows = _export_rows(_filtered_events(request))
    writer = csv.writer(_Echo())

    def lines():
        yield writer.writerow(chain.EXPORTED)
        for row in rows:
            row["before"], row["after"] = _json(row["before"]), _json(row["after"])
            yield writer.writerow([row[name] for name in chain.EXPORTED])

    return _attachment(StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8"), "csv")


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
    """Re-hash the whole chain and say whether it is intact, or which event is the first broken one."""
    check_can_read_audit(request.user)
    broken, checked = services.audit_verify()
    result = {"intact": broken is None, "checked": checked, "broken": broken, "intact_before": checked - 1}
    if request.htmx:
        return render(request, "audit/partials/_verify_result.html", {"result": result})
    if broken is None:
        messages.success(request, f"Audit chain intact: {_events(checked)} verified.")
    else:
        messages.error(
            request,
            f"Audit chain broken at event #{broken}: it, or its link to the event before it, was altered "
            f"after it was written. The {_events(checked - 1)} before it are intact.",
        )
    return redirect("audit:event-list")


def _events(count: int) -> str:
    return f"{count} event{'' if count == 1 else 's'}"
