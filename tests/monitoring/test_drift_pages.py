"""The drift report pages: who sees which report (the registry's visibility), the list's filters and
pages, a report, its self-contained export, starting a run and its progress, the home card."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.monitoring.models import DriftRun, FeatureResult, MonitoringPolicy
from apps.registry.models import ModelVersion, Stage
from apps.registry.services import model_ensure

pytestmark = pytest.mark.django_db


def make_model(name, team, *, stage=Stage.PRODUCTION):
    model = model_ensure(name=name, team=team)
    version = ModelVersion.objects.create(model=model, version=1, stage=stage, registered_at=timezone.now())
    return model, version


def make_run(model, version, *, verdict="drift", ended=None, drifted=("amount",)):
    ended = ended or timezone.now()
    policy = MonitoringPolicy.objects.get_or_create(model=model, version=1)[0]
    run = DriftRun.objects.create(
        model=model, version=version, policy=policy, status=DriftRun.Status.SUCCEEDED, verdict=verdict,
        window_start=ended - timedelta(hours=24), window_end=ended, rows=5000, drifted_features=list(drifted),
        summary={
            "score": {"psi": 0.05, "labels": ["<= 0.1", "> 0.1"], "reference_shares": [0.9, 0.1],
                      "current_shares": [0.8, 0.2]},
            "prediction_shift": {"mean_reference": 0.02, "mean_current": 0.03,
                                 "decline_rate_reference": 0.01, "decline_rate_current": 0.02,
                                 "verdict": "shift", "reason": "mean score +50%"},
            "quality": {"kind": "estimated", "auc": 0.9, "holdout_auc": 0.93, "reason": "few labels",
                        "interval": [None, None]},
            "thresholds": {"psi_watch": 0.1, "psi_drift": 0.2},
        },
    )  # fmt: skip
    FeatureResult.objects.create(
        run=run, feature="amount", kind="numeric", verdict=verdict, psi=0.8, js=0.1, ks=0.3, ks_pvalue=1e-9,
        pvalue_adjusted=1e-8, n_reference=9000, n_current=5000, reason="PSI 0.800 >= 0.2",
        detail={"labels": ["<= 10", "(10, 20]", "> 20"], "reference_shares": [0.3, 0.4, 0.3],
                "current_shares": [0.1, 0.3, 0.6]},
    )  # fmt: skip
    FeatureResult.objects.create(
        run=run, feature="merchant_embedding", kind="embedding", verdict="no drift", psi=0.01, js=0.001,
        detail={"explained_variance_ratio": [0.4, 0.2, 0.1], "distance_mean_reference": 4.0,
                "distance_mean_current": 4.1,
                "parts": [{"name": "pc1", "psi": 0.01, "js": 0.001, "labels": ["<= 0", "> 0"],
                           "reference_shares": [0.5, 0.5], "current_shares": [0.49, 0.51]}]},
    )  # fmt: skip
    return run


@pytest.fixture
def report(team):
    model, version = make_model("fraud-scorer", team)
    return make_run(model, version)


PEOPLE_WHO_SEE = ["data_scientist", "ds_lead", "ml_engineer", "model_risk", "compliance", "manager"]
PEOPLE_WHO_DO_NOT = ["other_data_scientist", "outsider"]


@pytest.mark.parametrize(
    ("person", "status"),
    [("anonymous", 302)] + [(p, 200) for p in PEOPLE_WHO_SEE] + [(p, 404) for p in PEOPLE_WHO_DO_NOT],
)
def test_a_report_is_for_those_who_may_see_its_model(as_person, report, person, status):
    response = as_person(person).get(f"/monitoring/drift/runs/{report.pk}/")
    assert response.status_code == status
    if status == 200:
        assert b'data-feature="amount"' in response.content
        assert b"drift-charts" in response.content


@pytest.mark.parametrize(
    ("person", "status"),
    [("anonymous", 302)] + [(p, 200) for p in PEOPLE_WHO_SEE] + [(p, 404) for p in PEOPLE_WHO_DO_NOT],
)
def test_the_export_is_for_those_who_may_see_its_model(as_person, report, person, status):
    response = as_person(person).get(f"/monitoring/drift/runs/{report.pk}/export")
    assert response.status_code == status


@pytest.mark.parametrize(
    ("person", "listed"),
    [("manager", True), ("data_scientist", True), ("other_data_scientist", False), ("outsider", False)],
)
def test_the_list_shows_the_reports_of_visible_models_only(as_person, report, person, listed):
    response = as_person(person).get("/monitoring/drift/")
    assert response.status_code == 200
    assert (f'href="/monitoring/drift/runs/{report.pk}/"'.encode() in response.content) is listed


def test_an_open_investigation_is_shown_on_the_report(as_person, report, data_scientist):
    from apps.monitoring.models import Investigation

    report.model.owners.add(data_scientist)
    Investigation.objects.create(model=report.model, run=report, reason="prediction shift: mean score +50%")
    response = as_person("manager").get(f"/monitoring/drift/runs/{report.pk}/")
    assert b'data-testid="investigations"' in response.content
    assert b"owners of fraud-scorer (dana)" in response.content


def test_the_export_is_one_self_contained_html_file(as_person, report):
    response = as_person("manager").get(f"/monitoring/drift/runs/{report.pk}/export")

    assert response["Content-Type"] == "text/html; charset=utf-8"
    disposition = response["Content-Disposition"]
    assert disposition.startswith("attachment; filename=")
    assert f"drift-report-fraud-scorer-run{report.pk}-" in disposition
    html = response.content.decode()
    assert "<script src=" not in html
    assert "<link " not in html
    assert "Plotly" in html  # plotly.js itself, inlined
    assert 'id="drift-charts"' in html
    assert "chart-heatmap" in html


def test_filters_and_pagination(as_person, team):
    model, version = make_model("fraud-scorer", team)
    other, other_version = make_model("churn-model", team)
    now = timezone.now()
    for day in range(30):
        make_run(model, version, verdict="drift" if day % 2 else "no drift", ended=now - timedelta(days=day))
    make_run(other, other_version, verdict="watch")
    client = as_person("manager")

    first = client.get("/monitoring/drift/")
    assert first.content.count(b'data-testid="report-row"') == 25
    second = client.get("/monitoring/drift/?page=2")
    assert second.content.count(b'data-testid="report-row"') == 6
    by_model = client.get("/monitoring/drift/?model=churn-model")
    assert by_model.content.count(b'data-testid="report-row"') == 1
    by_verdict = client.get("/monitoring/drift/?model=fraud-scorer&verdict=drift")
    assert by_verdict.content.count(b'data-testid="report-row"') == 15
    since = (now - timedelta(days=4)).date().isoformat()
    by_date = client.get(f"/monitoring/drift/?model=fraud-scorer&date_from={since}")
    assert by_date.content.count(b'data-testid="report-row"') == 5
    paged = client.get("/monitoring/drift/?verdict=drift&page=1")
    assert b"verdict=drift&amp;page=2" not in paged.content  # 15 fit on one page
    empty = client.get("/monitoring/drift/?model=nothing-here")
    assert b'data-testid="no-reports"' in empty.content


@pytest.mark.parametrize(
    "query",
    ["verdict=maybe", "date_from=yesterday", "model=bad%00name", "date_from=2026-12-03&date_to=2026-12-01"],
)
def test_bad_filters_are_form_errors_not_500s(as_person, report, query):
    response = as_person("manager").get(f"/monitoring/drift/?{query}")
    assert response.status_code == 400
    assert b"This filter was left out." in response.content


def test_an_unknown_or_hostile_report_id_is_404(as_person):
    assert as_person("manager").get("/monitoring/drift/runs/999999/").status_code == 404
    assert as_person("manager").get("/monitoring/drift/runs/1%00/").status_code == 404


@pytest.mark.parametrize(
    ("person", "status"),
    [("anonymous", 302), ("manager", 302), ("ml_engineer", 302), ("data_scientist", 302),
     ("model_risk", 403), ("other_data_scientist", 404), ("outsider", 404)],
)  # fmt: skip
def test_who_may_start_a_drift_run(as_person, team, person, status):
    model, _ = make_model("fraud-scorer", team)
    response = as_person(person).post("/monitoring/drift/models/fraud-scorer/run")
    assert response.status_code == status
    runs = DriftRun.objects.filter(model=model)
    if person == "anonymous" or status != 302:
        assert not runs.exists()
        return
    run = runs.get()
    assert response["Location"] == f"/monitoring/drift/runs/{run.pk}/"
    assert run.status == DriftRun.Status.QUEUED
    assert run.trigger == DriftRun.Trigger.MANUAL
    assert (
        run.requested_by.username
        == {"manager": "max", "ml_engineer": "mia", "data_scientist": "dana"}[person]
    )


def test_starting_a_run_without_a_production_version_says_why(as_person, team):
    make_model("fraud-scorer", team, stage=Stage.STAGING)
    response = as_person("manager").post("/monitoring/drift/models/fraud-scorer/run", follow=True)
    assert b"has no version in Production" in response.content
    assert not DriftRun.objects.exists()
    assert as_person("manager").get("/monitoring/drift/models/fraud-scorer/run").status_code == 405


def test_a_running_report_shows_a_progress_bar_that_reloads_when_done(as_person, report):
    DriftRun.objects.filter(pk=report.pk).update(
        status=DriftRun.Status.RUNNING, chunks_total=4, chunks_done=2
    )
    client = as_person("manager")
    page = client.get(f"/monitoring/drift/runs/{report.pk}/")
    assert b'data-testid="drift-progress"' in page.content
    assert b'aria-valuenow="40"' in page.content
    polling = client.get(f"/monitoring/drift/runs/{report.pk}/progress")
    assert "HX-Refresh" not in polling
    DriftRun.objects.filter(pk=report.pk).update(status=DriftRun.Status.SUCCEEDED)
    done = client.get(f"/monitoring/drift/runs/{report.pk}/progress")
    assert done["HX-Refresh"] == "true"
    assert client.get(f"/monitoring/drift/runs/{report.pk}/export").status_code == 200


def test_the_home_card_shows_the_latest_verdict_of_each_production_model(as_person, team):
    model, version = make_model("fraud-scorer", team)
    make_run(model, version, verdict="no drift", ended=timezone.now() - timedelta(days=1))
    latest = make_run(model, version, verdict="drift")
    response = as_person("manager").get("/")
    assert b'data-testid="card-drift-verdicts"' in response.content
    assert f'href="/monitoring/drift/runs/{latest.pk}/"'.encode() in response.content
    assert response.content.count(b'data-testid="drift-verdict"') == 1
    assert b'data-testid="card-drift-verdicts"' not in as_person("outsider").get("/").content


@pytest.fixture
def investigation(report, data_scientist):
    from apps.monitoring.models import Investigation

    report.model.owners.add(data_scientist)
    return Investigation.objects.create(model=report.model, run=report, reason="prediction shift: mean +50%")


@pytest.mark.parametrize(
    ("person", "status", "closed"),
    [("anonymous", 302, False), ("data_scientist", 302, True), ("ml_engineer", 302, True),
     ("model_risk", 302, True), ("manager", 403, False), ("compliance", 403, False),
     ("other_data_scientist", 404, False), ("outsider", 404, False)],
)  # fmt: skip
def test_who_may_close_an_investigation(request, as_person, investigation, person, status, closed):
    from apps.audit.models import AuditEvent

    response = as_person(person).post(
        f"/monitoring/drift/investigations/{investigation.pk}/close", {"note": "a new merchant mix, expected"}
    )
    assert response.status_code == status
    investigation.refresh_from_db()
    assert (investigation.status == "closed") is closed
    assert AuditEvent.objects.filter(action="monitoring.investigation_closed").exists() is closed
    if closed:
        assert response["Location"] == f"/monitoring/drift/runs/{investigation.run_id}/"
        assert investigation.note == "a new merchant mix, expected"
        assert investigation.closed_by == request.getfixturevalue(person)
        assert investigation.closed_at is not None


def test_closing_needs_a_note_and_happens_once(as_person, investigation):
    client = as_person("ml_engineer")
    url = f"/monitoring/drift/investigations/{investigation.pk}/close"
    report = f"/monitoring/drift/runs/{investigation.run_id}/"
    assert b'data-testid="close-investigation"' in client.get(report).content
    assert b'data-testid="close-investigation"' not in as_person("manager").get(report).content

    empty = client.post(url, {"note": "   "}, follow=True)
    assert b"a note is needed" in empty.content
    too_long = client.post(url, {"note": "x" * 2001}, follow=True)
    assert b"at most 2000 characters" in too_long.content
    nul = client.post(url, {"note": "found\x00it"}, follow=True)
    assert b"Null characters are not allowed" in nul.content
    investigation.refresh_from_db()
    assert investigation.status == "open"

    client.post(url, {"note": "seasonal"})
    again = client.post(url, {"note": "seasonal again"}, follow=True)
    assert b"already closed" in again.content
    investigation.refresh_from_db()
    assert investigation.note == "seasonal"
    after = client.get(report)
    assert b'data-testid="close-investigation"' not in after.content
    assert b'data-testid="investigations"' not in after.content
    assert client.get(url).status_code == 405
