"""The registry's pages: who may see what, the model list's filters, model and version pages, model
card editing, compare, and Sync now."""

import json
import re
from datetime import UTC, datetime

import pytest
from django.urls import reverse
from django.utils import timezone
from kombu.exceptions import OperationalError

from apps.registry import tasks
from apps.registry.models import AliasDrift, ModelCardRevision, RiskTier, Stage, SyncRun
from apps.registry.services import model_ensure
from tests.registry.fixtures import make_version

pytestmark = pytest.mark.django_db

READERS = ["data_scientist", "ds_lead", "ml_engineer", "model_risk", "compliance", "manager", "admin_user"]
APPROVERS_AND_MANAGER = ["ds_lead", "ml_engineer", "model_risk", "compliance", "manager"]


def page_url(page: str, model) -> str:
    name = model.name
    return {
        "list": reverse("registry:model-list"),
        "detail": reverse("registry:model-detail", args=[name]),
        "version": reverse("registry:version-detail", args=[name, 2]),
        "compare": reverse("registry:compare", args=[name]),
        "card-edit": reverse("registry:card-edit", args=[name]),
    }[page]


def squash(html: str) -> str:
    """The text of an HTML fragment, tags dropped and whitespace collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def text_of(response) -> str:
    """The page's visible text, for asserting sentences that run across template lines."""
    return squash(re.sub(r"<script.*?</script>", " ", response.content.decode(), flags=re.S))


# --- the permission matrix -----------------------------------------------------------------------


@pytest.mark.parametrize("page", ["list", "detail", "version", "compare", "card-edit"])
def test_anonymous_visitor_is_sent_to_log_in(client, fraud_model, page):
    url = page_url(page, fraud_model)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('accounts:login')}?next={url}"


@pytest.mark.parametrize("page", ["list", "detail", "version", "compare"])
@pytest.mark.parametrize("person", READERS)
def test_team_members_approvers_and_managers_read_the_model_pages(request, client, fraud_model, page, person):
    client.force_login(request.getfixturevalue(person))
    response = client.get(page_url(page, fraud_model))
    assert response.status_code == 200
    assert "fraud-scorer" in response.content.decode()


@pytest.mark.parametrize("page", ["detail", "version", "compare", "card-edit"])
@pytest.mark.parametrize("person", ["other_data_scientist", "outsider"])
def test_who_may_not_see_the_model_gets_404(request, client, fraud_model, page, person):
    client.force_login(request.getfixturevalue(person))
    assert client.get(page_url(page, fraud_model)).status_code == 404


@pytest.mark.parametrize("person", ["other_data_scientist", "outsider"])
def test_the_list_leaves_out_models_the_user_may_not_see(request, client, fraud_model, person):
    client.force_login(request.getfixturevalue(person))
    response = client.get(page_url("list", fraud_model))
    assert response.status_code == 200
    assert "fraud-scorer" not in response.content.decode()


def test_a_data_scientist_lists_only_their_teams_models(client, data_scientist, fraud_model, other_model):
    client.force_login(data_scientist)
    names = [m.name for m in client.get(reverse("registry:model-list")).context["page"].object_list]
    assert names == ["fraud-scorer"]
    assert client.get(reverse("registry:model-detail", args=[other_model.name])).status_code == 404


@pytest.mark.parametrize("person", APPROVERS_AND_MANAGER)
def test_approvers_and_managers_list_every_teams_models(request, client, fraud_model, other_model, person):
    client.force_login(request.getfixturevalue(person))
    names = [m.name for m in client.get(reverse("registry:model-list")).context["page"].object_list]
    assert names == ["fraud-scorer", "payments-anomaly"]


@pytest.mark.parametrize(
    ("person", "status"),
    [
        ("data_scientist", 200),  # an owner
        ("admin_user", 200),
        ("ds_lead", 403),  # sees the model, does not own it
        ("ml_engineer", 403),
        ("model_risk", 403),
        ("compliance", 403),
        ("manager", 403),
        ("other_data_scientist", 404),
        ("outsider", 404),
    ],
)
def test_only_owners_may_open_the_model_card_editor(request, client, fraud_model, person, status):
    client.force_login(request.getfixturevalue(person))
    assert client.get(page_url("card-edit", fraud_model)).status_code == status


@pytest.mark.parametrize(
    ("person", "status"),
    [
        ("data_scientist", 302),
        ("ds_lead", 302),
        ("ml_engineer", 302),
        ("model_risk", 403),
        ("compliance", 403),
        ("manager", 403),
        ("other_data_scientist", 404),
    ],
)
def test_sync_now_is_for_data_scientists_and_ml_engineers_who_see_the_model(
    request, client, monkeypatch, fraud_model, person, status
):
    calls = []
    monkeypatch.setattr(tasks.sync_registry, "apply_async", lambda args, **kwargs: calls.append(tuple(args)))
    user = request.getfixturevalue(person)
    client.force_login(user)
    response = client.post(reverse("registry:model-sync"), {"model": fraud_model.name})
    assert response.status_code == status
    assert calls == ([(user.pk,)] if status == 302 else [])
    if status != 404:
        page = client.get(page_url("detail", fraud_model)).content.decode()
        assert ('data-testid="sync-now"' in page) == (status == 302)


def test_sync_now_needs_a_signed_in_user(client, monkeypatch, fraud_model):
    calls = []
    monkeypatch.setattr(tasks.sync_registry, "apply_async", lambda *args, **kwargs: calls.append(args))
    response = client.post(reverse("registry:model-sync"), {"model": fraud_model.name})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))
    assert calls == []


# --- the model list ------------------------------------------------------------------------------


@pytest.fixture
def many_models(team, data_scientist):
    """30 models of the team: even ones have a Production version, every fifth has 'card' in its name."""
    models = []
    for number in range(30):
        name = f"model-{number:02d}" + ("-card" if number % 5 == 0 else "")
        model = model_ensure(
            name=name, team=team, owners=[data_scientist], description=f"Model number {number}"
        )
        make_version(model, 1, stage=Stage.PRODUCTION if number % 2 == 0 else Stage.STAGING)
        make_version(model, 2)
        models.append(model)
    return models


def listed(client, **params) -> list[str]:
    response = client.get(reverse("registry:model-list"), params)
    assert response.status_code == 200
    return [model.name for model in response.context["page"].object_list]


def test_list_shows_team_risk_tier_version_count_and_production(client, data_scientist, fraud_model):
    client.force_login(data_scientist)
    fraud_model.risk_tier = RiskTier.MEDIUM
    fraud_model.save()
    response = client.get(reverse("registry:model-list"))
    row = re.search(r'<tr data-testid="model-row">(.*?)</tr>', response.content.decode(), re.S).group(1)
    cells = [squash(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
    assert cells == ["fraud-scorer Card fraud risk", "Fraud Analytics", "Medium", "4", "Yes"]
    assert "<title>Models · Hafnium Portal</title>" in response.content.decode()


def test_list_says_no_for_a_model_without_production(client, data_scientist, team):
    model = model_ensure(name="new-scorer", team=team)
    make_version(model, 1, stage=Stage.STAGING)
    client.force_login(data_scientist)
    response = client.get(reverse("registry:model-list"))
    assert 'data-testid="has-production"' not in response.content.decode()


def test_search_matches_name_and_description(client, data_scientist, many_models):
    client.force_login(data_scientist)
    assert listed(client, q="card") == [
        "model-00-card",
        "model-05-card",
        "model-10-card",
        "model-15-card",
        "model-20-card",
        "model-25-card",
    ]
    assert listed(client, q="number 7") == ["model-07"]


def test_stage_filter_keeps_models_with_a_version_in_that_stage(client, data_scientist, many_models):
    client.force_login(data_scientist)
    in_production = listed(client, stage=Stage.PRODUCTION)
    assert len(in_production) == 15
    assert all(int(name[6:8]) % 2 == 0 for name in in_production)
    assert listed(client, stage=Stage.CANDIDATE) == []


def test_the_stage_filter_does_not_change_the_counts_shown(client, data_scientist, fraud_model):
    client.force_login(data_scientist)
    response = client.get(reverse("registry:model-list"), {"stage": Stage.STAGING})
    (model,) = response.context["page"].object_list
    assert model.version_count == 4
    assert model.production_count == 1


def test_team_filter(client, model_risk, fraud_model, other_model):
    client.force_login(model_risk)
    assert listed(client, team="payments-risk") == ["payments-anomaly"]
    assert listed(client, team="fraud-analytics") == ["fraud-scorer"]


def test_an_unknown_filter_value_is_reported_and_left_out(client, data_scientist, fraud_model):
    client.force_login(data_scientist)
    response = client.get(reverse("registry:model-list"), {"stage": "bogus"})
    assert response.status_code == 200
    assert [m.name for m in response.context["page"].object_list] == ["fraud-scorer"]
    assert "This filter was left out." in response.content.decode()


def test_list_pages_by_25_and_page_links_keep_the_filters(client, data_scientist, many_models):
    client.force_login(data_scientist)
    assert len(listed(client)) == 25
    assert listed(client, page=2) == ["model-25-card", "model-26", "model-27", "model-28", "model-29"]

    response = client.get(
        reverse("registry:model-list"), {"q": "model", "team": "fraud-analytics", "stage": ""}
    )
    assert 'href="?q=model&amp;team=fraud-analytics&amp;page=2"' in response.content.decode()
    response = client.get(
        reverse("registry:model-list"), {"q": "model", "team": "fraud-analytics", "page": 2}
    )
    assert 'href="?q=model&amp;team=fraud-analytics&amp;page=1"' in response.content.decode()
    assert len(response.context["page"].object_list) == 5


def test_empty_states_differ_with_and_without_filters(client, data_scientist, fraud_model):
    client.force_login(data_scientist)
    response = client.get(reverse("registry:model-list"), {"q": "nothing"})
    assert "No models match these filters" in response.content.decode()
    fraud_model.delete()
    assert "No models yet" in client.get(reverse("registry:model-list")).content.decode()


def test_htmx_gets_only_the_table(client, data_scientist, fraud_model):
    client.force_login(data_scientist)
    response = client.get(reverse("registry:model-list"), {"q": "fraud"}, headers={"HX-Request": "true"})
    body = response.content.decode()
    assert "<html" not in body
    assert 'data-testid="model-table"' in body
    assert "HX-Request" in response["Vary"]
    # Without htmx, the same address is the whole page.
    assert "<html" in client.get(reverse("registry:model-list"), {"q": "fraud"}).content.decode()


def test_the_list_page_queries_do_not_grow_with_the_models(
    client, data_scientist, many_models, django_assert_max_num_queries
):
    client.force_login(data_scientist)
    with django_assert_max_num_queries(11):  # 10, plus the open-breaker banner of every page
        response = client.get(reverse("registry:model-list"))
    assert len(response.context["page"].object_list) == 25


# --- the model page ------------------------------------------------------------------------------


def test_model_page_shows_the_model_and_its_versions(client, data_scientist, fraud_model):
    client.force_login(data_scientist)
    response = client.get(reverse("registry:model-detail", args=["fraud-scorer"]))
    body, text = response.content.decode(), text_of(response)
    assert "<title>fraud-scorer · Hafnium Portal</title>" in body
    assert "Card fraud risk" in text
    assert re.search(r'data-testid="owners">\s*dana\s*<', body)
    assert re.search(r'data-testid="risk-tier">High<', body)
    stages = re.findall(r'data-testid="stage-badge" data-stage="(\w+)"', body)
    assert stages == ["experiment", "candidate", "staging", "production"]
    colours = dict(
        re.findall(r'class="badge (text-bg-\w+)"\s+data-testid="stage-badge" data-stage="(\w+)"', body)
    )
    assert colours == {
        "text-bg-secondary": "experiment",
        "text-bg-info": "candidate",
        "text-bg-warning": "staging",
        "text-bg-success": "production",
    }
    assert "0.8900" in text  # v4's ROC AUC
    assert "2026-01-05 12:00 UTC" in text
    assert "aaaaaaaaaaaa" in text
    assert 'href="/models/fraud-scorer/versions/1/"' in body


def test_lineage_runs_from_the_dataset_to_the_stage_history(client, data_scientist, fraud_model):
    client.force_login(data_scientist)
    response = client.get(reverse("registry:model-detail", args=["fraud-scorer"]))
    lineage = re.search(r'data-testid="lineage-v1">(.*?)</li>', response.content.decode(), re.S).group(1)
    lineage = squash(lineage)
    run_id = f"run{fraud_model.pk}x1"
    assert re.search(rf"hafnium-transactions@a{{12}} .*→.* run {run_id} .*→.* v1 .*→.* Experiment", lineage)
    assert "dana" in lineage


def test_a_failed_sync_shows_the_registry_unreachable_notice(client, data_scientist, fraud_model):
    SyncRun.objects.create(
        status=SyncRun.Status.FAILED,
        error="Connection refused: mlflow:5000",
        finished_at=datetime(2026, 11, 20, 9, 30, tzinfo=UTC),
    )
    client.force_login(data_scientist)
    response = client.get(reverse("registry:model-detail", args=["fraud-scorer"]))
    notice = re.search(r'data-testid="registry-unreachable">(.*?)</div>', response.content.decode(), re.S)
    assert notice is not None
    notice_text = squash(notice.group(1))
    assert "Registry unreachable" in notice_text
    assert "Connection refused: mlflow:5000" in notice_text
    assert "2026-11-20 09:30 UTC" in notice_text


def test_no_notice_once_a_later_sync_succeeded(client, data_scientist, fraud_model):
    SyncRun.objects.create(status=SyncRun.Status.FAILED, error="down", finished_at=timezone.now())
    SyncRun.objects.create(status=SyncRun.Status.SUCCEEDED, finished_at=timezone.now())
    client.force_login(data_scientist)
    response = client.get(reverse("registry:model-detail", args=["fraud-scorer"]))
    assert 'data-testid="registry-unreachable"' not in response.content.decode()


def test_an_open_alias_drift_is_an_alert_and_a_resolved_one_is_not(client, data_scientist, fraud_model):
    AliasDrift.objects.create(model=fraud_model, alias="production", expected_version=1, found_version=3)
    AliasDrift.objects.create(
        model=fraud_model, alias="staging", expected_version=2, found_version=4, resolved_at=timezone.now()
    )
    client.force_login(data_scientist)
    response = client.get(reverse("registry:model-detail", args=["fraud-scorer"]))
    alerts = re.findall(r'data-testid="alias-drift">(.*?)</div>', response.content.decode(), re.S)
    assert len(alerts) == 1
    alert = squash(alerts[0])
    assert "alias 'production' is on v3 in MLflow but the portal has v1 — changed outside the portal" in alert


def test_model_page_queries_do_not_grow_with_the_versions(
    client, data_scientist, fraud_model, django_assert_max_num_queries
):
    for number in range(5, 25):
        make_version(
            fraud_model, number, dataset=fraud_model.versions.first().dataset, creator=data_scientist
        )
    client.force_login(data_scientist)
    # 21, whatever the number of versions: the page, the alerts badge and banner, the traffic panel. The
    # visible-models subquery is evaluated once per panel (7 times): a per-request cache would save 6.
    with django_assert_max_num_queries(21):
        response = client.get(reverse("registry:model-detail", args=["fraud-scorer"]))
    assert len(response.context["page"].object_list) == 24


# --- Sync now ------------------------------------------------------------------------------------


def test_sync_now_enqueues_a_sync_for_the_user_and_says_so(client, monkeypatch, data_scientist, fraud_model):
    calls = []
    monkeypatch.setattr(tasks.sync_registry, "apply_async", lambda args, **kwargs: calls.append(tuple(args)))
    client.force_login(data_scientist)
    response = client.post(reverse("registry:model-sync"), {"model": "fraud-scorer"})
    assert response.status_code == 302
    assert response["Location"] == reverse("registry:model-detail", args=["fraud-scorer"])
    assert calls == [(data_scientist.pk,)]
    assert "Sync started" in client.get(response["Location"]).content.decode()


def test_sync_now_with_the_broker_down_shows_an_error_not_a_500(
    client, monkeypatch, data_scientist, fraud_model
):
    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(tasks.sync_registry, "apply_async", broker_down)
    client.force_login(data_scientist)
    response = client.post(reverse("registry:model-sync"), {"model": "fraud-scorer"})
    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    assert "The sync could not be started: the task queue is unreachable" in page
    assert "Sync started" not in page


@pytest.mark.parametrize("name", ["fraud\x00scorer", "\x00", "", "fraud-scorer\x00"])
def test_sync_now_with_a_nul_byte_or_no_model_is_404_not_500(
    client, monkeypatch, data_scientist, fraud_model, name
):
    calls = []
    monkeypatch.setattr(tasks.sync_registry, "apply_async", lambda *args, **kwargs: calls.append(args))
    client.force_login(data_scientist)
    assert client.post(reverse("registry:model-sync"), {"model": name}).status_code == 404
    assert calls == []


@pytest.mark.parametrize(
    "path",
    [
        "/models/fraud%00scorer/",
        "/models/%00/versions/1/",
        "/models/a%00/card/edit/",
        "/models/a%00/compare/",
    ],
)
def test_model_pages_with_a_nul_byte_in_the_name_are_404(client, data_scientist, fraud_model, path):
    client.force_login(data_scientist)
    assert client.get(path).status_code == 404


def test_sync_now_is_a_post(client, monkeypatch, data_scientist, fraud_model):
    calls = []
    monkeypatch.setattr(tasks.sync_registry, "apply_async", lambda *args, **kwargs: calls.append(args))
    client.force_login(data_scientist)
    assert client.get(reverse("registry:model-sync"), {"model": "fraud-scorer"}).status_code == 405
    assert calls == []


def test_the_sync_button_posts_with_a_csrf_token(client, data_scientist, fraud_model):
    client.force_login(data_scientist)
    body = client.get(reverse("registry:model-detail", args=["fraud-scorer"])).content.decode()
    form = re.search(r'<form method="post" action="/models/sync/">(.*?)</form>', body, re.S).group(1)
    assert 'name="csrfmiddlewaretoken"' in form
    assert 'name="model" value="fraud-scorer"' in form


# --- the version page and its model card ---------------------------------------------------------


def test_version_page_shows_metrics_provenance_and_the_card(client, data_scientist, fraud_model):
    client.force_login(data_scientist)
    response = client.get(reverse("registry:version-detail", args=["fraud-scorer", 2]))
    body, text = response.content.decode(), text_of(response)
    card = response.context["card"]
    assert "<title>fraud-scorer v2 · Hafnium Portal</title>" in body
    assert "0.8700 0.8600 \u2013 0.8800" in text  # roc_auc with its interval
    assert f"run{fraud_model.pk}x2" in text
    assert f"models:/m-{fraud_model.pk}2" in text
    assert f"{2:064x}" in text  # artifact sha256
    assert "a" * 64 in text  # dataset sha256
    assert "amount" in text
    assert "channel" in text
    for title in ["Intended use", "Out-of-scope use", "Limitations", "Ethical considerations"]:
        assert f">{title}</h3>" in body
    assert card.sha256 in body
    completeness = squash(body.split('data-testid="card-completeness"')[1].split("Card sha256")[0])
    assert "Incomplete" in completeness
    assert "Intended use" in completeness
    assert "Limitations" in completeness
    assert "Owners" not in completeness
    assert "— → Experiment by dana (registered)" in text
    assert re.search(r'href="/models/fraud-scorer/compare/\?a=2">Compare with production</a>', body)


def test_the_production_versions_page_offers_a_comparison_with_another_version(
    client, data_scientist, fraud_model
):
    client.force_login(data_scientist)
    body = client.get(reverse("registry:version-detail", args=["fraud-scorer", 1])).content.decode()
    assert re.search(r'href="/models/fraud-scorer/compare/\?a=1">Compare with another version</a>', body)


def test_a_complete_card_says_complete(client, data_scientist, fraud_model):
    ModelCardRevision.objects.create(
        model=fraud_model, author=data_scientist, intended_use="Score card payments", limitations="Cards only"
    )
    client.force_login(data_scientist)
    response = client.get(reverse("registry:version-detail", args=["fraud-scorer", 2]))
    assert response.context["card"].missing == []
    assert "Complete:" in text_of(response)
    assert "Score card payments" in text_of(response)


@pytest.mark.parametrize(
    ("person", "shown"),
    [("data_scientist", True), ("admin_user", True), ("ds_lead", False), ("model_risk", False)],
)
def test_edit_model_card_link_only_for_who_may_edit(request, client, fraud_model, person, shown):
    client.force_login(request.getfixturevalue(person))
    body = client.get(reverse("registry:version-detail", args=["fraud-scorer", 2])).content.decode()
    assert ("Edit model card" in body) is shown


def test_a_version_of_another_model_is_not_found_under_this_one(client, data_scientist, fraud_model):
    client.force_login(data_scientist)
    assert client.get(reverse("registry:version-detail", args=["fraud-scorer", 9])).status_code == 404


# --- editing the model card ----------------------------------------------------------------------

NARRATIVE = {
    "intended_use": "Score card-not-present payments",
    "out_of_scope_use": "Credit decisions",
    "limitations": "Trained on synthetic data",
    "ethical_considerations": "No protected attributes are used",
}


def test_the_owner_saves_the_card_as_a_new_revision(client, data_scientist, fraud_model):
    client.force_login(data_scientist)
    response = client.post(reverse("registry:card-edit", args=["fraud-scorer"]), NARRATIVE)
    assert response.status_code == 302
    assert response["Location"] == reverse("registry:version-detail", args=["fraud-scorer", 4])
    revision = fraud_model.card_revisions.get()
    assert revision.author == data_scientist
    assert {field: getattr(revision, field) for field in NARRATIVE} == NARRATIVE
    page = client.get(response["Location"]).content.decode()
    assert "The model card of fraud-scorer was saved." in page
    assert "Score card-not-present payments" in page


def test_the_editor_is_prefilled_with_the_current_revision_and_lists_revisions(
    client, data_scientist, ds_lead, fraud_model
):
    ModelCardRevision.objects.create(model=fraud_model, author=ds_lead, intended_use="old text")
    ModelCardRevision.objects.create(model=fraud_model, author=data_scientist, intended_use="current text")
    client.force_login(data_scientist)
    response = client.get(reverse("registry:card-edit", args=["fraud-scorer"]))
    body = response.content.decode()
    assert re.search(r'id="id_intended_use"[^>]*>current text</textarea>', body)
    revisions = squash(body.split('data-testid="revisions"')[1].split("</ol>")[0])
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC by dana current .* UTC by lee", revisions)
    assert "<title>Edit model card · fraud-scorer · Hafnium Portal</title>" in body


@pytest.mark.parametrize(
    ("person", "status"), [("ds_lead", 403), ("model_risk", 403), ("other_data_scientist", 404)]
)
def test_a_non_owners_post_changes_nothing(request, client, fraud_model, person, status):
    client.force_login(request.getfixturevalue(person))
    response = client.post(reverse("registry:card-edit", args=["fraud-scorer"]), NARRATIVE)
    assert response.status_code == status
    assert not ModelCardRevision.objects.exists()


def test_an_overlong_narrative_is_refused_with_400(client, data_scientist, fraud_model):
    client.force_login(data_scientist)
    response = client.post(
        reverse("registry:card-edit", args=["fraud-scorer"]), {"limitations": "x" * 20_001}
    )
    assert response.status_code == 400
    assert "Ensure this value has at most 20000 characters" in response.content.decode()
    assert not ModelCardRevision.objects.exists()


# --- compare -------------------------------------------------------------------------------------


def compare(client, name="fraud-scorer", **params):
    return client.get(reverse("registry:compare", args=[name]), params)


def test_compare_defaults_to_the_latest_version_against_production(client, data_scientist, fraud_model):
    client.force_login(data_scientist)
    response = compare(client)
    assert response.status_code == 200
    assert (response.context["version_a"].version, response.context["version_b"].version) == (4, 1)
    assert re.search(r'<option value="4" selected>v4', response.content.decode())
    assert "<title>Compare v4 and v1 · fraud-scorer · Hafnium Portal</title>" in response.content.decode()


def test_compare_without_production_takes_the_previous_version(client, data_scientist, team):
    model = model_ensure(name="young-model", team=team)
    for number in (1, 2, 3):
        make_version(model, number)
    client.force_login(data_scientist)
    response = compare(client, "young-model")
    assert (response.context["version_a"].version, response.context["version_b"].version) == (3, 2)
    response = compare(client, "young-model", a=2)
    assert (response.context["version_a"].version, response.context["version_b"].version) == (2, 1)
    # The oldest version has no previous one: the next one stands in.
    response = compare(client, "young-model", a=1)
    assert (response.context["version_a"].version, response.context["version_b"].version) == (1, 2)


def test_compare_from_the_production_version_page_takes_the_previous_version(
    client, data_scientist, fraud_model
):
    client.force_login(data_scientist)
    response = compare(client, a=1)
    assert (response.context["version_a"].version, response.context["version_b"].version) == (1, 2)
    response = compare(client, a=3)
    assert (response.context["version_a"].version, response.context["version_b"].version) == (3, 1)


@pytest.mark.parametrize("params", [{"a": 99}, {"b": 0}, {"a": "abc"}, {"a": 2, "b": "1.5"}])
def test_compare_with_a_version_not_of_this_model_is_a_400_with_the_reason(
    client, data_scientist, fraud_model, other_model, params
):
    client.force_login(data_scientist)
    response = compare(client, **params)
    assert response.status_code == 400
    error = squash(response.content.decode().split('data-testid="compare-error"')[1])
    assert "is not a version of this model." in error
    assert 'data-testid="roc-chart"' not in response.content.decode()


def test_compare_shows_metrics_side_by_side_with_the_difference(client, data_scientist, fraud_model):
    client.force_login(data_scientist)
    response = compare(client, a=3, b=1)
    rows = {row["name"]: row for row in response.context["metrics"]}
    assert list(rows) == ["roc_auc", "pr_auc", "ks", "brier"]
    assert rows["roc_auc"]["a"] == pytest.approx(0.88)
    assert rows["roc_auc"]["b"] == pytest.approx(0.86)
    assert rows["roc_auc"]["difference"] == pytest.approx(0.02)
    assert "+0.0200" in text_of(response)
    assert "[0.8700, 0.8900]" in text_of(response)


def test_compare_passes_both_curves_to_plotly_served_locally(client, data_scientist, fraud_model):
    client.force_login(data_scientist)
    body = compare(client, a=4, b=2).content.decode()
    data = json.loads(
        re.search(r'<script id="compare-data" type="application/json">(.*?)</script>', body).group(1)
    )
    assert [series["label"] for series in data["series"]] == ["v4 (Experiment)", "v2 (Staging)"]
    assert data["series"][0]["roc"]["tpr"] == [0.0, 0.6, 0.85, 1.0]
    assert data["series"][1]["pr"]["precision"] == [1.0, 0.7, 0.3, 0.02]
    scripts = re.findall(r'<script src="([^"]+)"', body)
    assert "/static/vendor/plotly/plotly.min.js" in scripts
    assert "/static/js/charts.js" in scripts
    assert all(src.startswith("/static/") for src in scripts)
    assert 'data-testid="roc-chart"' in body
    assert 'data-testid="pr-chart"' in body


def test_compare_says_when_a_version_has_no_curves(client, data_scientist, fraud_model):
    fraud_model.versions.filter(version=2).update(curves={})
    client.force_login(data_scientist)
    text = text_of(compare(client, a=4, b=2))
    assert "v2 has no ROC or precision\u2013recall curve recorded" in text
    assert "v4 has no" not in text


def test_compare_of_a_model_without_versions(client, data_scientist, team):
    model_ensure(name="empty-model", team=team)
    client.force_login(data_scientist)
    response = compare(client, "empty-model")
    assert response.status_code == 200
    assert "has no versions to compare yet" in response.content.decode()
    assert "plotly" not in response.content.decode()
