"""The deployments pages: who sees which rollouts and which controls (and nothing changes when refused),
the list's filters and pages, a rollout's live part (htmx polling that stops when finished), its analysis
table and its chart from the prediction logs."""

import json
import re
import uuid
from datetime import timedelta
from html import unescape

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.deployments.models import Rollout, RolloutEvent
from apps.deployments.selectors import policy_in_force
from apps.registry.models import ModelVersion
from apps.serving.models import PredictionLog
from tests.deployments.page_fixtures import (  # noqa: F401  fixtures
    canary_fixture,
    make_canary,
    other_canary_fixture,
    record_move,
)

pytestmark = pytest.mark.django_db
State = Rollout.State

EVERYONE = [
    "data_scientist",
    "ds_lead",
    "ml_engineer",
    "model_risk",
    "compliance",
    "manager",
    "other_data_scientist",
    "outsider",
]
SEE_FRAUD = ["data_scientist", "ds_lead", "ml_engineer", "model_risk", "compliance", "manager"]
CONTROLS = ["pause-form", "promote-form", "abort-form"]


def squash(html: str) -> str:
    """The text of an HTML fragment, scripts and tags dropped, entities decoded, whitespace collapsed."""
    html = re.sub(r"<script.*?</script>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def text_of(response) -> str:
    return squash(response.content.decode())


def listed(response) -> list[int]:
    return [rollout.pk for rollout in response.context["page"].object_list]


def events_of(rollout) -> int:
    return RolloutEvent.objects.filter(rollout=rollout).count()


def finished_rollouts(model, count: int, *, state=State.ABORTED, kind=Rollout.Kind.CANARY) -> list[Rollout]:
    """Rollouts that ended (any number of them may exist per model), oldest first."""
    candidate = ModelVersion.objects.get(model=model, version=2)
    policy = policy_in_force(None)
    return [
        Rollout.objects.create(model=model, candidate=candidate, kind=kind, policy=policy, state=state)
        for _ in range(count)
    ]


# --- navigation and the list --------------------------------------------------------------------------


def test_deployments_is_in_the_navigation_of_every_signed_in_person(client, outsider):
    client.force_login(outsider)
    labels = [item["label"] for item in client.get(reverse("home")).context["nav_items"]]
    assert "Deployments" in labels


def test_the_list_asks_anonymous_visitors_to_log_in(client):
    response = client.get(reverse("deployments:rollout-list"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


@pytest.mark.parametrize(
    ("person", "sees"),
    [
        ("data_scientist", ["canary"]),
        ("ml_engineer", ["canary", "other_canary"]),
        ("manager", ["canary", "other_canary"]),
        ("other_data_scientist", ["other_canary"]),
        ("outsider", []),
    ],
)
def test_each_person_lists_the_rollouts_of_the_models_they_may_see(
    client, request, canary, other_canary, person, sees
):
    client.force_login(request.getfixturevalue(person))
    response = client.get(reverse("deployments:rollout-list"))
    assert response.status_code == 200
    assert sorted(listed(response)) == sorted(request.getfixturevalue(name).pk for name in sees)


def test_an_empty_list_says_how_deployments_start(client, outsider):
    client.force_login(outsider)
    response = client.get(reverse("deployments:rollout-list"))
    assert "No deployment yet" in text_of(response)


def test_the_list_filters_by_model_state_and_kind(client, ml_engineer, canary, other_canary):
    staging = finished_rollouts(canary.model, 1, state=State.STAGED, kind=Rollout.Kind.STAGING)[0]
    client.force_login(ml_engineer)
    url = reverse("deployments:rollout-list")
    assert listed(client.get(url, {"model": "fraud-scorer"})) == [staging.pk, canary.pk]
    assert listed(client.get(url, {"kind": "staging"})) == [staging.pk]
    assert sorted(listed(client.get(url, {"state": "active"}))) == sorted([canary.pk, other_canary.pk])
    assert listed(client.get(url, {"state": "staged", "model": "fraud-scorer"})) == [staging.pk]
    response = client.get(url, {"state": "succeeded"})
    assert listed(response) == []
    assert "No deployment matches these filters" in text_of(response)


def test_a_model_the_person_may_not_see_is_no_filter_and_leaks_nothing(client, data_scientist, other_canary):
    client.force_login(data_scientist)
    response = client.get(reverse("deployments:rollout-list"), {"model": "payments-anomaly"})
    assert response.status_code == 400
    assert listed(response) == []
    assert "This filter was left out" in text_of(response)


@pytest.mark.parametrize("value", ["x\x00y", "%00", "x" * 5000, "' OR 1=1--", "модель-😀\u202e"])
def test_hostile_filter_values_are_form_errors_not_server_errors(client, ml_engineer, canary, value):
    client.force_login(ml_engineer)
    response = client.get(
        reverse("deployments:rollout-list"), {"model": value, "state": value, "kind": value, "page": value}
    )
    assert response.status_code == 400
    assert set(response.context["form"].errors) == {"model", "state", "kind"}
    assert listed(response) == [canary.pk]  # every bad filter left out


def test_the_list_is_paginated_and_page_links_keep_the_filters(client, ml_engineer, fraud_model):
    rollouts = finished_rollouts(fraud_model, 30)
    client.force_login(ml_engineer)
    url = reverse("deployments:rollout-list")
    first = client.get(url, {"model": "fraud-scorer"})
    assert listed(first) == [r.pk for r in reversed(rollouts)][:25]
    assert "?model=fraud-scorer&amp;page=2" in first.content.decode()
    second = client.get(url, {"model": "fraud-scorer", "page": 2})
    assert listed(second) == [r.pk for r in reversed(rollouts)][25:]


# --- a rollout ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("person", EVERYONE)
def test_a_rollout_page_is_seen_by_those_who_see_its_model_and_controlled_by_ml_engineers(
    client, request, canary, person
):
    client.force_login(request.getfixturevalue(person))
    response = client.get(reverse("deployments:rollout-detail", args=[canary.pk]))
    if person not in SEE_FRAUD:
        assert response.status_code == 404
        return
    assert response.status_code == 200
    html = response.content.decode()
    for control in CONTROLS:
        assert (f'data-testid="{control}"' in html) == (person == "ml_engineer"), control
    assert 'data-testid="resume-form"' not in html  # only a paused rollout resumes


def test_anonymous_visitors_are_sent_to_log_in_from_a_rollout_and_its_parts(client, canary):
    for name in ("rollout-detail", "rollout-live", "rollout-controls", "rollout-chart"):
        response = client.get(reverse(f"deployments:{name}", args=[canary.pk]))
        assert response.status_code == 302, name


@pytest.mark.parametrize("name", ["rollout-live", "rollout-controls", "rollout-chart"])
def test_the_parts_of_another_teams_rollout_are_not_found(client, data_scientist, other_canary, name):
    client.force_login(data_scientist)
    assert client.get(reverse(f"deployments:{name}", args=[other_canary.pk])).status_code == 404


def test_a_paused_rollout_offers_resume_promote_and_abort_but_not_pause(client, ml_engineer, fraud_model):
    rollout = make_canary(fraud_model, state=State.PAUSED)
    client.force_login(ml_engineer)
    html = client.get(reverse("deployments:rollout-detail", args=[rollout.pk])).content.decode()
    assert 'data-testid="resume-form"' in html
    assert 'data-testid="promote-form"' in html
    assert 'data-testid="abort-form"' in html
    assert 'data-testid="pause-form"' not in html


def test_a_finished_rollout_offers_no_control(client, ml_engineer, fraud_model):
    rollout = make_canary(fraud_model, state=State.ABORTING)
    client.force_login(ml_engineer)
    html = client.get(reverse("deployments:rollout-detail", args=[rollout.pk])).content.decode()
    assert not any(f'data-testid="{control}"' in html for control in [*CONTROLS, "resume-form"])


@pytest.mark.parametrize(
    ("person", "offered"), [("ml_engineer", True), ("model_risk", True), ("manager", False)]
)
def test_a_succeeded_rollout_offers_the_emergency_rollback_to_ml_engineers_and_model_risk(
    client, request, fraud_model, person, offered
):
    rollout = record_move(make_canary(fraud_model, state=State.PROMOTING), State.SUCCEEDED)
    client.force_login(request.getfixturevalue(person))
    html = client.get(reverse("deployments:rollout-detail", args=[rollout.pk])).content.decode()
    assert ('data-testid="emergency-rollback-link"' in html) is offered


def test_the_page_shows_progress_steps_analysis_and_timeline(client, data_scientist, canary):
    client.force_login(data_scientist)
    response = client.get(reverse("deployments:rollout-detail", args=[canary.pk]))
    text = text_of(response)
    assert "State: Analysing" in text
    assert "5 %" in response.content.decode()
    steps = [(step.weight_bp, step.status) for step in response.context["detail"].steps]
    assert steps == [(500, "current"), (10_000, "pending")]
    rows = {row["metric"]: row for row in response.context["measurements"]}
    assert (rows["error_rate"]["value"], rows["error_rate"]["threshold"]) == ("0.05 %", "0.1 %")
    assert (rows["latency_p99_ms"]["value"], rows["latency_p99_ms"]["verdict"]) == ("180 ms", "failed")
    assert "400 / 7600" in text
    assert [event.to_state for event in response.context["events"]] == ["analysing", "canary"]


def test_the_live_part_polls_while_the_rollout_is_active(client, data_scientist, canary):
    client.force_login(data_scientist)
    response = client.get(reverse("deployments:rollout-live", args=[canary.pk]), {"seen": canary.revision})
    html = response.content.decode()
    assert 'hx-trigger="every 2s, rollout-acted from:body"' in html
    assert f"?seen={canary.revision}" in html
    assert "HX-Trigger-After-Settle" not in response


def test_the_live_part_stops_polling_and_tells_the_page_when_the_rollout_finished(
    client, data_scientist, canary
):
    seen = canary.revision
    record_move(record_move(canary, State.ABORTING), State.ABORTED)
    client.force_login(data_scientist)
    response = client.get(reverse("deployments:rollout-live", args=[canary.pk]), {"seen": seen})
    html = response.content.decode()
    assert 'hx-trigger="rollout-acted from:body"' in html
    assert "every 2s" not in html
    assert 'data-state="aborted"' in html
    assert json.loads(response["HX-Trigger-After-Settle"]) == {"rollout-moved": {}}


def test_a_move_that_ends_in_the_same_state_still_tells_the_page(client, data_scientist, canary):
    """A step passed (analysing -> canary -> analysing at the next weight) in one tick: same state name."""
    seen = canary.revision
    record_move(record_move(canary, State.CANARY), State.ANALYSING)
    client.force_login(data_scientist)
    response = client.get(reverse("deployments:rollout-live", args=[canary.pk]), {"seen": seen})
    assert json.loads(response["HX-Trigger-After-Settle"]) == {"rollout-moved": {}}
    unchanged = client.get(reverse("deployments:rollout-live", args=[canary.pk]), {"seen": canary.revision})
    assert "HX-Trigger-After-Settle" not in unchanged


def test_a_hostile_seen_value_is_only_a_revision_that_differs(client, data_scientist, canary):
    client.force_login(data_scientist)
    response = client.get(reverse("deployments:rollout-live", args=[canary.pk]), {"seen": "x\x00y"})
    assert response.status_code == 200
    assert "rollout-moved" in response["HX-Trigger-After-Settle"]


def test_an_id_past_any_integer_column_is_not_found(client, ml_engineer):
    client.force_login(ml_engineer)
    huge = "9" * 30
    for path in ("", "live/", "controls/", "chart/"):
        assert client.get(f"/deployments/{huge}/{path}").status_code == 404, path
    assert client.post(f"/deployments/{huge}/abort/", {"reason": "x"}).status_code == 404


# --- the chart --------------------------------------------------------------------------------------


def log(model, version: int, at, *, latency: float, status: str = "ok"):
    PredictionLog.objects.create(
        request_id=uuid.uuid4().hex,
        transaction_id=uuid.uuid4().hex,
        model=model,
        version=version,
        numeric_features=[1.0],
        categorical_features=["x"],
        score=0.1,
        decision="approve",
        fallback=status != "ok",
        latency_ms=latency,
        status=status,
        created_at=at,
    )


def test_the_chart_draws_each_versions_production_traffic_since_the_rollout_started(
    client, data_scientist, canary
):
    start = timezone.now() - timedelta(minutes=1)
    Rollout.objects.filter(pk=canary.pk).update(created_at=start)
    for index in range(4):
        log(canary.model, 1, start + timedelta(seconds=1 + index), latency=20.0)
    log(canary.model, 2, start + timedelta(seconds=1), latency=150.0)
    log(canary.model, 2, start + timedelta(seconds=2), latency=150.0, status="error")
    log(canary.model, 1, start - timedelta(seconds=30), latency=30.0)  # the baseline before the rollout
    log(canary.model, 1, start - timedelta(minutes=5), latency=999.0)  # long before
    client.force_login(data_scientist)
    response = client.get(reverse("deployments:rollout-detail", args=[canary.pk]))
    figure = response.context["chart"]
    traces = {trace["name"]: trace for trace in figure["data"]}
    assert set(traces) == {
        "v1 (stable) error rate",
        "v1 (stable) p99",
        "v2 (canary) error rate",
        "v2 (canary) p99",
    }

    def drawn(name):  # the buckets with traffic (the others are gaps)
        return [y for y in traces[name]["y"] if y is not None]

    assert drawn("v2 (canary) error rate") == [50.0]
    assert drawn("v1 (stable) error rate") == [0.0, 0.0]
    assert drawn("v1 (stable) p99") == [30.0, 20.0]  # the minute before the rollout, then during it
    labels = [a["text"] for a in figure["layout"]["annotations"] if a.get("xref") == "x"]
    assert labels == ["5 %"]
    assert 'id="rollout-chart-data"' in response.content.decode()
    assert "vendor/plotly/plotly.min.js" in response.content.decode()


def test_the_chart_part_polls_while_active_and_not_once_finished(client, data_scientist, canary):
    client.force_login(data_scientist)
    url = reverse("deployments:rollout-chart", args=[canary.pk])
    assert "every 10s" in client.get(url).content.decode()
    record_move(record_move(canary, State.ABORTING), State.ABORTED)
    html = client.get(url).content.decode()
    assert "every 10s" not in html
    assert (
        "aborted"
        in json.loads(re.search(r'id="rollout-chart-data"[^>]*>(.*?)</script>', html, re.S)[1])["layout"][
            "annotations"
        ][-1]["text"]
    )


def test_a_staging_deployment_has_no_chart_but_its_staging_tests(client, data_scientist, fraud_model):
    (staging,) = finished_rollouts(fraud_model, 1, state=State.STAGING_TESTS, kind=Rollout.Kind.STAGING)
    client.force_login(data_scientist)
    response = client.get(reverse("deployments:rollout-detail", args=[staging.pk]))
    assert response.context["chart"] is None
    assert "No staging test has run yet" in text_of(response)
    assert "rollout_chart.js" not in response.content.decode()


def test_now_is_used_for_a_running_rollouts_chart_window(client, data_scientist, canary):
    log(canary.model, 2, timezone.now(), latency=42.0)
    client.force_login(data_scientist)
    figure = client.get(reverse("deployments:rollout-chart", args=[canary.pk])).context["chart"]
    canary_p99 = next(t for t in figure["data"] if t["name"] == "v2 (canary) p99")
    assert 42.0 in canary_p99["y"]


# --- controls -----------------------------------------------------------------------------------------

CONTROL_URLS = ["rollout-pause", "rollout-promote", "rollout-abort", "rollout-resume"]


def state_of(rollout) -> str:
    return Rollout.objects.get(pk=rollout.pk).state


@pytest.mark.parametrize("name", CONTROL_URLS)
@pytest.mark.parametrize("person", [p for p in EVERYONE if p != "ml_engineer"])
def test_a_control_posted_by_someone_not_allowed_is_refused_and_changes_nothing(
    client, request, canary, person, name
):
    client.force_login(request.getfixturevalue(person))
    before = events_of(canary)
    response = client.post(reverse(f"deployments:{name}", args=[canary.pk]), {"reason": "because"})
    assert response.status_code == (403 if person in SEE_FRAUD else 404)
    assert (state_of(canary), events_of(canary)) == (State.ANALYSING, before)


@pytest.mark.parametrize("name", CONTROL_URLS)
def test_anonymous_controls_are_sent_to_log_in_and_change_nothing(client, canary, name):
    response = client.post(reverse(f"deployments:{name}", args=[canary.pk]), {"reason": "because"})
    assert response.status_code == 302
    assert state_of(canary) == State.ANALYSING


@pytest.mark.parametrize("name", CONTROL_URLS)
def test_a_control_is_a_post(client, ml_engineer, canary, name):
    client.force_login(ml_engineer)
    assert client.get(reverse(f"deployments:{name}", args=[canary.pk])).status_code == 405
    assert state_of(canary) == State.ANALYSING


def test_an_ml_engineer_aborts_a_canary_and_traffic_is_back_on_stable_at_once(client, ml_engineer, canary):
    from apps.serving.routing import routes_get

    client.force_login(ml_engineer)
    response = client.post(
        reverse("deployments:rollout-abort", args=[canary.pk]), {"reason": "latency is up"}, follow=True
    )
    assert response.status_code == 200
    assert state_of(canary) == State.ABORTED
    assert routes_get(canary.model) == {1: 10_000}
    aborting = RolloutEvent.objects.get(rollout=canary, to_state=State.ABORTING)
    assert (aborting.actor, aborting.reason) == (ml_engineer, "latency is up")
    assert f"Rollout #{canary.pk} is aborted" in text_of(response)
    assert 'data-state="aborted"' in response.content.decode()


def test_abort_without_a_reason_is_refused_with_the_services_reason(client, ml_engineer, canary):
    client.force_login(ml_engineer)
    before = events_of(canary)
    response = client.post(reverse("deployments:rollout-abort", args=[canary.pk]), {"reason": "  "})
    assert response.status_code == 409
    assert "abort needs a reason" in text_of(response)
    assert (state_of(canary), events_of(canary)) == (State.ANALYSING, before)


def test_a_control_through_htmx_answers_the_controls_and_tells_the_live_part(client, ml_engineer, canary):
    client.force_login(ml_engineer)
    response = client.post(reverse("deployments:rollout-pause", args=[canary.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert state_of(canary) == State.PAUSED
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="rollout-controls"')
    assert "is paused" in html
    assert 'data-testid="resume-form"' in html
    assert 'data-testid="pause-form"' not in html
    assert json.loads(response["HX-Trigger-After-Settle"]) == {"rollout-acted": {}}


def test_a_refused_control_through_htmx_shows_why_in_the_controls(client, ml_engineer, fraud_model):
    rollout = make_canary(fraud_model, state=State.PAUSED)
    client.force_login(ml_engineer)
    response = client.post(reverse("deployments:rollout-pause", args=[rollout.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 409
    assert "cannot pause a rollout that is paused" in text_of(response)
    assert "HX-Trigger-After-Settle" not in response
    assert state_of(rollout) == State.PAUSED


def test_resume_then_promote_now_with_a_reason(client, ml_engineer, fraud_model):
    rollout = make_canary(fraud_model, state=State.PAUSED)
    client.force_login(ml_engineer)
    client.post(reverse("deployments:rollout-resume", args=[rollout.pk]))
    assert state_of(rollout) in (State.CANARY, State.ANALYSING)
    response = client.post(
        reverse("deployments:rollout-promote", args=[rollout.pk]), {"reason": "urgent fix"}
    )
    assert response.status_code == 302
    assert state_of(rollout) == State.SUCCEEDED
    promoting = RolloutEvent.objects.get(rollout=rollout, to_state=State.PROMOTING)
    assert "urgent fix" in promoting.reason
    assert ModelVersion.objects.get(model=fraud_model, version=2).stage == "production"


# --- the traffic panel and the home card ------------------------------------------------------------------


@pytest.fixture
def panels_registered():
    """The model page's panel and the home card, as DeploymentsConfig.ready registers them."""
    from apps.deployments import panels

    panels.register()


def test_the_model_page_shows_the_production_version_taking_everything_without_a_table(
    client, panels_registered, data_scientist, fraud_model
):
    client.force_login(data_scientist)
    html = client.get(reverse("registry:model-detail", args=["fraud-scorer"])).content.decode()
    shares = re.findall(r'data-testid="traffic-share" data-version="(\d+)"', html)
    assert shares == ["1"]
    assert "v1 100 %" in squash(html)
    assert 'data-testid="traffic-rollout"' not in html
    assert "hx-get" not in re.search(r'<div id="traffic-panel".*?>', html, re.S)[0]


def test_the_model_page_shows_the_canary_split_and_links_its_rollout(
    client, panels_registered, data_scientist, canary
):
    from apps.serving.routing import routes_set

    routes_set(
        model=canary.model, environment="production", weights={2: 500, 1: 9500}, actor=None, reason="t"
    )
    client.force_login(data_scientist)
    html = client.get(reverse("registry:model-detail", args=["fraud-scorer"])).content.decode()
    text = squash(html)
    assert "v1 95 %" in text
    assert "v2 5 % canary" in text
    assert f'href="/deployments/{canary.pk}/"' in html
    assert 'hx-trigger="every 5s"' in html
    assert 'data-testid="traffic-rollback"' not in html  # a data scientist does not roll back


@pytest.mark.parametrize(
    ("person", "offered"), [("ml_engineer", True), ("model_risk", True), ("compliance", False)]
)
def test_the_traffic_panel_offers_the_emergency_rollback_to_those_who_may(
    client, panels_registered, request, fraud_model, person, offered
):
    client.force_login(request.getfixturevalue(person))
    html = client.get(reverse("deployments:model-traffic", args=["fraud-scorer"])).content.decode()
    assert ('data-testid="traffic-rollback"' in html) is offered


def test_while_a_canary_runs_the_panel_links_it_rather_than_the_rollback(client, ml_engineer, canary):
    client.force_login(ml_engineer)
    html = client.get(reverse("deployments:model-traffic", args=["fraud-scorer"])).content.decode()
    assert 'data-testid="traffic-rollback"' not in html
    assert f'href="/deployments/{canary.pk}/" data-testid="traffic-rollout"' in html


def test_the_traffic_panel_costs_the_model_page_the_same_queries_however_many_rollouts(
    client, panels_registered, data_scientist, canary
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(data_scientist)
    url = reverse("registry:model-detail", args=["fraud-scorer"])
    client.get(url)  # the first page of a session fills caches the others read from
    with CaptureQueriesContext(connection) as few:
        client.get(url)
    finished_rollouts(canary.model, 20)
    with CaptureQueriesContext(connection) as many:
        client.get(url)
    assert len(many) == len(few)


def test_the_traffic_part_of_another_teams_model_is_not_found(client, data_scientist, other_model):
    client.force_login(data_scientist)
    assert client.get(reverse("deployments:model-traffic", args=["payments-anomaly"])).status_code == 404


def test_the_home_card_lists_the_rollouts_of_the_persons_models(
    client, panels_registered, data_scientist, canary, other_canary
):
    client.force_login(data_scientist)
    html = client.get(reverse("home")).content.decode()
    assert 'data-testid="card-your-rollouts"' in html
    assert re.findall(r'data-testid="card-rollout"><a href="/deployments/(\d+)/"', html) == [str(canary.pk)]


def test_no_home_card_for_someone_with_no_rollout_to_see(client, panels_registered, outsider, canary):
    client.force_login(outsider)
    assert 'data-testid="card-your-rollouts"' not in client.get(reverse("home")).content.decode()


# --- the emergency rollback and its review --------------------------------------------------------------


@pytest.fixture
def promoted(canary, ml_engineer):
    """fraud-scorer v2 promoted by its canary: v2 Production, v1 archived (the last good version)."""
    from apps.deployments.services import rollout_promote_now

    rollout_promote_now(actor=ml_engineer, rollout=canary, reason="the canary looks good")
    canary.refresh_from_db()
    assert canary.state == State.SUCCEEDED
    return canary


def stages(model) -> dict[int, str]:
    return dict(ModelVersion.objects.filter(model=model).values_list("version", "stage"))


@pytest.mark.parametrize("person", EVERYONE)
def test_the_rollback_page_is_for_ml_engineers_and_model_risk(client, request, fraud_model, person):
    client.force_login(request.getfixturevalue(person))
    response = client.get(reverse("deployments:model-rollback", args=["fraud-scorer"]))
    expected = 200 if person in ("ml_engineer", "model_risk") else 403 if person in SEE_FRAUD else 404
    assert response.status_code == expected


@pytest.mark.parametrize("person", ["data_scientist", "manager", "compliance", "other_data_scientist"])
def test_a_rollback_posted_by_someone_not_allowed_moves_nothing(client, request, promoted, person):
    before = stages(promoted.model)
    client.force_login(request.getfixturevalue(person))
    response = client.post(reverse("deployments:model-rollback", args=["fraud-scorer"]), {"reason": "bad"})
    assert response.status_code == (404 if person == "other_data_scientist" else 403)
    assert stages(promoted.model) == before
    assert state_of(promoted) == State.SUCCEEDED


def test_model_risk_rolls_back_with_a_reason_and_lands_on_the_rollback(client, model_risk, promoted):
    client.force_login(model_risk)
    response = client.post(
        reverse("deployments:model-rollback", args=["fraud-scorer"]),
        {"reason": "fraud losses spiking"},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == reverse("deployments:rollout-detail", args=[promoted.pk])
    assert stages(promoted.model)[1] == "production"
    assert stages(promoted.model)[2] == "rolled_back"
    text = text_of(response)
    assert "fraud-scorer v2 was rolled back: v1 answers production traffic again" in text
    assert "waiting for a second person" in text
    assert 'data-testid="review-form"' not in response.content.decode()  # not for the one who rolled back


def test_a_rollback_without_a_reason_is_refused_on_the_page(client, model_risk, promoted):
    client.force_login(model_risk)
    response = client.post(reverse("deployments:model-rollback", args=["fraud-scorer"]), {"reason": ""})
    assert response.status_code == 400
    assert "needs a reason" in text_of(response)
    assert stages(promoted.model)[2] == "production"


def test_a_rollback_with_no_earlier_production_version_says_so(client, ml_engineer, fraud_model):
    client.force_login(ml_engineer)
    response = client.post(reverse("deployments:model-rollback", args=["fraud-scorer"]), {"reason": "bad"})
    assert response.status_code == 400
    assert "no earlier Production version" in text_of(response)
    assert stages(fraud_model)[1] == "production"


def test_a_second_person_confirms_the_rollback_from_its_page(client, model_risk, ml_engineer, promoted):
    from apps.deployments.models import RollbackReview
    from apps.deployments.services import rollback_to_last_good

    rollback_to_last_good(model=promoted.model, actor=model_risk, reason="fraud losses spiking")
    review = RollbackReview.objects.get(rollout=promoted)
    url = reverse("deployments:review-confirm", args=[review.pk])
    client.force_login(model_risk)
    assert client.post(url, {"note": "self"}).status_code == 403
    client.force_login(ml_engineer)
    page = client.get(reverse("deployments:rollout-detail", args=[promoted.pk])).content.decode()
    assert 'data-testid="review-form"' in page
    response = client.post(url, {"note": "checked the losses"}, follow=True)
    review.refresh_from_db()
    assert (review.status, review.reviewer, review.note) == ("confirmed", ml_engineer, "checked the losses")
    assert "confirmed by mia" in text_of(response)
    assert client.post(url, {"note": "again"}).status_code == 409


# --- hostile input and bounded reads ------------------------------------------------------------------


def test_a_reason_with_a_nul_byte_is_refused_not_a_server_error(client, ml_engineer, canary):
    client.force_login(ml_engineer)
    response = client.post(reverse("deployments:rollout-abort", args=[canary.pk]), {"reason": "x\x00y"})
    assert response.status_code == 400
    assert "Reason: Null characters are not allowed." in text_of(response)
    assert state_of(canary) == State.ANALYSING


def test_a_rollback_reason_with_a_nul_byte_is_refused_on_the_page(client, model_risk, promoted):
    client.force_login(model_risk)
    response = client.post(reverse("deployments:model-rollback", args=["fraud-scorer"]), {"reason": "x\x00y"})
    assert response.status_code == 400
    assert "Reason: Null characters are not allowed." in text_of(response)
    assert stages(promoted.model)[2] == "production"


def test_the_live_part_reads_the_same_number_of_queries_however_long_the_rollout(
    client, data_scientist, canary
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.deployments.page_fixtures import measure

    client.force_login(data_scientist)
    url = reverse("deployments:rollout-live", args=[canary.pk])
    client.get(url)  # the first page of a session fills caches the others read from
    with CaptureQueriesContext(connection) as short:
        client.get(url)
    for index in range(20):
        measure(canary, "error_rate", 0.0, 0.001, "successful", message=f"window {index}")
        record_move(canary, State.PAUSED if index % 2 == 0 else State.ANALYSING, actor=data_scientist)
    with CaptureQueriesContext(connection) as long:
        client.get(url)
    assert len(long) == len(short)


def test_a_canary_with_nothing_in_production_before_it_charts_the_canary_alone(
    client, other_data_scientist, other_canary
):
    client.force_login(other_data_scientist)
    response = client.get(reverse("deployments:rollout-detail", args=[other_canary.pk]))
    assert response.status_code == 200
    names = {trace["name"] for trace in response.context["chart"]["data"]}
    assert names == {"v1 (canary) error rate", "v1 (canary) p99", "stable error rate", "stable p99"}
    assert "none (nothing was in Production)" in text_of(response)


def test_the_home_card_shows_the_rollback_waiting_for_a_second_persons_review(
    client, panels_registered, model_risk, ml_engineer, promoted
):
    from apps.deployments.services import rollback_to_last_good

    rollback_to_last_good(model=promoted.model, actor=model_risk, reason="fraud losses spiking")
    client.force_login(ml_engineer)
    html = client.get(reverse("home")).content.decode()
    assert 'data-testid="card-rollback-review"' in html
    client.force_login(model_risk)
    assert 'data-testid="card-rollback-review"' not in client.get(reverse("home")).content.decode()


def test_a_staging_deployment_shows_each_test_with_its_value_threshold_and_result(
    client, data_scientist, fraud_model
):
    from apps.deployments.models import StagingTestResult

    (staging,) = finished_rollouts(fraud_model, 1, state=State.REJECTED, kind=Rollout.Kind.STAGING)
    version = staging.candidate
    Test = StagingTestResult.Test
    result = {"rollout": staging, "version": version}
    StagingTestResult.objects.create(
        **result, test=Test.AUC, passed=True, value=0.91, threshold=0.7, detail="holdout of 500 rows"
    )
    StagingTestResult.objects.create(
        **result,
        test=Test.LATENCY,
        passed=False,
        value=240.0,
        threshold=100.0,
        detail="p99 over 200 requests",
    )
    StagingTestResult.objects.create(
        **result, test=Test.FALLBACKS, passed=None, detail="inference service unreachable"
    )
    client.force_login(data_scientist)
    response = client.get(reverse("deployments:rollout-detail", args=[staging.pk]))
    html = response.content.decode()
    rows = re.findall(r'data-testid="staging-result" data-test="(\w+)">(.*?)</tr>', html, re.S)
    results = {test: squash(row) for test, row in rows}
    assert results["auc"].startswith("1 Holdout ROC AUC passed 0.91 0.7 holdout of 500 rows")
    assert "failed 240 100 p99 over 200 requests" in results["latency"]
    assert "could not run — — inference service unreachable" in results["fallbacks"]
    assert 'data-testid="rollout-chart"' not in html
