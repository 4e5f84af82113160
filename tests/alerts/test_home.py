"""The home page's "Open alerts" card: for those who respond, the open alerts they see, urgent first."""

import pytest
from django.urls import reverse

from apps.alerts import services

pytestmark = pytest.mark.django_db


def _card(response):
    cards = response.context["cards"]
    return next((c for c in cards if c["template"] == "alerts/home/_open_alerts.html"), None)


@pytest.mark.parametrize("person", ["ml_engineer", "model_risk", "manager"])
def test_responders_see_the_open_alerts_firing_pages_first(client, request, story, person):
    client.force_login(request.getfixturevalue(person))
    response = client.get(reverse("home"))
    card = _card(response)
    assert [a.title for a in card["context"]["open_alerts"]] == [
        story["fraud"].title,  # firing page
        story["payments"].title,  # firing ticket
        story["portal"].title,  # firing info
    ]
    assert card["context"]["open_alerts_total"] == 3
    assert b'data-testid="card-open-alerts"' in response.content


@pytest.mark.parametrize("person", ["data_scientist", "compliance", "outsider"])
def test_others_get_no_alerts_card(client, request, story, person):
    client.force_login(request.getfixturevalue(person))
    response = client.get(reverse("home"))
    assert _card(response) is None
    assert b'data-testid="card-open-alerts"' not in response.content


def test_an_acknowledged_alert_comes_after_the_firing_ones(client, manager, story):
    services.alert_acknowledge(alert=story["fraud"], actor=manager)
    client.force_login(manager)
    titles = [a.title for a in _card(client.get(reverse("home")))["context"]["open_alerts"]]
    assert titles[-1] == story["fraud"].title


def test_the_card_shows_an_empty_state(client, manager, db):
    client.force_login(manager)
    response = client.get(reverse("home"))
    assert _card(response)["context"] == {"open_alerts": [], "open_alerts_total": 0}
    assert b'data-testid="no-open-alerts"' in response.content


def test_the_card_lists_five_and_links_to_the_rest(client, manager, db):
    for number in range(8):
        services.alert_raise(source="portal.test", key=f"k{number}", severity="ticket", title=f"A{number}")
    client.force_login(manager)
    response = client.get(reverse("home"))
    assert len(_card(response)["context"]["open_alerts"]) == 5
    assert b"All 8 open alerts" in response.content
