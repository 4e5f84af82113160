"""The alerts pages: who sees which alert, who may acknowledge and resolve, filters, the banner and badge."""

import pytest
from django.test import Client
from django.urls import reverse

from apps.alerts import services
from apps.alerts.models import Alert
from apps.audit.models import AuditEvent

pytestmark = pytest.mark.django_db

LIST = reverse("alerts:list")


def _titles(response) -> set[str]:
    return {alert.title for alert in response.context["page"].object_list}


def _login(client, request, person):
    if person != "anonymous":
        client.force_login(request.getfixturevalue(person))
    return client


@pytest.mark.parametrize(
    ("person", "expected"),
    [
        ("data_scientist", {"fraud", "portal", "old"}),  # the team's model and the portal
        ("other_data_scientist", {"payments", "portal"}),
        ("outsider", {"portal"}),
        ("ml_engineer", {"fraud", "payments", "portal", "old"}),
        ("manager", {"fraud", "payments", "portal", "old"}),
        ("admin_user", {"fraud", "payments", "portal", "old"}),
    ],
)
def test_the_list_shows_the_alerts_of_the_models_a_person_sees(client, request, story, person, expected):
    response = _login(client, request, person).get(LIST)
    assert response.status_code == 200
    assert _titles(response) == {story[name].title for name in expected}


def test_anonymous_visitors_are_sent_to_log_in(client, story):
    for url in (LIST, reverse("alerts:detail", args=[story["portal"].pk])):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("accounts:login"))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("state=open", {"fraud", "payments", "portal"}),
        ("state=resolved", {"old"}),
        ("state=firing&severity=page", {"fraud"}),
        ("severity=ticket", {"payments", "old"}),
        ("source=monitoring.drift", {"payments"}),
        ("model=fraud-scorer", {"fraud", "old"}),
        ("model=fraud-scorer&state=open", {"fraud"}),
        ("model=no-such-model", set()),
    ],
)
def test_filters(client, manager, story, query, expected):
    client.force_login(manager)
    response = client.get(f"{LIST}?{query}")
    assert response.status_code == 200
    assert _titles(response) == {story[name].title for name in expected}


@pytest.mark.parametrize(
    ("query", "field"),
    [("state=exploded", "state"), ("severity=urgent", "severity"), ("model=bad%20name", "model"),
     ("source=a%00b", "source"), ("model=%00", "model")],
)  # fmt: skip
def test_a_bad_filter_is_a_form_error_and_left_out(client, manager, story, query, field):
    client.force_login(manager)
    response = client.get(f"{LIST}?{query}")
    assert response.status_code == 400
    assert field in response.context["form"].errors
    assert len(_titles(response)) == 4  # the other filters (none) still apply
    assert b"This filter was left out." in response.content


def test_the_list_is_paginated_and_the_filters_follow_the_pages(client, manager, db):
    for number in range(30):
        services.alert_raise(source="portal.test", key=f"k{number}", severity="info", title=f"Alert {number}")
    client.force_login(manager)
    first = client.get(f"{LIST}?source=portal.test")
    assert len(first.context["page"].object_list) == 25
    assert b"source=portal.test&amp;page=2" in first.content
    second = client.get(f"{LIST}?source=portal.test&page=2")
    assert len(second.context["page"].object_list) == 5


def test_empty_states(client, manager, db):
    client.force_login(manager)
    response = client.get(LIST)
    assert b"No alert has been raised" in response.content
    response = client.get(f"{LIST}?state=firing")
    assert b"No alert matches these filters" in response.content


@pytest.mark.parametrize(
    ("person", "status"),
    [("data_scientist", 200), ("other_data_scientist", 404), ("outsider", 404), ("manager", 200)],
)
def test_an_alert_page_is_seen_by_those_who_see_its_model(client, request, story, person, status):
    response = _login(client, request, person).get(reverse("alerts:detail", args=[story["fraud"].pk]))
    assert response.status_code == status
    if status == 200:
        assert b"Circuit breaker open: fraud-scorer v1" in response.content


@pytest.mark.parametrize(
    ("person", "status", "state"),
    [
        ("anonymous", 302, "firing"),  # to log in
        ("other_data_scientist", 404, "firing"),  # may not see it
        ("data_scientist", 403, "firing"),  # sees it, may not act
        ("compliance", 403, "firing"),
        ("ml_engineer", 302, "acknowledged"),
        ("model_risk", 302, "acknowledged"),
        ("manager", 302, "acknowledged"),
        ("admin_user", 302, "acknowledged"),
    ],
)
def test_who_may_acknowledge(client, request, story, person, status, state):
    alert = story["fraud"]
    response = _login(client, request, person).post(
        reverse("alerts:acknowledge", args=[alert.pk]), {"note": "looking"}
    )
    assert response.status_code == status
    alert.refresh_from_db()
    assert alert.state == state
    if state == "acknowledged":
        assert response["Location"] == reverse("alerts:detail", args=[alert.pk])
        assert alert.note == "looking"


@pytest.mark.parametrize(
    ("person", "status", "state"),
    [
        ("anonymous", 302, "firing"),
        ("other_data_scientist", 404, "firing"),
        ("data_scientist", 403, "firing"),
        ("ml_engineer", 302, "resolved"),
        ("manager", 302, "resolved"),
    ],
)
def test_who_may_resolve(client, request, story, person, status, state):
    alert = story["fraud"]
    response = _login(client, request, person).post(reverse("alerts:resolve", args=[alert.pk]))
    assert response.status_code == status
    alert.refresh_from_db()
    assert alert.state == state


def test_the_buttons_show_to_responders_only(client, data_scientist, manager, story):
    url = reverse("alerts:detail", args=[story["fraud"].pk])
    client.force_login(data_scientist)
    assert b'data-testid="acknowledge"' not in client.get(url).content
    client.force_login(manager)
    content = client.get(url).content
    assert b'data-testid="acknowledge"' in content
    assert b'data-testid="resolve"' in content
    assert b"csrfmiddlewaretoken" in content


def test_acknowledging_needs_the_csrf_token(manager, story):
    client = Client(enforce_csrf_checks=True)
    client.force_login(manager)
    response = client.post(reverse("alerts:acknowledge", args=[story["fraud"].pk]))
    assert response.status_code == 403
    assert Alert.objects.get(pk=story["fraud"].pk).state == "firing"


def test_acknowledging_twice_says_so(client, manager, ml_engineer, story):
    alert = story["fraud"]
    services.alert_acknowledge(alert=alert, actor=ml_engineer)
    client.force_login(manager)
    response = client.post(reverse("alerts:acknowledge", args=[alert.pk]))
    assert response.status_code == 409
    assert b"acknowledged already" in response.content
    assert Alert.objects.get(pk=alert.pk).acknowledged_by == ml_engineer


@pytest.mark.parametrize("note", ["x" * 2001, "a\x00b"])
def test_a_bad_note_is_a_form_error(client, manager, story, note):
    client.force_login(manager)
    response = client.post(reverse("alerts:acknowledge", args=[story["fraud"].pk]), {"note": note})
    assert response.status_code == 400
    assert "note" in response.context["form"].errors
    assert Alert.objects.get(pk=story["fraud"].pk).state == "firing"


def test_the_detail_page_shows_the_timeline(client, manager, story):
    alert = story["fraud"]
    client.force_login(manager)
    client.post(reverse("alerts:acknowledge", args=[alert.pk]), {"note": "restarting the pods"})
    content = client.get(reverse("alerts:detail", args=[alert.pk])).content.decode()
    assert "raised by system" in content
    assert f"acknowledged by {manager.username}: <q>restarting the pods</q>" in content
    assert AuditEvent.objects.filter(action="alerts.acknowledged", actor=manager.username).exists()


def test_the_banner_shows_page_alerts_still_firing_to_those_who_see_them(
    client, data_scientist, other_data_scientist, manager, story
):
    home = reverse("home")
    client.force_login(data_scientist)
    response = client.get(home)
    assert [a.title for a in response.context["paging_alerts"]] == ["Circuit breaker open: fraud-scorer v1"]
    assert b'data-testid="paging-banner"' in response.content
    assert response.context["open_alerts_count"] == 2  # fraud's page and the portal's info

    client.force_login(other_data_scientist)  # fraud-scorer is another team's model
    response = client.get(home)
    assert b'data-testid="paging-banner"' not in response.content
    assert response.context["open_alerts_count"] == 2  # payments' ticket and the portal's info

    services.alert_acknowledge(alert=story["fraud"], actor=manager)  # someone is on it
    client.force_login(data_scientist)
    response = client.get(home)
    assert b'data-testid="paging-banner"' not in response.content
    assert b'data-testid="open-alerts-count"' in response.content


def test_the_badge_and_banner_take_one_query_beyond_the_permission_checks(client, manager, story):
    """One read of the alerts (a window count) gives both, however many alerts are open."""
    from django.db import connection
    from django.test import RequestFactory
    from django.test.utils import CaptureQueriesContext

    from apps.accounts.roles import roles_of
    from apps.alerts.context import alerts
    from apps.registry.selectors import models_visible_to

    for number in range(30):
        services.alert_raise(source="portal.test", key=f"k{number}", severity="page", title=f"Alert {number}")
    request = RequestFactory().get("/")
    request.user = manager
    roles_of(manager), list(models_visible_to(manager))  # what the navigation and a page read already
    with CaptureQueriesContext(connection) as captured:
        context = alerts(request)
    assert len(captured) == 1
    assert context["open_alerts_count"] == 33
    assert len(context["paging_alerts"]) == 20
