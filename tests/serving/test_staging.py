"""The staging environment of the scoring API: its own clients, routing table, cache and log entries."""

import json

import pytest
from django.core.management import call_command

from apps.serving import hotpath, routing
from apps.serving.routing import routes_get, routes_publish, routes_set
from apps.serving.services import staging_client_token

from .conftest import config_refresh

pytestmark = pytest.mark.django_db

STAGING = "score?environment=staging"


@pytest.fixture
def staged(serving, ml_engineer):
    """v2 in the Staging stage, alone in the staging routing table (published), and a staging token."""
    serving.add_version(2)
    table = routes_set(model=serving.model, environment="staging", weights={2: 10_000}, actor=ml_engineer,
                       reason="staging tests")  # fmt: skip
    routes_publish(serving.name, "staging", table.revision, table.versions)
    token = staging_client_token()
    config_refresh()
    return token


def logged(transaction_id: str) -> list[dict]:
    entries = hotpath.redis_client().xrange(hotpath.LOG_STREAM)
    return [
        {key.decode(): value.decode() for key, value in fields.items()}
        for _, fields in entries
        if fields[b"transaction_id"] == transaction_id.encode()
    ]


def test_the_staging_version_answers_staging_requests_and_production_is_unaffected(
    serving, scoring_client, staged
):
    staging = scoring_client(serving.item(0, transaction_id="st-1"), token=staged, path=STAGING)
    batch = scoring_client(
        {"items": [serving.item(i, transaction_id=f"stb-{i}") for i in range(30)]}, token=staged, path=STAGING
    )
    production = scoring_client({"items": [serving.item(i, transaction_id=f"pr-{i}") for i in range(30)]})

    assert staging.status_code == 200, staging.content
    assert staging.json()["version"] == 2
    assert {answer["version"] for answer in batch.json()["items"]} == {2}
    assert {answer["version"] for answer in production.json()["items"]} == {1}
    assert routes_get(serving.model) == {}
    assert not hotpath.redis_client().exists(routing.routes_key(serving.name, "production"))
    assert [entry["environment"] for entry in logged("st-1")] == ["staging"]
    assert [entry["environment"] for entry in logged("pr-0")] == ["production"]


def test_a_production_client_gets_403_on_staging_and_a_staging_client_403_on_production(
    serving, scoring_client, staged
):
    refused = scoring_client(serving.item(0, transaction_id="x-1"), path=STAGING)
    assert refused.status_code == 403
    assert "staging" in refused.json()["detail"]
    assert scoring_client(serving.item(0, transaction_id="x-2"), token=staged).status_code == 403
    assert scoring_client(serving.item(0, transaction_id="x-3"), token="", path=STAGING).status_code == 401
    assert not logged("x-1")
    assert not logged("x-2")


def test_the_same_transaction_in_each_environment_is_answered_and_cached_apart(
    serving, scoring_client, staged
):
    staging = scoring_client(serving.item(4, transaction_id="both"), token=staged, path=STAGING).json()
    production = scoring_client(serving.item(4, transaction_id="both")).json()
    again = scoring_client(serving.item(4, transaction_id="both"), token=staged, path=STAGING).json()

    assert (staging["version"], production["version"]) == (2, 1)
    assert again == staging
    assert sorted(entry["environment"] for entry in logged("both")) == ["production", "staging"]


def test_without_a_staging_table_nothing_answers_staging(serving, scoring_client):
    token = staging_client_token()
    config_refresh()
    response = scoring_client(serving.item(0), token=token, path=STAGING)
    assert response.status_code == 503
    assert "staging" in response.json()["detail"]


def test_a_version_only_staging_routes_to_gets_no_production_traffic(serving, scoring_client, staged):
    answers = scoring_client(
        {
            "items": [
                dict(serving.item(i % 200, transaction_id=f"only-{i}"), entity_id=f"e{i}") for i in range(100)
            ]
        }
    ).json()["items"]
    assert {answer["version"] for answer in answers} == {1}


@pytest.mark.parametrize("value", ["canary", "Production", "staging%00", ""])
def test_an_unknown_environment_is_a_400_naming_it(serving, scoring_client, value):
    response = scoring_client(serving.item(0), path=f"score?environment={value}")
    assert response.status_code == 400
    assert "environment" in response.json()


def test_create_scoring_client_staging_prints_a_token_that_scores_staging(
    serving, scoring_client, staged, capsys
):
    call_command("create_scoring_client", "staging-ci", "--staging")
    token = capsys.readouterr().out.strip()
    config_refresh()
    assert (
        scoring_client(serving.item(0, transaction_id="ci-1"), token=token, path=STAGING).json()["version"]
        == 2
    )
    assert scoring_client(serving.item(0, transaction_id="ci-2"), token=token).status_code == 403
    call_command("create_scoring_client", "staging-ci", "--staging")
    assert capsys.readouterr().out.strip() == token, "idempotent: the same token again"


def test_staging_client_token_is_one_client_made_once(db):
    assert staging_client_token() == staging_client_token()


def test_the_embedding_is_logged_as_json_and_is_not_a_model_input(serving, scoring_client):
    with_embedding = scoring_client(dict(serving.item(0, transaction_id="emb-1"), embedding=[0.5, -1, 2e-3]))
    without = scoring_client(serving.item(0, transaction_id="emb-2"))

    assert with_embedding.status_code == 200
    assert with_embedding.json()["score"] == pytest.approx(without.json()["score"])
    assert json.loads(logged("emb-1")[0]["embedding"]) == [0.5, -1.0, 0.002]
    assert logged("emb-2")[0]["embedding"] == ""


@pytest.mark.parametrize(
    "embedding",
    ["0.5,1", [], [0.1] * 257, [0.1, "x"], [True, 0.1], [[0.1]], {"a": 1}],
    ids=["text", "empty", "too-long", "string", "bool", "nested", "object"],
)
def test_a_bad_embedding_is_a_400_naming_it(serving, scoring_client, embedding):
    single = scoring_client(dict(serving.item(0), embedding=embedding))
    batch = scoring_client({"items": [serving.item(1), dict(serving.item(0), embedding=embedding)]})

    assert single.status_code == 400
    assert list(single.json()) == ["embedding"]
    assert batch.status_code == 400
    assert list(batch.json()) == ["items[1].embedding"]
