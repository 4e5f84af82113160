"""The SLO dashboard (permissions, figures built on the server, notices, empty state) and the home card."""

import json
import math
from datetime import timedelta

import pytest
from django.urls import reverse

from apps.monitoring.models import SLOMinute
from apps.monitoring.selectors_slo import objectives_default, slo_buckets
from apps.monitoring.services.slo import slo_evaluate, slo_objective_set
from apps.monitoring.slo_charts import burn_rates
from tests.conftest import UserFactory

from .slo_fixtures import MINUTE, NOW, every_minute, logs

DASHBOARD = "monitoring:slo-dashboard"


@pytest.fixture(autouse=True)
def _fixed_clock(monkeypatch):
    """The pages measure up to "now": the tests' now (the clock is an edge we do not own)."""
    monkeypatch.setattr("apps.monitoring.views_slo.timezone.now", lambda: NOW)


@pytest.fixture
def burning(fraud_model):
    """fraud-scorer with a month of quiet traffic and an hour at 10% errors, evaluated (a page fires)."""
    SLOMinute.objects.create(
        model=fraud_model,
        minute=MINUTE - timedelta(days=2),
        requests=1_000_000,
        errors=0,
        slow=0,
        fallbacks=0,
    )
    logs(
        fraud_model, at=MINUTE - timedelta(days=3), requests=10, latency=20.0
    )  # for the p99 and the versions
    every_minute(fraud_model, minutes=60, requests=20, errors=2)
    slo_evaluate(now=NOW)
    return fraud_model


def _figure(html: str, element_id: str) -> dict:
    start = html.index(f'<script id="{element_id}" type="application/json">') + len(
        f'<script id="{element_id}" type="application/json">'
    )
    return json.loads(html[start : html.index("</script>", start)])


@pytest.mark.parametrize(
    ("person", "expected"),
    [
        (None, 302),
        ("outsider", 404),
        ("other_data_scientist", 404),  # another team's model: not even its existence
        ("data_scientist", 200),
        ("ml_engineer", 200),
        ("manager", 200),
        ("model_risk", 200),
    ],
)
def test_dashboard_is_visible_to_whoever_sees_the_model(client, request, fraud_model, person, expected):
    if person:
        client.force_login(request.getfixturevalue(person))
    response = client.get(reverse(DASHBOARD, args=[fraud_model.name]))
    assert response.status_code == expected
    if expected == 302:
        assert response.url.startswith(reverse("accounts:login"))


@pytest.mark.parametrize("path", ["/monitoring/no-such-model/slo/", "/monitoring/fraud%00scorer/slo/"])
def test_unknown_or_hostile_model_name_is_a_404(client, manager, fraud_model, path):
    client.force_login(manager)
    assert client.get(path).status_code == 404


def test_empty_state_without_traffic(client, manager, fraud_model):
    client.force_login(manager)
    html = client.get(reverse(DASHBOARD, args=[fraud_model.name])).content.decode()
    assert 'data-testid="slo-empty"' in html
    assert "plotly.min.js" not in html
    assert 'data-figure="' not in html


def test_dashboard_shows_budgets_burn_rates_and_the_page(client, manager, burning):
    client.force_login(manager)
    response = client.get(reverse(DASHBOARD, args=[burning.name]))
    html = response.content.decode()
    report = response.context["report"]
    # 1,001,210 requests, 120 errors: availability 1 - 120/1001210; 1001.21 errors allowed, 120 spent.
    assert report.requests == 1_001_210
    assert report.errors == 120
    assert 'data-testid="slo-alert" data-level="page"' in html
    assert f"{(1 - 120 / 1_001_210) * 100:.3f}%" in html
    assert f"{(1 - 120 / 1001.21) * 100:.1f}%" in html  # error budget remaining
    assert html.count('data-state="firing"') == 2  # both page rules of availability
    assert "static/vendor/plotly/plotly.min.js" in html
    assert "cdn" not in html.lower()
    # The exact p99 of the month: 1200 of the 1210 requests took 10 ms, so the 99th percentile is 10 ms.
    assert response.context["p99_ms"] == pytest.approx(10.0)
    assert [row for row in response.context["versions"]] == [1]


def test_availability_chart_holds_the_hourly_figures_and_the_target(client, manager, burning):
    client.force_login(manager)
    html = client.get(reverse(DASHBOARD, args=[burning.name])).content.decode()
    figure = _figure(html, "figure-availability")
    availability = figure["data"][0]
    assert availability["name"] == "availability %"
    # The last 60 hourly points... the newest hour holds the incident: 2 errors in 20 a minute -> 90%.
    assert availability["y"][-1] == pytest.approx(90.0)
    assert availability["y"][-30] is None  # an hour without traffic is a gap, not 100%
    target = figure["data"][2]
    assert target["y"] == [pytest.approx(99.9)] * 2


def test_burn_rate_chart_and_burndown(client, manager, burning):
    client.force_login(manager)
    response = client.get(reverse(DASHBOARD, args=[burning.name]))
    html = response.content.decode()
    burn = _figure(html, "figure-burn")
    bars = {trace["name"]: dict(zip(trace["x"], trace["y"], strict=True)) for trace in burn["data"]}
    assert bars["availability burn rate"]["5 min"] == pytest.approx(100.0)
    assert bars["availability burn rate"]["1 h"] == pytest.approx(100.0)
    assert bars["latency burn rate"]["1 h"] is None  # a burn of 0 has no bar on a log axis
    assert list(bars["14.4x: page"].values()) == [14.4, 14.4]
    assert list(bars["1x: ticket"].values()) == [1.0, 1.0]
    burndown = _figure(html, "figure-burndown")
    error_budget = burndown["data"][0]
    assert error_budget["y"][-1] == pytest.approx((1 - 120 / 1001.21) * 100)
    assert max(error_budget["y"]) == pytest.approx(100.0)


def test_low_traffic_notice(client, manager, fraud_model):
    logs(fraud_model, at=MINUTE - timedelta(minutes=2), requests=3, errors=1)
    slo_evaluate(now=NOW)
    client.force_login(manager)
    html = client.get(reverse(DASHBOARD, args=[fraud_model.name])).content.decode()
    assert 'data-testid="low-traffic"' in html
    assert 'data-testid="slo-alert"' not in html
    assert 'data-state="firing"' not in html


def test_dashboard_names_the_models_own_objectives(client, manager, ml_engineer, fraud_model):
    slo_objective_set(actor=ml_engineer, model=fraud_model, availability=0.995, latency_ms=250.0)
    logs(fraud_model, at=MINUTE, requests=1)
    slo_evaluate(now=NOW)
    client.force_login(manager)
    html = client.get(reverse(DASHBOARD, args=[fraud_model.name])).content.decode()
    assert "v1 of this model" in html
    assert "99.5%" in html
    assert "250 ms" in html


def test_burn_rates_without_traffic_are_not_numbers(fraud_model):
    rates = burn_rates(slo_buckets(fraud_model, now=NOW), objectives_default().objectives)
    assert all(math.isnan(row["burn"]) and row["requests"] == 0 for row in rates["availability"])


# --- the home card -------------------------------------------------------------------------------------


def _slo_card(client):
    response = client.get(reverse("home"))
    cards = [
        card for card in response.context["cards"] if card["template"] == "monitoring/partials/_card_slo.html"
    ]
    return response, cards[0]["context"] if cards else None


@pytest.mark.parametrize("person", ["manager", "ml_engineer"])
def test_watchers_see_the_budget_and_burn_of_each_production_model(
    client, request, burning, other_model, person
):
    client.force_login(request.getfixturevalue(person))
    response, card = _slo_card(client)
    assert [row["model"].name for row in card["slo_rows"]] == ["fraud-scorer"]  # the only production model
    html = response.content.decode()
    assert 'data-model="fraud-scorer"' in html
    assert "paging" in html
    assert f"{(1 - 120 / 1001.21) * 100:.1f}%" in html
    assert reverse(DASHBOARD, args=["fraud-scorer"]) in html


@pytest.mark.parametrize("person", ["data_scientist", "ds_lead", "model_risk", "compliance", "outsider"])
def test_others_have_no_slo_card(client, request, burning, person):
    client.force_login(request.getfixturevalue(person))
    assert _slo_card(client)[1] is None


def test_card_says_not_evaluated_yet_and_no_production_model(client, manager, fraud_model):
    client.force_login(manager)
    response, card = _slo_card(client)
    assert card["slo_rows"][0]["status"] is None
    assert "not evaluated yet" in response.content.decode()
    fraud_model.versions.update(stage="archived")
    response, card = _slo_card(client)
    assert card["slo_rows"] == []
    assert 'data-testid="no-slo"' in response.content.decode()


def test_home_page_queries_do_not_grow_with_models(client, manager, burning, django_assert_max_num_queries):
    from apps.registry.services import model_ensure
    from tests.registry.fixtures import make_version

    client.force_login(manager)
    team = burning.team
    owner = UserFactory()
    for index in range(15):
        model = model_ensure(name=f"model-{index}", team=team, owners=[owner])
        make_version(model, 1, stage="production")
    with django_assert_max_num_queries(25):
        response = client.get(reverse("home"))
    assert len(_slo_card(client)[1]["slo_rows"]) == 16
    assert response.status_code == 200


def test_dashboard_lists_the_open_slo_alerts_of_the_model(client, manager, burning):
    from apps.alerts.models import Alert

    client.force_login(manager)
    html = client.get(reverse(DASHBOARD, args=[burning.name])).content.decode()
    alert = Alert.objects.get(source="slo")
    assert html.count('data-testid="slo-open-alert"') == 1
    assert reverse("alerts:detail", args=[alert.pk]) in html


def test_model_page_links_to_its_slo_dashboard(client, manager, fraud_model):
    client.force_login(manager)
    page = client.get(reverse("registry:model-detail", args=[fraud_model.name])).content.decode()
    assert reverse(DASHBOARD, args=[fraud_model.name]) in page


def test_dashboard_of_a_model_never_in_production_says_so(client, manager, other_model):
    client.force_login(manager)
    html = client.get(reverse(DASHBOARD, args=[other_model.name])).content.decode()
    assert "No version in Production." in html
    assert 'data-testid="slo-empty"' in html


def test_dashboard_queries_do_not_grow_with_traffic(client, manager, burning, django_assert_max_num_queries):
    every_minute(burning, minutes=120, end=MINUTE - timedelta(hours=2), requests=5, version=2)
    slo_evaluate(now=NOW + timedelta(minutes=1))
    client.force_login(manager)
    with django_assert_max_num_queries(25):
        response = client.get(reverse(DASHBOARD, args=[burning.name]))
    assert sorted(response.context["versions"]) == [1, 2]
