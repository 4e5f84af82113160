"""The home page's cards: each role sees what needs it, and nothing of another team's or another person's."""

import pytest
from django.urls import reverse

from apps.accounts.home import _CARDS, card_register, cards_for
from apps.governance import services
from apps.registry.models import Stage
from apps.registry.selectors import version_of
from tests.conftest import PEOPLE


def _request(actor, model, number, to_stage):
    return services.promotion_request_create(
        actor=actor, version=version_of(model.name, number), to_stage=to_stage, justification="ready"
    )


@pytest.fixture
def requests_of_two_teams(fraud_model, other_model, data_scientist, other_data_scientist):
    """fraud-scorer: v4 to Candidate (DS Lead), v3 to Staging (ML Engineer), v2 to Production (Model Risk and
    Compliance), all asked by dana; payments-anomaly v1 to Candidate, asked by omar of the other team."""
    return {
        "candidate": _request(data_scientist, fraud_model, 4, Stage.CANDIDATE),
        "staging": _request(data_scientist, fraud_model, 3, Stage.STAGING),
        "production": _request(data_scientist, fraud_model, 2, Stage.PRODUCTION),
        "other_team": _request(other_data_scientist, other_model, 1, Stage.CANDIDATE),
    }


def _card_templates(response) -> list[str]:
    return [card["template"] for card in response.context["cards"]]


def _decisions(response) -> set[int]:
    card = next(c for c in response.context["cards"] if c["template"].endswith("_pending_decisions.html"))
    return {promotion.pk for promotion in card["context"]["decisions"]}


@pytest.mark.parametrize(
    ("person", "waiting"),
    [
        ("ds_lead", {"candidate", "other_team"}),  # leads read every team's models and decide on them
        ("ml_engineer", {"staging"}),
        ("model_risk", {"production"}),
        ("compliance", {"production"}),
    ],
)
def test_approver_sees_the_decisions_waiting_for_their_role(
    client, request, requests_of_two_teams, person, waiting
):
    client.force_login(request.getfixturevalue(person))
    response = client.get(reverse("home"))
    assert _decisions(response) == {requests_of_two_teams[name].pk for name in waiting}
    html = response.content.decode()
    assert 'data-testid="card-pending-decisions"' in html
    assert html.count('data-testid="pending-decision"') == len(waiting)
    for name in waiting:
        assert reverse("governance:request-detail", args=[requests_of_two_teams[name].pk]) in html


def test_data_scientist_sees_own_open_requests_and_not_another_teams(
    client, data_scientist, requests_of_two_teams
):
    client.force_login(data_scientist)
    response = client.get(reverse("home"))
    html = response.content.decode()
    assert "governance/home/_pending_decisions.html" not in _card_templates(response)
    assert html.count('data-testid="open-request"') == 3
    assert "payments-anomaly" not in html
    own = reverse("governance:request-detail", args=[requests_of_two_teams["candidate"].pk])
    assert own in html
    assert reverse("governance:request-detail", args=[requests_of_two_teams["other_team"].pk]) not in html


def test_other_teams_data_scientist_sees_only_their_request(
    client, other_data_scientist, requests_of_two_teams
):
    client.force_login(other_data_scientist)
    html = client.get(reverse("home")).content.decode()
    assert html.count('data-testid="open-request"') == 1
    assert "payments-anomaly" in html
    assert "fraud-scorer" not in html


def test_decided_request_moves_from_open_to_decided_this_week(
    client, data_scientist, ds_lead, requests_of_two_teams
):
    services.promotion_reject(actor=ds_lead, request=requests_of_two_teams["candidate"], comment="not yet")
    client.force_login(data_scientist)
    html = client.get(reverse("home")).content.decode()
    assert html.count('data-testid="open-request"') == 2
    assert html.count('data-testid="decided-request"') == 1
    assert 'data-status="rejected"' in html


@pytest.mark.parametrize("person", ["manager", "outsider"])
def test_people_who_neither_approve_nor_request_see_no_governance_card(
    client, request, requests_of_two_teams, person
):
    client.force_login(request.getfixturevalue(person))
    templates = _card_templates(client.get(reverse("home")))
    assert not [t for t in templates if t.startswith("governance/")]


@pytest.mark.parametrize("person", PEOPLE)
def test_empty_cards_say_so(client, request, person):
    client.force_login(request.getfixturevalue(person))
    html = client.get(reverse("home")).content.decode()
    if person in {"ds_lead", "ml_engineer", "model_risk", "compliance"}:
        assert 'data-testid="no-pending-decisions"' in html
    if person in {"data_scientist", "ds_lead"}:
        assert 'data-testid="no-open-requests"' in html


def test_cards_render_in_order_and_none_hides_a_card(client, manager, monkeypatch):
    monkeypatch.setattr("apps.accounts.home._CARDS", dict(_CARDS))
    card_register(template="accounts/tests/_late_card.html", context=lambda user: {"word": "late"}, order=999)
    card_register(
        template="accounts/tests/_early_card.html", context=lambda user: {"word": "early"}, order=-1
    )
    card_register(template="accounts/tests/_hidden_card.html", context=lambda user: None, order=0)
    templates = [card["template"] for card in cards_for(manager)]
    assert templates.index("accounts/tests/_early_card.html") < templates.index(
        "accounts/tests/_late_card.html"
    )
    assert "accounts/tests/_hidden_card.html" not in templates


def test_home_page_queries_are_bounded(
    client, ds_lead, data_scientist, fraud_model, requests_of_two_teams, django_assert_max_num_queries
):
    # A lead both approves and requests: both cards, and the queries do not grow with the requests.
    for person in (ds_lead, data_scientist):
        client.force_login(person)
        with django_assert_max_num_queries(25):
            assert client.get(reverse("home")).status_code == 200
