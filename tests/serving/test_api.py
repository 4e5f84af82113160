"""The scoring API through Django's test client, with the real Redis, database, MLflow model and scorer."""

import json

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from apps.audit.models import AuditEvent
from apps.serving import config, hotpath, runtime, scorers
from apps.serving.models import FallbackRule, Feedback
from apps.serving.services import policy_publish, rule_save

from .conftest import serving_reset

pytestmark = pytest.mark.django_db

ANSWER_FIELDS = {"request_id", "transaction_id", "model", "version", "score", "decision", "fallback"}


def test_one_transaction_is_scored_by_the_production_version(serving, scoring_client):
    response = scoring_client(serving.item(0))

    assert response.status_code == 200, response.content
    answer = response.json()
    assert set(answer) == ANSWER_FIELDS
    assert answer["transaction_id"] == "t-0"
    assert answer["model"] == serving.name
    assert answer["version"] == 1
    assert 0.0 <= answer["score"] <= 1.0
    assert answer["decision"] in ("approve", "review", "decline")
    assert answer["fallback"] is False


def served_by(serving, number: int = 1):
    """The scorer this process serves the version with."""
    return scorers.pool.get(serving.name, config.peek().models[serving.name].versions[number])


def test_scoring_goes_through_the_compiled_scorer(serving, scoring_client):
    answer = scoring_client(serving.item(0)).json()
    scorer = served_by(serving)

    assert isinstance(scorer, runtime.CompiledScorer)
    assert answer["score"] == pytest.approx(scorer.predict_proba([serving.item(0)["features"]])[0], abs=1e-12)


@pytest.mark.pyfunc
def test_a_version_without_a_compiled_scorer_is_served_by_the_logged_model(serving, scoring_client):
    answer = scoring_client(serving.item(0)).json()

    assert isinstance(served_by(serving), runtime.PyfuncScorer)
    assert answer["fallback"] is False
    assert 0.0 <= answer["score"] <= 1.0


def test_a_batch_is_answered_in_order_with_the_scores_of_single_requests(serving, scoring_client):
    items = [serving.item(index) for index in range(20)]
    batch = scoring_client({"items": items}).json()["items"]
    singles = [scoring_client(serving.item(index, transaction_id=f"s-{index}")).json() for index in range(20)]

    assert [answer["transaction_id"] for answer in batch] == [f"t-{index}" for index in range(20)]
    assert [answer["score"] for answer in batch] == pytest.approx([a["score"] for a in singles], abs=1e-12)
    assert len({answer["request_id"] for answer in batch}) == 20


def test_decision_follows_the_models_thresholds(serving, scoring_client, ml_engineer):
    policy_publish(
        actor=ml_engineer, model=serving.model, review_at=0.0, decline_at=1.0, latency_budget_ms=60_000
    )
    serving_reset()
    assert scoring_client(serving.item(0)).json()["decision"] == "review"

    policy_publish(
        actor=ml_engineer, model=serving.model, review_at=0.0, decline_at=0.0, latency_budget_ms=60_000
    )
    serving_reset()
    assert scoring_client(serving.item(1)).json()["decision"] == "decline"
    assert AuditEvent.objects.filter(action="serving.policy_published").count() == 2


def test_a_retry_gets_the_same_answer_and_is_logged_once(serving, scoring_client):
    first = scoring_client(serving.item(3, transaction_id="retry-1")).json()
    again = scoring_client(serving.item(3, transaction_id="retry-1")).json()

    assert again == first
    entries = hotpath.redis_client().xrange(hotpath.LOG_STREAM)
    logged = [fields for _, fields in entries if fields[b"transaction_id"] == b"retry-1"]
    assert len(logged) == 1
    assert logged[0][b"request_id"].decode() == first["request_id"]


def test_a_warm_request_makes_no_database_query(serving, scoring_client, django_assert_num_queries):
    scoring_client(serving.item(0))  # the process builds its copy of the config once
    with django_assert_num_queries(0):
        response = scoring_client({"items": [serving.item(i, transaction_id=f"q-{i}") for i in range(5)]})
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda item: item["features"].pop("amount"), "features.amount"),
        (lambda item: item["features"].update(favourite_colour="blue"), "features.favourite_colour"),
        (lambda item: item["features"].update(amount="12.5"), "features.amount"),
        (lambda item: item["features"].update(amount=True), "features.amount"),
        (lambda item: item["features"].update(channel=3), "features.channel"),
        (lambda item: item["features"].update(channel="a\x00b"), "features.channel"),
        (lambda item: item.pop("transaction_id"), "transaction_id"),
        (lambda item: item.update(transaction_id=17), "transaction_id"),
        (lambda item: item.update(features=[1, 2]), "features"),
        (lambda item: item.update(extra="x"), "extra"),
    ],
    ids=["missing", "extra", "string-for-number", "bool-for-number", "number-for-text", "nul", "no-id",
         "id-not-text", "features-not-object", "unknown-field"],
)  # fmt: skip
def test_each_bad_input_is_a_400_naming_the_field(serving, scoring_client, change, field):
    item = serving.item(0)
    change(item)
    single = scoring_client(item)
    batch = scoring_client({"items": [serving.item(1), item]})

    assert single.status_code == 400
    assert field in single.json()
    assert batch.status_code == 400
    assert f"items[1].{field}" in batch.json()
    assert not hotpath.redis_client().exists(hotpath.LOG_STREAM), "nothing half-logged"


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_refused(serving, scoring_client, constant):
    body = json.dumps(serving.item(0)).replace('"amount": ', f'"amount": {constant}, "x": ', 1)
    response = scoring_client(body)
    assert response.status_code == 400
    assert "detail" in response.json()


def test_an_integral_float_is_taken_for_an_integer_feature_but_a_fraction_is_not(serving, scoring_client):
    integer = next(name for name, value in serving.rows[0].items() if isinstance(value, int))
    assert scoring_client(serving.item(0, **{integer: 2.0})).status_code == 200
    response = scoring_client(serving.item(1, **{integer: 2.5}))
    assert response.status_code == 400
    assert f"features.{integer}" in response.json()


def test_an_unknown_category_is_scored_as_training_decided(serving, scoring_client):
    response = scoring_client(serving.item(0, merchant_category="never-seen-before"))
    assert response.status_code == 200
    assert response.json()["fallback"] is False


@pytest.mark.parametrize(
    ("body", "status", "key"),
    [
        ("{not json", 400, "detail"),
        ('{"items": []}', 400, "items"),
        ("[1, 2]", 400, "non_field_errors"),
    ],
)
def test_malformed_bodies_are_clear_400s(serving, scoring_client, body, status, key):
    response = scoring_client(body)
    assert response.status_code == status
    assert key in response.json()


def test_a_batch_over_the_limit_is_refused(serving, scoring_client, settings):
    settings.SERVING_MAX_BATCH = 10
    response = scoring_client({"items": [serving.item(i % 200, transaction_id=f"b-{i}") for i in range(11)]})
    assert response.status_code == 400
    assert "At most 10" in response.json()["items"][0]


def test_duplicate_transaction_ids_in_a_batch_are_refused(serving, scoring_client):
    response = scoring_client(
        {"items": [serving.item(0, transaction_id="d"), serving.item(1, transaction_id="d")]}
    )
    assert response.status_code == 400
    assert "items[1].transaction_id" in response.json()


def test_wrong_content_type_and_oversized_body(serving, scoring_client, settings):
    assert scoring_client(serving.item(0), content_type="text/plain").status_code == 415
    settings.SERVING_MAX_BODY_BYTES = 100
    assert scoring_client(serving.item(0)).status_code == 413


def test_unknown_model_is_404(serving, scoring_client):
    response = scoring_client(serving.item(0), name="no-such-model")
    assert response.status_code == 404
    assert scoring_client(serving.item(0), name="bad%00name").status_code == 404


def test_no_token_is_401_and_a_token_without_the_permission_is_403(serving, scoring_client, data_scientist):
    assert scoring_client(serving.item(0), token="").status_code == 401
    assert scoring_client(serving.item(0), token="f" * 40).status_code == 401
    person_token = Token.objects.create(user=data_scientist)
    serving_reset()
    response = scoring_client(serving.item(0), token=person_token.key)
    assert response.status_code == 403


def test_a_deactivated_client_is_refused_once_the_change_is_published(serving, scoring_client):
    assert scoring_client(serving.item(0)).status_code == 200
    get_user_model().objects.filter(username="java-backend").update(is_active=False)
    serving_reset()
    assert scoring_client(serving.item(1)).status_code == 401


def test_rules_answer_when_the_version_cannot_load(serving, scoring_client, ml_engineer, settings):
    from apps.registry.models import ModelVersion

    ModelVersion.objects.filter(model=serving.model).update(run_id="", source_uri="models:/m-does-not-exist")
    rule_save(
        actor=ml_engineer,
        rule=FallbackRule(model=serving.model, order=0, feature="amount", operator=">=", threshold=0.0,
                          score=0.7, decision="review"),
    )  # fmt: skip
    serving_reset()
    answer = scoring_client(serving.item(0)).json()
    assert answer["fallback"] is True
    assert (answer["score"], answer["decision"]) == (0.7, "review")
    assert AuditEvent.objects.filter(action="serving.rule_added").exists()


def test_feedback_is_recorded_once_and_a_contradiction_is_a_409(serving, scoring_client):
    first = scoring_client({"transaction_id": "t-9", "label": True}, path="feedback")
    again = scoring_client({"transaction_id": "t-9", "label": True}, path="feedback")
    other = scoring_client({"transaction_id": "t-9", "label": False}, path="feedback")
    bad = scoring_client({"transaction_id": "t-9", "label": "yes"}, path="feedback")

    assert (first.status_code, first.json()["created"]) == (201, True)
    assert (again.status_code, again.json()["created"]) == (200, False)
    assert other.status_code == 409
    assert bad.status_code == 400
    assert "label" in bad.json()
    assert Feedback.objects.filter(transaction_id="t-9").count() == 1


def test_the_scoring_api_is_in_the_openapi_schema_with_examples(admin_user, client):
    client.force_login(admin_user)
    schema = client.get("/api/schema/?format=json").json()
    score = schema["paths"]["/api/v1/models/{name}/score"]["post"]
    assert "examples" in score["requestBody"]["content"]["application/json"]
    assert "200" in score["responses"]
    assert "/api/v1/models/{name}/feedback" in schema["paths"]
