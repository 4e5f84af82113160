"""The "Thresholds and rules" pages of a model: who reads, who changes (ML Engineers), bad values as
form errors, every change audited, CSRF on."""

import json
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.registry.services import model_ensure
from apps.serving import services
from apps.serving.models import FallbackRule, ServingPolicy

from .test_log_reads import entry

pytestmark = pytest.mark.django_db

READERS = ["data_scientist", "model_risk", "manager"]
STRANGERS = ["other_data_scientist", "outsider"]
GOOD = {
    "review_at": "0.4",
    "decline_at": "0.8",
    "breaker_failures": "3",
    "breaker_reset_after": "20",
    "latency_budget_ms": "80",
    "reason": "fewer reviews after the Q3 calibration",
}


@pytest.fixture
def scored_model(team, ml_engineer):
    model = model_ensure(name="fraud-scorer", team=team)
    ServingPolicy.objects.create(model=model, version=1, review_at=0.5, decline_at=0.9, note="first")
    FallbackRule.objects.create(
        model=model, order=1, feature="amount", operator=">", threshold=5000, score=0.95, decision="decline"
    )
    return model


@pytest.fixture
def rule(scored_model):
    return FallbackRule.objects.get(model=scored_model)


def urls(model, rule) -> dict[str, str]:
    return {
        "page": reverse("serving:thresholds", args=[model.name]),
        "add": reverse("serving:rule-add", args=[model.name]),
        "edit": reverse("serving:rule-edit", args=[model.name, rule.pk]),
        "delete": reverse("serving:rule-delete", args=[model.name, rule.pk]),
    }


def signed_in(client, request, person: str):
    client.force_login(request.getfixturevalue(person))
    return client


# --- the permission matrix -----------------------------------------------------------------------


@pytest.mark.parametrize("page", ["page", "add", "edit", "delete"])
def test_anonymous_visitor_is_sent_to_log_in(client, scored_model, rule, page):
    url = urls(scored_model, rule)[page]
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('accounts:login')}?next={url}"


@pytest.mark.parametrize("person", READERS)
def test_readers_see_the_thresholds_and_rules_without_forms(request, client, scored_model, rule, person):
    response = signed_in(client, request, person).get(urls(scored_model, rule)["page"])
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-testid="policy-current"' in html
    assert "amount &gt; 5000" in html
    assert 'data-testid="policy-form"' not in html
    assert 'data-testid="rule-add"' not in html
    assert "Only an ML Engineer may change them." in html


@pytest.mark.parametrize("person", READERS)
@pytest.mark.parametrize(
    ("page", "method"), [("page", "post"), ("add", "get"), ("add", "post"), ("edit", "get"), ("edit", "post"),
                         ("delete", "get"), ("delete", "post")]
)  # fmt: skip
def test_readers_may_not_change_anything(request, client, scored_model, rule, person, page, method):
    client = signed_in(client, request, person)
    rule_body = {
        "order": 2,
        "feature": "x",
        "operator": ">",
        "threshold": "1",
        "score": 0.5,
        "decision": "review",
    }
    body = GOOD if page == "page" else rule_body
    response = getattr(client, method)(urls(scored_model, rule)[page], body if method == "post" else None)
    assert response.status_code == 403
    assert ServingPolicy.objects.filter(model=scored_model).count() == 1
    assert list(FallbackRule.objects.filter(model=scored_model)) == [rule]


@pytest.mark.parametrize("person", STRANGERS)
@pytest.mark.parametrize("page", ["page", "add", "edit", "delete"])
def test_who_may_not_see_the_model_gets_404(request, client, scored_model, rule, person, page):
    client = signed_in(client, request, person)
    assert client.get(urls(scored_model, rule)[page]).status_code == 404
    assert client.post(urls(scored_model, rule)[page], GOOD).status_code == 404
    assert ServingPolicy.objects.filter(model=scored_model).count() == 1


def test_a_rule_of_another_model_is_not_found(client, ml_engineer, scored_model, rule, team):
    other = model_ensure(name="other-scorer", team=team)
    client.force_login(ml_engineer)
    assert client.get(reverse("serving:rule-edit", args=[other.name, rule.pk])).status_code == 404
    assert client.post(reverse("serving:rule-delete", args=[other.name, rule.pk])).status_code == 404
    assert FallbackRule.objects.filter(pk=rule.pk).exists()


def test_the_serving_panel_shows_the_last_hour_per_version_and_links_to_the_page(
    client, data_scientist, scored_model
):
    now = timezone.now()
    services.logs_write(
        [entry(scored_model, at=now - timedelta(minutes=5), version=1, status="fallback"),
         entry(scored_model, at=now - timedelta(minutes=4), version=1),
         entry(scored_model, at=now - timedelta(minutes=3), version=2),
         entry(scored_model, at=now - timedelta(minutes=3), version=2, environment="staging"),
         entry(scored_model, at=now - timedelta(minutes=90), version=1)]
    )  # fmt: skip
    client.force_login(data_scientist)
    response = client.get(reverse("serving:model-panel", args=[scored_model.name]))
    html = response.content.decode()
    assert reverse("serving:thresholds", args=[scored_model.name]) in html
    last_hour = re.search(r'data-testid="serving-last-hour">(.*?)</dd>', html, re.S).group(1)
    assert " ".join(last_hour.split()) == "3 scored, 33% answered by the rules"
    chart = json.loads(re.search(r'id="serving-chart-data"[^>]*>(.*?)</script>', html, re.S).group(1))
    assert [trace["name"] for trace in chart["data"]] == [
        "v1 requests/s", "v1 p99 latency (ms)", "v2 requests/s", "v2 p99 latency (ms)"
    ]  # fmt: skip
    assert sum(chart["data"][0]["y"]) * 60 == pytest.approx(2, abs=0.1)  # requests/s rounded to 3 places


# --- thresholds ----------------------------------------------------------------------------------


def test_an_ml_engineer_publishes_a_new_version_with_a_reason(client, ml_engineer, scored_model, rule):
    client.force_login(ml_engineer)
    page = urls(scored_model, rule)["page"]
    form = client.get(page)
    assert 'data-testid="policy-form"' in form.content.decode()
    assert 'value="0.9"' in form.content.decode(), "the form starts from the policy in force"

    response = client.post(page, GOOD)
    assert response.status_code == 302
    policy = ServingPolicy.objects.filter(model=scored_model).first()
    assert (policy.version, policy.review_at, policy.decline_at, policy.breaker_failures) == (2, 0.4, 0.8, 3)
    assert (policy.breaker_reset_after, policy.latency_budget_ms) == (20.0, 80.0)
    assert policy.note == GOOD["reason"]
    assert policy.created_by == ml_engineer
    event = AuditEvent.objects.get(action="serving.policy_published")
    assert event.actor == ml_engineer.username
    assert event.before["version"] == 1
    assert event.after["decline_at"] == 0.8
    history = client.get(page).content.decode()
    assert GOOD["reason"] in history
    assert "2 versions, newest first" in history


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"review_at": "0.9", "decline_at": "0.5"}, None, "review_at &lt;= decline_at"),
        ({"decline_at": "1.5"}, None, "decline_at &lt;= 1"),
        ({"review_at": "high"}, "review_at", "Enter a number."),
        ({"breaker_failures": "0"}, None, "breaker_failures must be between 1 and 1000"),
        ({"latency_budget_ms": "nan"}, "latency_budget_ms", "Enter a number."),
        ({"reason": ""}, "reason", "This field is required."),
        ({"reason": "a\x00b"}, "reason", "Null characters are not allowed."),
    ],
)
def test_a_bad_value_is_a_form_error(client, ml_engineer, scored_model, rule, change, field, message):
    client.force_login(ml_engineer)
    response = client.post(urls(scored_model, rule)["page"], {**GOOD, **change})
    assert response.status_code == 400
    html = response.content.decode()
    assert message in html
    if field:
        assert f'id="id_{field}-errors"' in html
    else:
        assert 'data-testid="form-error"' in html
    assert ServingPolicy.objects.filter(model=scored_model).count() == 1
    assert not AuditEvent.objects.filter(action="serving.policy_published").exists()


def test_forms_need_the_csrf_token(ml_engineer, scored_model, rule):
    client = Client(enforce_csrf_checks=True)
    client.force_login(ml_engineer)
    page = urls(scored_model, rule)["page"]
    assert "csrfmiddlewaretoken" in client.get(page).content.decode()
    assert client.post(page, GOOD).status_code == 403
    assert client.post(urls(scored_model, rule)["delete"]).status_code == 403
    assert ServingPolicy.objects.filter(model=scored_model).count() == 1
    assert FallbackRule.objects.filter(pk=rule.pk).exists()


# --- rules ---------------------------------------------------------------------------------------


def test_an_ml_engineer_adds_edits_and_deletes_a_rule(client, ml_engineer, scored_model, rule):
    client.force_login(ml_engineer)
    pages = urls(scored_model, rule)
    new = {"order": 2, "feature": "merchant_category", "operator": "in",
           "threshold": '["crypto", "gambling"]', "score": 0.7, "decision": "review"}  # fmt: skip
    assert client.post(pages["add"], new).status_code == 302
    added = FallbackRule.objects.get(model=scored_model, order=2)
    assert added.threshold == ["crypto", "gambling"]
    assert AuditEvent.objects.filter(action="serving.rule_added", actor=ml_engineer.username).count() == 1

    form = client.get(pages["edit"]).content.decode()
    assert 'value="5000"' in form, "the threshold is shown as JSON"
    changed = {"order": 1, "feature": "amount", "operator": ">=", "threshold": "8000", "score": 0.99,
               "decision": "decline"}  # fmt: skip
    assert client.post(pages["edit"], changed).status_code == 302
    rule.refresh_from_db()
    assert (rule.operator, rule.threshold, rule.score) == (">=", 8000, 0.99)
    event = AuditEvent.objects.get(action="serving.rule_changed")
    assert event.before["threshold"] == 5000
    assert event.after["threshold"] == 8000

    confirmation = client.get(pages["delete"])
    assert confirmation.status_code == 200
    assert "amount &gt;= 8000" in confirmation.content.decode()
    assert FallbackRule.objects.filter(pk=rule.pk).exists(), "asking is not deleting"
    assert client.post(pages["delete"]).status_code == 302
    assert not FallbackRule.objects.filter(pk=rule.pk).exists()
    assert AuditEvent.objects.filter(action="serving.rule_deleted").count() == 1
    assert list(FallbackRule.objects.filter(model=scored_model)) == [added]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"operator": "in", "threshold": "5"}, "the threshold of `in` must be a list of values"),
        ({"threshold": "not json"}, "Enter a valid JSON."),
        ({"score": "2"}, "score must be a number in [0, 1]"),
        ({"operator": "~"}, "Select a valid choice."),
        ({"feature": ""}, "This field is required."),
    ],
)
def test_a_bad_rule_is_a_form_error(client, ml_engineer, scored_model, rule, change, message):
    client.force_login(ml_engineer)
    body = {"order": 3, "feature": "amount", "operator": ">", "threshold": "10", "score": 0.5,
            "decision": "review", **change}  # fmt: skip
    response = client.post(urls(scored_model, rule)["add"], body)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert list(FallbackRule.objects.filter(model=scored_model)) == [rule]
    assert not AuditEvent.objects.filter(action="serving.rule_added").exists()
