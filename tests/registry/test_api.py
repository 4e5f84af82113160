"""The registry's REST API: who sees what, filters, model cards, registering from a real MLflow run."""

import json
import re

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from apps.registry import cards, gateway
from apps.registry.models import DatasetVersion, ModelCardRevision, ModelVersion, RegisteredModel, Stage

pytestmark = pytest.mark.django_db

BOTH = {"fraud-scorer", "payments-anomaly"}
# Which models each person reads through the API (None: not signed in).
VISIBLE = {
    "anonymous": None,
    "data_scientist": {"fraud-scorer"},
    "other_data_scientist": {"payments-anomaly"},
    "ds_lead": BOTH,
    "ml_engineer": BOTH,
    "model_risk": BOTH,
    "compliance": BOTH,
    "manager": BOTH,
    "outsider": set(),
    "admin_user": BOTH,
}


def names(response) -> set[str]:
    assert response.status_code == 200, response.content
    return {row["name"] for row in response.json()["results"]}


def version_of(model, number) -> ModelVersion:
    return model.versions.get(version=number)


# --- who sees what -------------------------------------------------------------------------------


@pytest.mark.parametrize("person", VISIBLE)
@pytest.mark.parametrize("endpoint", ["models", "versions"])
def test_lists_hold_only_the_models_a_person_may_see(as_person, person, endpoint, fraud_model, other_model):
    response = as_person(person).get(f"/api/v1/{endpoint}/")

    if VISIBLE[person] is None:
        assert response.status_code in (401, 403)
        assert "results" not in response.json()
        return
    assert response.status_code == 200
    rows = response.json()["results"]
    listed = {row["name"] for row in rows} if endpoint == "models" else {row["model"] for row in rows}
    assert listed == VISIBLE[person]
    if endpoint == "versions":
        expected = {"fraud-scorer": 4, "payments-anomaly": 1}
        assert len(rows) == sum(expected[name] for name in VISIBLE[person])


# What each page of fraud-scorer v1 shows to someone who may see it.
FRAUD_SCORER_PAGES = {
    "model": ("/api/v1/models/fraud-scorer/", lambda body: body["name"] == "fraud-scorer"),
    "version": (
        "/api/v1/versions/{pk}/",
        lambda body: (body["model"], body["version"]) == ("fraud-scorer", 1),
    ),
    "model card": (
        "/api/v1/versions/{pk}/model-card/",
        lambda body: body["markdown"].startswith("# Model card: fraud-scorer v1\n"),
    ),
}


@pytest.mark.parametrize("person", VISIBLE)
@pytest.mark.parametrize("endpoint", FRAUD_SCORER_PAGES)
def test_fraud_scorer_pages_open_only_to_those_who_may_see_it(
    as_person, person, endpoint, fraud_model, other_model
):
    url, shows_fraud_scorer = FRAUD_SCORER_PAGES[endpoint]

    response = as_person(person).get(url.format(pk=version_of(fraud_model, 1).pk))

    if VISIBLE[person] is None:
        assert response.status_code in (401, 403)
    elif "fraud-scorer" in VISIBLE[person]:
        assert response.status_code == 200
        assert shows_fraud_scorer(response.json())
    else:
        assert response.status_code == 404
        assert "fraud-scorer" not in response.content.decode()


def test_token_authentication_reads_as_its_user(fraud_model, other_model, data_scientist):
    token = Token.objects.create(user=data_scientist)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")

    assert names(client.get("/api/v1/models/")) == {"fraud-scorer"}

    client.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    response = client.get("/api/v1/models/")
    assert response.status_code in (401, 403)
    assert response.json() == {"detail": "Invalid token."}


# --- what a model, a version, a card and a dataset say -------------------------------------------


def test_model_shows_team_owners_and_versions(as_person, fraud_model, other_model):
    client = as_person("data_scientist")

    detail = client.get("/api/v1/models/fraud-scorer/").json()

    assert detail == {
        "name": "fraud-scorer",
        "team": "fraud-analytics",
        "description": "Card fraud risk",
        "risk_tier": "high",
        "owners": ["dana"],
        "version_count": 4,
        "production_version": 1,
        "url": "http://testserver/api/v1/models/fraud-scorer/",
    }
    # The list computes the same numbers in its own query.
    assert client.get("/api/v1/models/").json()["results"] == [detail]


def test_model_without_production_version_says_null(as_person, other_model):
    detail = as_person("manager").get("/api/v1/models/payments-anomaly/").json()
    row = as_person("manager").get("/api/v1/models/").json()["results"][0]

    assert detail["production_version"] is None
    assert row["production_version"] is None
    assert detail["version_count"] == row["version_count"] == 1


def test_version_shows_its_lineage_and_evidence(as_person, fraud_model, dataset):
    version = version_of(fraud_model, 2)

    body = as_person("data_scientist").get(f"/api/v1/versions/{version.pk}/").json()

    assert body["model"] == "fraud-scorer"
    assert (body["version"], body["stage"]) == (2, "staging")
    assert body["run_id"] == version.run_id
    assert body["artifact_sha256"] == f"{2:064x}"
    assert body["created_by"] == "dana"
    assert body["dataset"] == dataset.pk
    assert body["metrics"]["roc_auc"] == pytest.approx(0.87)
    assert body["confidence_intervals"]["roc_auc"] == pytest.approx([0.86, 0.88])
    assert body["signature"] == version.signature
    assert body["registered_at"].startswith("2026-01-03T12:00:00")
    assert body["url"] == f"http://testserver/api/v1/versions/{version.pk}/"


def test_model_card_is_the_portal_card_and_says_what_is_missing(as_person, fraud_model, data_scientist):
    version = version_of(fraud_model, 1)
    client = as_person("data_scientist")

    incomplete = client.get(f"/api/v1/versions/{version.pk}/model-card/").json()
    ModelCardRevision.objects.create(
        model=fraud_model, intended_use="Score card payments", limitations="Cards only", author=data_scientist
    )
    complete = client.get(f"/api/v1/versions/{version.pk}/model-card/").json()

    assert incomplete["missing"] == ["intended_use", "limitations"]
    assert incomplete["complete"] is False
    assert complete["missing"] == []
    assert complete["complete"] is True
    card = cards.model_card(version)
    assert complete["sha256"] == card.sha256 != incomplete["sha256"]
    assert complete["markdown"] == card.markdown
    assert "Score card payments" in complete["markdown"]


def test_datasets_are_listed_and_read(as_person, dataset):
    body = as_person("outsider").get(f"/api/v1/datasets/{dataset.pk}/").json()

    assert body["name"] == "hafnium-transactions"
    assert (body["sha256"], body["md5"]) == ("a" * 64, "b" * 32)
    assert (body["size_bytes"], body["row_count"]) == (1234, 1000)
    assert body["schema"] == [{"name": "amount", "type": "double"}]
    assert body["location"] == dataset.path
    assert body["dvc_location"] == dataset.dvc_path
    assert as_person("anonymous").get(f"/api/v1/datasets/{dataset.pk}/").status_code in (401, 403)
    assert as_person("outsider").get(f"/api/v1/datasets/{dataset.pk + 1}/").status_code == 404


def test_a_dataset_shows_its_hash_and_a_location_relative_to_the_store_never_a_server_path(
    as_person, settings, tmp_path, data_scientist, team
):
    from apps.registry.services import dataset_register, model_ensure
    from apps.training import synthetic
    from tests.registry.fixtures import make_version

    settings.DATASET_ROOT = str(tmp_path / "store")
    source = tmp_path / "upload.parquet"
    synthetic.generate_transactions(500, seed=1).to_parquet(source, index=False)
    dataset = dataset_register(actor=data_scientist, name="txns", source=source)
    # A row written before locations were relative (an absolute path under the store) reads the same.
    legacy = DatasetVersion.objects.create(
        **{
            f.name: getattr(dataset, f.name)
            for f in DatasetVersion._meta.fields
            if f.name not in ("id", "name")
        },
        name="legacy",
    )
    DatasetVersion.objects.filter(pk=legacy.pk).update(
        path=f"{settings.DATASET_ROOT}/{dataset.path}", dvc_path=f"{settings.DATASET_ROOT}/{dataset.dvc_path}"
    )
    client = as_person("data_scientist")

    for pk in (dataset.pk, legacy.pk):
        response = client.get(f"/api/v1/datasets/{pk}/")
        body = response.json()
        assert body["sha256"] == dataset.sha256
        assert body["location"] == f"txns/{dataset.sha256}.parquet"
        assert body["dvc_location"] == f"txns/{dataset.sha256}.parquet.dvc"
        assert str(tmp_path) not in response.content.decode()
        assert "path" not in body
        assert "dvc_path" not in body
    assert str(tmp_path) not in client.get("/api/v1/datasets/").content.decode()
    # The version page shows the dataset's DVC pointer: relative too.
    version = make_version(model_ensure(name="txn-model", team=team), 1, dataset=legacy)
    page = client.get(f"/models/txn-model/versions/{version.version}/").content.decode()
    assert f"txns/{dataset.sha256}.parquet.dvc" in page
    assert str(tmp_path) not in page
    assert str(tmp_path) not in cards.model_card(version).markdown


# --- filters and pages ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("search=FRAUD", {"fraud-scorer"}),
        ("search=card+fraud", {"fraud-scorer"}),  # the description
        ("stage=production", {"fraud-scorer"}),
        ("stage=experiment", BOTH),
        ("stage=archived", set()),
        ("team=payments-risk", {"payments-anomaly"}),
        ("team=fraud-analytics&stage=staging", {"fraud-scorer"}),
    ],
)
def test_model_filters(as_person, fraud_model, other_model, query, expected):
    assert names(as_person("ml_engineer").get(f"/api/v1/models/?{query}")) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (
            "model=fraud-scorer",
            {("fraud-scorer", 4), ("fraud-scorer", 3), ("fraud-scorer", 2), ("fraud-scorer", 1)},
        ),
        ("stage=staging", {("fraud-scorer", 2)}),
        ("stage=experiment", {("fraud-scorer", 4), ("payments-anomaly", 1)}),
        ("model=payments-anomaly&stage=production", set()),
    ],
)
def test_version_filters(as_person, fraud_model, other_model, query, expected):
    response = as_person("ml_engineer").get(f"/api/v1/versions/?{query}")

    assert {(row["model"], row["version"]) for row in response.json()["results"]} == expected


def test_unknown_stage_is_refused_naming_the_parameter(as_person, fraud_model):
    response = as_person("ml_engineer").get("/api/v1/versions/?stage=retired")

    assert response.status_code == 400
    assert list(response.json()) == ["stage"]


def test_dataset_filter_by_name(as_person, dataset):
    DatasetVersion.objects.create(
        name="chargebacks",
        sha256="c" * 64,
        md5="d" * 32,
        size_bytes=1,
        row_count=1,
        path="p",
        dvc_path="p.dvc",
    )
    client = as_person("data_scientist")

    assert names(client.get("/api/v1/datasets/?name=chargebacks")) == {"chargebacks"}
    assert names(client.get("/api/v1/datasets/")) == {"chargebacks", "hafnium-transactions"}


def test_lists_are_paginated_by_fifty(as_person, other_model):
    RegisteredModel.objects.bulk_create(RegisteredModel(name=f"model-{n:02}") for n in range(50))
    client = as_person("manager")

    first = client.get("/api/v1/models/").json()
    second = client.get(first["next"]).json()

    assert first["count"] == 51
    assert len(first["results"]) == 50
    assert [row["name"] for row in second["results"]] == ["payments-anomaly"]


def test_model_list_reads_in_the_same_queries_however_many_models(as_person, fraud_model, data_scientist):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apps.registry.services import model_ensure
    from tests.registry.fixtures import make_version

    client = as_person("manager")

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/api/v1/models/").status_code == 200
        return len(captured)

    queries()  # the first request also warms caches (content types)
    one_model = queries()
    for n in range(3):
        model = model_ensure(name=f"scorer-{n}", owners=[data_scientist])
        make_version(model, 1, stage=Stage.PRODUCTION)

    assert queries() == one_model
    assert names(client.get("/api/v1/models/?stage=production")) == {
        "fraud-scorer",
        "scorer-0",
        "scorer-1",
        "scorer-2",
    }


# --- registering from a run ----------------------------------------------------------------------


def register(client, **body):
    return client.post("/api/v1/versions/register/", body, format="json")


def test_data_scientist_registers_the_model_of_a_real_run(
    as_person, mlflow_store, mlflow_runs, unique_name, data_scientist
):
    from mlflow.tracking import MlflowClient

    client = as_person("data_scientist")
    run_id = mlflow_runs.with_model()

    response = register(client, model=unique_name, run_id=run_id, team="fraud-analytics")

    assert response.status_code == 201, response.content
    assert response.json()["mlflow_user"]  # who MLflow says logged the run
    body = response.json()
    assert (body["model"], body["version"], body["stage"], body["run_id"]) == (
        unique_name,
        1,
        "experiment",
        run_id,
    )
    version = ModelVersion.objects.get(model__name=unique_name, version=1)
    assert body["id"] == version.pk
    assert re.fullmatch(r"[0-9a-f]{64}", version.artifact_sha256)
    assert body["artifact_sha256"] == version.artifact_sha256
    assert version.created_by == data_scientist
    assert [field["name"] for field in json.loads(version.signature["inputs"])] == ["amount", "night"]
    assert version.transitions.get().to_stage == Stage.EXPERIMENT
    model = client.get(f"/api/v1/models/{unique_name}/").json()
    assert (model["team"], model["owners"], model["version_count"]) == ("fraud-analytics", ["dana"], 1)
    assert MlflowClient(mlflow_store).get_model_version(unique_name, "1").run_id == run_id


def test_registering_a_run_that_does_not_exist_names_the_run(as_person, mlflow_store, unique_name):
    response = register(as_person("data_scientist"), model=unique_name, run_id="0" * 32)

    assert response.status_code == 404
    assert response.json() == {"detail": f"There is no run {'0' * 32} you may register."}
    assert not RegisteredModel.objects.filter(name=unique_name).exists()


def _mlflow_has_model(name: str) -> bool:
    return bool(gateway.client().search_registered_models(filter_string=f"name = '{name}'"))


def test_another_teams_data_scientist_cannot_register_a_run_and_cannot_tell_it_exists(
    as_person, mlflow_runs, unique_name, data_scientist, other_data_scientist
):
    """404, the very answer for a run that does not exist: a 403 would confirm the run id and its team."""
    run_id = mlflow_runs.with_model(team="fraud-analytics")

    response = register(as_person("other_data_scientist"), model=unique_name, run_id=run_id)

    assert response.status_code == 404
    assert response.json() == {"detail": f"There is no run {run_id} you may register."}
    assert not RegisteredModel.objects.filter(name=unique_name).exists()
    assert not ModelVersion.objects.filter(run_id=run_id).exists()
    assert not _mlflow_has_model(unique_name)
    # Naming a team of one's own for the new model changes nothing: the run is still not theirs.
    again = register(
        as_person("other_data_scientist"), model=unique_name, run_id=run_id, team="payments-risk"
    )
    assert again.status_code == 404
    assert not _mlflow_has_model(unique_name)


def test_the_team_of_a_run_is_also_known_from_its_experiment(
    as_person, settings, mlflow_runs, unique_name, data_scientist, other_data_scientist
):
    experiment = gateway.client().create_experiment(
        f"exp-{unique_name}",
        artifact_location=f"{settings.MLFLOW_ARTIFACT_ROOT}/exp-{unique_name}",
        tags={"hafnium.team": "fraud-analytics"},
    )
    run_id = mlflow_runs.with_model(team=None, experiment=experiment)

    assert register(as_person("other_data_scientist"), model=unique_name, run_id=run_id).status_code == 404
    response = register(as_person("data_scientist"), model=unique_name, run_id=run_id)

    assert response.status_code == 201, response.content
    assert RegisteredModel.objects.get(name=unique_name).team.slug == "fraud-analytics"


def test_a_run_of_no_known_team_is_registered_only_by_who_logged_it_into_a_model_they_own(
    as_person, mlflow_runs, unique_name, data_scientist, team
):
    from apps.registry.services import model_ensure

    theirs = mlflow_runs.with_model(team=None, user="dana")
    someone_elses = mlflow_runs.with_model(team=None, user="somebody")

    new_model = register(as_person("data_scientist"), model=unique_name, run_id=theirs)
    assert new_model.status_code == 403
    assert "belongs to no team" in new_model.json()["detail"]
    assert not RegisteredModel.objects.filter(name=unique_name).exists()

    model_ensure(name=unique_name, team=team, owners=[data_scientist])
    assert register(as_person("data_scientist"), model=unique_name, run_id=someone_elses).status_code == 403
    assert not ModelVersion.objects.filter(model__name=unique_name).exists()
    response = register(as_person("data_scientist"), model=unique_name, run_id=theirs)
    assert response.status_code == 201, response.content
    assert response.json()["mlflow_user"] == "dana"


def test_a_run_registered_under_one_model_needs_a_recorded_reason_to_go_under_another(
    as_person, mlflow_runs, unique_name, data_scientist
):
    from apps.audit.models import AuditEvent

    client = as_person("data_scientist")
    run_id = mlflow_runs.with_model(team="fraud-analytics")
    assert register(client, model=unique_name, run_id=run_id).status_code == 201

    # The same run into the same model again: the version it is already, nothing new.
    same = register(client, model=unique_name, run_id=run_id)
    assert same.status_code == 200
    assert same.json()["version"] == 1
    assert len(gateway.client().search_model_versions(f"run_id='{run_id}'")) == 1

    refused = register(client, model=f"{unique_name}-copy", run_id=run_id)
    assert refused.status_code == 409
    assert refused.json() == {
        "detail": f"run {run_id} is already registered as {unique_name} v1; registering it under "
        f"{unique_name}-copy too needs a reason, which is recorded"
    }
    assert not RegisteredModel.objects.filter(name=f"{unique_name}-copy").exists()
    assert not _mlflow_has_model(f"{unique_name}-copy")

    allowed = register(client, model=f"{unique_name}-copy", run_id=run_id, reason="a champion for EU traffic")
    assert allowed.status_code == 201, allowed.content
    event = AuditEvent.objects.filter(action="registry.version_registered").order_by("-id").first()
    assert event.object_id == str(allowed.json()["id"])
    assert event.after["reason"] == "a champion for EU traffic"
    assert event.after["already_registered_as"] == [f"{unique_name} v1"]


def test_a_run_already_a_version_of_a_teams_model_is_that_teams(
    as_person, mlflow_runs, unique_name, admin_user, team, other_data_scientist
):
    """An untagged run the portal knows as a version of a Fraud Analytics model is that team's run."""
    from apps.registry.services import model_ensure

    model_ensure(name=f"{unique_name}-fraud", team=team)
    run_id = mlflow_runs.with_model(team=None)
    assert register(as_person("admin_user"), model=f"{unique_name}-fraud", run_id=run_id).status_code == 201

    response = register(
        as_person("other_data_scientist"), model=unique_name, run_id=run_id, reason="mine now"
    )

    assert response.status_code == 404
    assert not RegisteredModel.objects.filter(name=unique_name).exists()


def test_registering_a_run_without_a_model_is_refused(as_person, mlflow_runs, unique_name):
    run_id = mlflow_runs.with_a_metric_only()

    response = register(as_person("data_scientist"), model=unique_name, run_id=run_id)

    assert response.status_code == 400
    assert response.json() == {"detail": f"run {run_id} has no logged model"}
    assert not RegisteredModel.objects.filter(name=unique_name).exists()


def test_registering_while_mlflow_is_down_is_a_503_and_writes_nothing(as_person, mlflow_unreachable):
    response = register(as_person("data_scientist"), model="chargeback-scorer", run_id="0" * 32)

    assert response.status_code == 503
    assert response.json()["detail"].startswith("MLflow is unavailable: ")
    assert not RegisteredModel.objects.exists()
    assert not ModelVersion.objects.exists()


def test_registering_against_a_dead_mlflow_server_answers_503_json_at_once_with_the_portals_bounds(
    as_person, settings, monkeypatch, data_scientist
):
    """No MLFLOW_HTTP_* variable set by anyone but the portal: MLflow's own defaults (7 retries with
    backoff, minutes per call) would hold the request far beyond any web server's timeout."""
    import time

    from hafnium_portal.embedded_redis import free_port

    for variable in ("TIMEOUT", "MAX_RETRIES", "BACKOFF_FACTOR", "BACKOFF_JITTER"):
        monkeypatch.delenv(f"MLFLOW_HTTP_REQUEST_{variable}", raising=False)
    settings.MLFLOW_TRACKING_URI = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()

    response = register(as_person("data_scientist"), model="chargeback-scorer", run_id="0" * 32)

    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"].startswith("MLflow is unavailable: ")
    assert time.monotonic() - started < 15  # the point of the test: it does not hang
    assert not RegisteredModel.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"run_id": "abc"}, "model"),
        ({"model": "chargeback-scorer"}, "run_id"),
        ({"model": "chargeback-scorer", "run_id": ""}, "run_id"),
        ({"model": "charge/back", "run_id": "abc"}, "model"),
        ({"model": "chargeback-scorer", "run_id": "abc", "team": "no-such-team"}, "team"),
    ],
)
def test_registering_with_a_bad_field_names_the_field(as_person, data_scientist, body, field):
    response = as_person("data_scientist").post("/api/v1/versions/register/", body, format="json")

    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert not RegisteredModel.objects.exists()


def test_missing_field_says_it_is_required(as_person, data_scientist):
    response = register(as_person("data_scientist"), model="chargeback-scorer")

    assert response.json() == {"run_id": ["This field is required."]}


@pytest.mark.parametrize("person", ["manager", "ml_engineer", "outsider"])
def test_people_who_do_not_register_are_refused(as_person, person, fraud_model):
    response = register(as_person(person), model="fraud-scorer", run_id="abc")

    assert response.status_code == 403
    assert fraud_model.versions.count() == 4
    assert not RegisteredModel.objects.exclude(pk=fraud_model.pk).exists()


def test_anonymous_cannot_register(as_person):
    assert register(as_person("anonymous"), model="chargeback-scorer", run_id="abc").status_code in (401, 403)


def test_registering_into_another_teams_model_is_not_found(as_person, fraud_model):
    response = register(as_person("other_data_scientist"), model="fraud-scorer", run_id="abc")

    assert response.status_code == 404
    assert fraud_model.versions.count() == 4


def test_registering_into_a_team_one_is_not_in_is_forbidden(as_person, other_team):
    response = register(
        as_person("data_scientist"), model="chargeback-scorer", run_id="abc", team="payments-risk"
    )

    assert response.status_code == 403
    assert response.json() == {"detail": "You are not a member of team payments-risk."}
    assert not RegisteredModel.objects.exists()


# --- the schema and its documentation ------------------------------------------------------------


def test_schema_lists_every_endpoint(as_person):
    response = as_person("data_scientist").get("/api/schema/?format=json")

    assert response.status_code == 200
    assert set(response.json()["paths"]) >= {
        "/api/v1/models/",
        "/api/v1/models/{name}/",
        "/api/v1/versions/",
        "/api/v1/versions/{id}/",
        "/api/v1/versions/{id}/model-card/",
        "/api/v1/versions/register/",
        "/api/v1/datasets/",
        "/api/v1/datasets/{id}/",
    }


def test_schema_and_docs_need_a_signed_in_user(as_person):
    anonymous = as_person("anonymous")

    assert anonymous.get("/api/schema/").status_code in (401, 403)
    assert anonymous.get("/api/docs/").status_code in (401, 403)


def test_swagger_ui_is_served_from_local_static_files(as_person):
    client = as_person("data_scientist")

    html = client.get("/api/docs/").content.decode()

    assets = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*swagger-ui[^"']*)["']""", html)
    assert any(asset.endswith("swagger-ui-bundle.js") for asset in assets), html
    assert all(not re.match(r"(https?:)?//", asset) for asset in assets)
    assert not re.search(r"https?://[^\s\"']*swagger", html)
    for asset in assets:
        assert client.get(asset).status_code == 200, asset
