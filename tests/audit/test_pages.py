"""The audit trail's pages and API: who may read it, filters, keyset pages, exports that re-hash,
verification of the chain (and of a tampered one), and bounded queries over thousands of events."""

import ast
import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from apps.audit import chain
from apps.audit.models import AuditEvent, VerificationRun
from apps.audit.services import audit_record
from hafnium_portal.csv_safe import ESCAPING_NOTE

pytestmark = pytest.mark.django_db

READERS = ["compliance", "model_risk", "manager", "admin_user"]
NOT_READERS = ["data_scientist", "other_data_scientist", "ds_lead", "ml_engineer", "outsider"]
FIELDS = ["id", "at", "actor_id", "actor", "action", "object_type", "object_id", "object_repr"]
FIELDS += ["before", "after", "prev_hash", "hash"]


def append(*specs: dict) -> list[AuditEvent]:
    """Append events with given times to the chain, hashed as audit_record hashes them (in bulk)."""
    previous = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first() or chain.GENESIS
    rows = []
    for spec in specs:
        event = {
            "actor_id": None,
            "actor": "system",
            "object_type": "",
            "object_id": "",
            "object_repr": "",
            "before": None,
            "after": None,
            **spec,
        }
        digest = chain.event_hash(previous, event)
        rows.append(AuditEvent(**event, prev_hash=previous, hash=digest))
        previous = digest
    return AuditEvent.objects.bulk_create(rows)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


REQUEST_7 = {"object_type": "governance.promotionrequest", "object_id": "7"}


@pytest.fixture
def story():
    """Four events of March 2025 (UTC), named A to D; their actors are none of the fixtures' people."""
    a, b, c, d = append(
        {
            "at": at("2025-03-01T10:00:00"),
            "actor": "ruth",
            "action": "promotion.approved_in_role",
            **REQUEST_7,
            "object_repr": "request #7: fraud-scorer v2 to Production",
            "after": {"role": "Model Risk"},
        },
        {
            "at": at("2025-03-01T23:30:00"),
            "actor": "carl",
            "action": "promotion.approved",
            **REQUEST_7,
            "object_repr": "request #7: fraud-scorer v2 to Production",
            "before": {"status": "pending"},
            "after": {"status": "publishing", "note": 'ünïcode, "quotes", commas'},
        },
        {
            "at": at("2025-03-02T00:30:00"),
            "actor": "dora",
            "action": "registry.card_edited",
            "object_type": "registry.registeredmodel",
            "object_id": "3",
            "object_repr": "fraud-scorer",
        },
        {
            "at": at("2025-03-05T12:00:00"),
            "action": "promotion.completed",
            "object_type": "governance.promotionrequest",
            "object_id": "8",
            "object_repr": "request #8: payments-anomaly v1 to Candidate",
        },
    )
    return {"A": a, "B": b, "C": c, "D": d}


def signed_in(request, person: str) -> Client:
    client = Client()
    if person != "anonymous":
        client.force_login(request.getfixturevalue(person))
    return client


def listed_ids(response) -> list[int]:
    assert response.status_code == 200, response.content[:500]
    return [event.pk for event in response.context["events"]]


def streamed(response) -> str:
    assert response.streaming
    return b"".join(response.streaming_content).decode()


# --- who may read the trail ----------------------------------------------------------------------

PAGES = {
    "list": ("get", "audit:event-list"),
    "export.csv": ("get", "audit:export-csv"),
    "export.json": ("get", "audit:export-json"),
    "verify": ("post", "audit:verify"),
}


@pytest.mark.parametrize("page", PAGES)
def test_anonymous_visitor_is_sent_to_log_in(client, story, page):
    method, name = PAGES[page]
    url = reverse(name)

    response = getattr(client, method)(url)

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('accounts:login')}?next={url}"


@pytest.mark.parametrize("person", READERS + NOT_READERS)
@pytest.mark.parametrize("page", PAGES)
def test_only_compliance_model_risk_managers_and_admins_read_the_trail(request, story, page, person):
    method, name = PAGES[page]
    client = signed_in(request, person)

    response = getattr(client, method)(reverse(name))

    if person in NOT_READERS:
        assert response.status_code == 403
        assert "fraud-scorer" not in response.content.decode()
        assert not response.streaming
    elif page == "verify":
        assert response.status_code == 302
        assert response["Location"] == reverse("audit:event-list")
    elif page == "list":
        assert story["B"].pk in listed_ids(response)
    else:
        assert response.status_code == 200
        assert "request #7: fraud-scorer v2 to Production" in streamed(response)


def test_the_audit_app_imports_no_other_app():
    """Every app writes to the audit trail; the trail depends on none of them."""
    folder = Path(__file__).resolve().parents[2] / "apps" / "audit"
    imported = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module)
    others = {name for name in imported if name.startswith("apps.") and not name.startswith("apps.audit")}
    assert others == set()
    assert "django.db" in imported  # the scan did read the app


# --- the list: filters, times, changes, pages ----------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("action=promotion.approved", ["B"]),
        ("action=promotion.*", ["D", "B", "A"]),
        ("actor=carl", ["B"]),
        ("object_type=governance.promotionrequest&object_id=7", ["B", "A"]),
        ("object_id=3", ["C"]),
        ("date_from=2025-03-01&date_to=2025-03-01", ["B", "A"]),  # the last day is included
        ("date_from=2025-03-02&date_to=2025-03-04", ["C"]),
        ("date_to=2025-03-01", ["B", "A"]),
        ("q=FRAUD-scorer", ["C", "B", "A"]),
        ("q=payments&action=promotion.*", ["D"]),
        ("actor=nobody", []),
    ],
)
def test_filters(client, compliance, story, query, expected):
    client.force_login(compliance)

    response = client.get(f"{reverse('audit:event-list')}?{query}")

    assert listed_ids(response) == [story[name].pk for name in expected]


def test_dates_are_days_in_the_portals_time_zone(client, compliance, story, settings):
    client.force_login(compliance)
    url = f"{reverse('audit:event-list')}?date_from=2025-03-02&date_to=2025-03-02"
    assert listed_ids(client.get(url)) == [story["C"].pk]

    settings.TIME_ZONE = "Europe/Berlin"  # B, at 23:30 UTC on the 1st, is 00:30 on the 2nd in Berlin

    response = client.get(url)
    assert listed_ids(response) == [story["C"].pk, story["B"].pk]
    assert "2025-03-02 00:30:00 CET" in response.content.decode()


def test_each_event_shows_time_zone_actor_action_object_and_its_change(client, compliance, story):
    client.force_login(compliance)

    html = client.get(f"{reverse('audit:event-list')}?actor=carl").content.decode()

    row = re.search(r'<tr data-testid="event-row".*?</tr>', html, re.S).group(0)
    assert '<time datetime="2025-03-01T23:30:00+00:00">2025-03-01 23:30:00 UTC</time>' in row
    assert ">carl</a>" in row
    assert "<code>promotion.approved</code>" in row
    assert "request #7: fraud-scorer v2 to Production" in row
    assert "governance.promotionrequest #7" in row
    assert "<details><summary>Before</summary>" in row
    assert "&quot;status&quot;: &quot;pending&quot;" in row
    assert "&quot;status&quot;: &quot;publishing&quot;" in row


def test_a_bad_filter_is_reported_and_left_out(client, compliance, story):
    client.force_login(compliance)

    response = client.get(f"{reverse('audit:event-list')}?actor=carl&date_from=yesterday")
    assert listed_ids(response) == [story["B"].pk]
    assert "Enter a valid date." in response.content.decode()

    response = client.get(f"{reverse('audit:event-list')}?actor=carl&date_from=2025-03-02&date_to=2025-03-01")
    assert listed_ids(response) == []  # the start stays; the end, before it, is left out
    assert "The end date is before the start date." in response.content.decode()


def test_htmx_gets_only_the_table(client, compliance, story):
    client.force_login(compliance)

    response = client.get(f"{reverse('audit:event-list')}?actor=carl", HTTP_HX_REQUEST="true")

    html = response.content.decode()
    assert listed_ids(response) == [story["B"].pk]
    assert "<html" not in html
    assert 'href="/audit/export.csv?actor=carl"' in html


def test_pages_go_back_and_forth_by_event_id(client, compliance):
    start = at("2025-06-01T00:00:00")
    events = append(*({"at": start + timedelta(minutes=n), "action": "test.paging"} for n in range(120)))
    ids = [event.pk for event in reversed(events)]  # newest first
    client.force_login(compliance)
    url = f"{reverse('audit:event-list')}?action=test.paging"

    first = client.get(url)
    second = client.get(f"{url}&before={first.context['older']}")
    third = client.get(f"{url}&before={second.context['older']}")
    back = client.get(f"{url}&after={third.context['newer']}")

    assert listed_ids(first) == ids[:50]
    assert first.context["newer"] is None
    assert listed_ids(second) == ids[50:100]
    assert listed_ids(third) == ids[100:]
    assert third.context["older"] is None
    assert listed_ids(back) == ids[50:100]
    assert back.context["newer"] == ids[50]
    assert f'href="?action=test.paging&amp;before={ids[49]}"' in first.content.decode()


# --- exports -------------------------------------------------------------------------------------


def rehashes(row: dict) -> bool:
    """The exported event's hash is the hash of what the export says (so the export is exact)."""
    return chain.event_hash(row["prev_hash"], row) == row["hash"]


def test_csv_export_holds_the_filtered_events_with_their_hashes(client, compliance, story):
    client.force_login(compliance)

    response = client.get(f"{reverse('audit:export-csv')}?action=promotion.*")

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert re.fullmatch(
        r'attachment; filename="audit-events-\d{8}T\d{6}Z\.csv"', response["Content-Disposition"]
    )
    lines = list(csv.reader(io.StringIO(streamed(response))))
    assert lines[0] == [ESCAPING_NOTE]
    assert lines[1] == FIELDS
    rows = [dict(zip(FIELDS, line, strict=True)) for line in lines[2:]]
    assert [int(row["id"]) for row in rows] == [story[name].pk for name in ("A", "B", "D")]  # chain order
    for row, name in zip(rows, ("A", "B", "D"), strict=True):
        assert (row["prev_hash"], row["hash"]) == (story[name].prev_hash, story[name].hash)
        row |= {"actor_id": None, "before": json.loads(row["before"]), "after": json.loads(row["after"])}
        assert rehashes(row)
    assert rows[1]["after"] == {"status": "publishing", "note": 'ünïcode, "quotes", commas'}
    assert rows[0]["at"] == "2025-03-01T10:00:00.000000+00:00"


def test_json_export_is_valid_json_of_the_filtered_events(client, compliance, story):
    client.force_login(compliance)

    response = client.get(
        f"{reverse('audit:export-json')}?object_type=governance.promotionrequest&object_id=7"
    )

    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"].endswith('.json"')
    rows = json.loads(streamed(response))
    assert [row["id"] for row in rows] == [story["A"].pk, story["B"].pk]
    assert all(set(row) == set(FIELDS) and rehashes(row) for row in rows)
    assert rows[1]["before"] == {"status": "pending"}


def test_an_unfiltered_export_verifies_as_a_whole_chain(client, compliance, story):
    client.force_login(compliance)
    audit_record(actor=compliance, action="test.recorded", object_repr="after the story")

    rows = json.loads(streamed(client.get(reverse("audit:export-json"))))

    assert len(rows) == AuditEvent.objects.count()
    assert chain.first_break(rows) == (None, len(rows))
    assert json.loads(streamed(client.get(f"{reverse('audit:export-json')}?actor=nobody"))) == []


# --- verifying the chain -------------------------------------------------------------------------


def as_superuser_would(sql: str, params: list) -> None:
    """Change the trail behind the portal's back, as a database superuser could (on PostgreSQL the
    append-only trigger is disabled first; the test's transaction restores it)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_append_only")
        cursor.execute(sql, params)


def verify_on_the_page(client, htmx: bool, capture) -> str:
    """Press "Verify chain"; the task runs inline once the request's transaction commits; then read
    the outcome as the page shows it (the polled status partial, or the page after the redirect)."""
    with capture(execute=True):
        if htmx:
            started = client.post(reverse("audit:verify"), HTTP_HX_REQUEST="true")
        else:
            started = client.post(reverse("audit:verify"))
    if htmx:
        assert started.status_code == 200
        assert "<html" not in started.content.decode()
        assert "queued" in started.content.decode()
        run_id = re.search(r'data-run-id="(\d+)"', started.content.decode()).group(1)
        assert f'hx-get="/audit/verify/{run_id}/"' in started.content.decode()  # polls while it runs
        response = client.get(reverse("audit:verification", args=[run_id]), HTTP_HX_REQUEST="true")
    else:
        assert started.status_code == 302
        response = client.get(started["Location"])
    assert response.status_code == 200
    return re.sub(r"\s+", " ", response.content.decode())


@pytest.mark.parametrize("htmx", [False, True])
def test_verify_reports_an_intact_chain(
    client, compliance, story, htmx, celery_eager, django_capture_on_commit_callbacks
):
    client.force_login(compliance)
    count = AuditEvent.objects.count() + 1  # the request to verify is itself recorded first

    text = verify_on_the_page(client, htmx, django_capture_on_commit_callbacks)

    assert f"Audit chain intact: {count} events verified" in text
    assert 'hx-trigger="every 1s"' not in text  # finished: the polling stops
    assert AuditEvent.objects.filter(action="audit.verification_requested", actor="cora").exists()


def test_verify_needs_a_post_with_a_csrf_token(compliance, story):
    client = Client(enforce_csrf_checks=True)
    client.force_login(compliance)

    assert client.get(reverse("audit:verify")).status_code == 405
    assert client.post(reverse("audit:verify")).status_code == 403
    page = client.get(reverse("audit:event-list")).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    assert client.post(reverse("audit:verify"), {"csrfmiddlewaretoken": token}).status_code == 302


@pytest.mark.parametrize("htmx", [False, True])
def test_verify_names_the_first_tampered_event(
    client, compliance, story, htmx, celery_eager, django_capture_on_commit_callbacks
):
    """Runs on PostgreSQL too: the tampering goes around the trigger, as a superuser's would."""
    client.force_login(compliance)
    before_b = AuditEvent.objects.filter(pk__lt=story["B"].pk).count()
    as_superuser_would(
        "UPDATE audit_auditevent SET object_repr = %s WHERE id = %s", ["nothing to see", story["B"].pk]
    )

    text = verify_on_the_page(client, htmx, django_capture_on_commit_callbacks)

    assert f"Audit chain broken at event #{story['B'].pk}:" in text
    assert f"The {before_b} events before it are intact." in text


def test_verify_on_the_page_reports_a_cut_tail(
    client, compliance, story, celery_eager, django_capture_on_commit_callbacks
):
    call_command("audit_checkpoint")
    as_superuser_would("DELETE FROM audit_auditevent WHERE id >= %s", [story["C"].pk])
    client.force_login(compliance)

    text = verify_on_the_page(client, True, django_capture_on_commit_callbacks)

    # The request to verify was recorded after the cut: the head moved on, the signed event is gone.
    assert f"Audit trail truncated: event #{story['D'].pk}, the head signed in the checkpoint" in text
    assert "is missing; events up to it were deleted" in text


def test_a_second_press_while_a_verification_is_queued_shows_the_same_run(client, compliance, story):
    client.force_login(compliance)

    first = client.post(reverse("audit:verify"), HTTP_HX_REQUEST="true").content.decode()
    second = client.post(reverse("audit:verify"), HTTP_HX_REQUEST="true").content.decode()

    run_id = re.search(r'data-run-id="(\d+)"', first).group(1)
    assert f'data-run-id="{run_id}"' in second
    assert VerificationRun.objects.count() == 1
    assert 'data-run-id="' + run_id in client.get(reverse("audit:event-list")).content.decode()


@pytest.mark.parametrize("person", ["anonymous", *READERS, *NOT_READERS])
def test_only_readers_of_the_trail_see_a_verification(request, story, person):
    run = VerificationRun.objects.create(status=VerificationRun.Status.INTACT, checked=5, total=5)
    client = signed_in(request, person)

    response = client.get(reverse("audit:verification", args=[run.pk]))

    if person == "anonymous":
        assert response.status_code == 302
    elif person in NOT_READERS:
        assert response.status_code == 403
    else:
        assert "Audit chain intact: 5 events verified" in response.content.decode()
    missing = signed_in(request, "compliance" if person == "anonymous" else person)
    assert missing.get(reverse("audit:verification", args=[run.pk + 99])).status_code in (403, 404)


# --- scale ---------------------------------------------------------------------------------------


def two_thousand_events() -> list[AuditEvent]:
    """2,000 more events, chained correctly, spread over a day."""
    start = at("2025-04-01T00:00:00")
    return append(
        *(
            {
                "at": start + timedelta(seconds=40 * n),
                "actor": f"user{n % 7}",
                "action": ["promotion.requested", "registry.card_edited", "auth.login"][n % 3],
                "object_type": "governance.promotionrequest",
                "object_id": str(n),
                "object_repr": f"request #{n}",
                "after": {"n": n},
            }
            for n in range(2_000)
        )
    )


def _queries(client, url: str) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
        if response.streaming:
            b"".join(response.streaming_content)
    assert response.status_code == 200
    return [query["sql"] for query in captured]


@pytest.mark.parametrize(
    "url",
    [
        "/audit/",
        "/audit/?action=promotion.*&date_from=2025-04-01",
        "/audit/export.csv",
        "/audit/export.json?actor=user3",
        "/api/v1/audit-events/",
        "/api/v1/audit-events/?q=request&action=auth.login",
    ],
)
def test_reads_take_the_same_queries_with_thousands_of_events(
    client, compliance, story, url, django_assert_max_num_queries
):
    client.force_login(compliance)
    _queries(client, url)  # warms caches (content types)
    few = _queries(client, url)
    assert len(two_thousand_events()) == 2_000

    with django_assert_max_num_queries(len(few)):
        many = _queries(client, url)
    assert len(many) == len(few) <= 20
    counting = [sql for sql in many if "COUNT(" in sql.upper() and "audit_auditevent" in sql]
    assert counting == []


def test_the_first_page_of_thousands_shows_the_newest_fifty(client, compliance, story):
    two_thousand_events()
    client.force_login(compliance)

    response = client.get(reverse("audit:event-list"))

    ids = listed_ids(response)
    newest = list(AuditEvent.objects.order_by("-id").values_list("id", flat=True)[:50])
    assert ids == newest
    assert response.context["older"] == newest[-1]
    exported = list(csv.reader(io.StringIO(streamed(client.get(reverse("audit:export-csv"))))))
    assert len(exported) == 2 + AuditEvent.objects.count()  # the escaping note, the header, the events


# --- the API -------------------------------------------------------------------------------------


def api_client(request, person: str) -> APIClient:
    client = APIClient()
    if person != "anonymous":
        client.force_login(request.getfixturevalue(person))
    return client


@pytest.mark.parametrize("person", ["anonymous", *READERS, *NOT_READERS])
@pytest.mark.parametrize("endpoint", ["list", "detail"])
def test_api_matrix(request, story, person, endpoint):
    client = api_client(request, person)
    url = "/api/v1/audit-events/" + (f"{story['B'].pk}/" if endpoint == "detail" else "")

    response = client.get(url)

    if person == "anonymous":
        assert response.status_code == 401
    elif person in NOT_READERS:
        assert response.status_code == 403
        assert response.json() == {
            "detail": "The audit trail is open to Compliance, Model Risk and managers."
        }
    else:
        assert response.status_code == 200
        body = response.json()
        event = body if endpoint == "detail" else next(e for e in body["results"] if e["id"] == story["B"].pk)
        assert (event["actor"], event["action"], event["object_id"]) == ("carl", "promotion.approved", "7")
        assert (event["prev_hash"], event["hash"]) == (story["B"].prev_hash, story["B"].hash)
        assert event["before"] == {"status": "pending"}
        assert event["at"] == "2025-03-01T23:30:00Z"


def test_api_detail_of_an_unknown_event_is_not_found(request, story):
    assert (
        api_client(request, "manager").get(f"/api/v1/audit-events/{story['D'].pk + 999}/").status_code == 404
    )


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("action=promotion.*", ["D", "B", "A"]),
        ("date_from=2025-03-01&date_to=2025-03-01", ["B", "A"]),
        ("object_type=governance.promotionrequest&object_id=7&actor=ruth", ["A"]),
        ("q=payments", ["D"]),
    ],
)
def test_api_filters(request, story, query, expected):
    response = api_client(request, "model_risk").get(f"/api/v1/audit-events/?{query}")

    assert [event["id"] for event in response.json()["results"]] == [story[name].pk for name in expected]


@pytest.mark.parametrize(
    ("query", "field"),
    [("date_from=March", "date_from"), ("date_from=2025-03-02&date_to=2025-03-01", "date_to")],
)
def test_api_bad_filter_names_the_field(request, story, query, field):
    response = api_client(request, "model_risk").get(f"/api/v1/audit-events/?{query}")

    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_api_pages_by_cursor_without_a_count(request):
    events = append(*({"at": at("2025-06-01T00:00:00"), "action": "test.paging"} for _ in range(60)))
    client = api_client(request, "manager")

    first = client.get("/api/v1/audit-events/?action=test.paging").json()
    second = client.get(first["next"]).json()

    assert "count" not in first
    assert [e["id"] for e in first["results"] + second["results"]] == [e.pk for e in reversed(events)]
    assert second["next"] is None


def test_schema_lists_the_audit_endpoints(request):
    paths = api_client(request, "manager").get("/api/schema/?format=json").json()["paths"]

    assert {"/api/v1/audit-events/", "/api/v1/audit-events/{id}/"} <= set(paths)
