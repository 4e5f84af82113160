"""Governance's REST API: who may do what to a promotion request, what refusals leave behind (nothing),
the errors' reasons, the full flow to Production, filters, tokens, the schema and bounded queries."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from apps.audit.models import AuditEvent
from apps.audit.services import audit_verify
from apps.governance import services
from apps.governance.models import Approval, PromotionRequest, RequestComment
from apps.registry.models import ModelVersion, Stage

pytestmark = pytest.mark.django_db

URL = "/api/v1/promotion-requests/"
PEOPLE = [
    "anonymous",
    "data_scientist",  # dana: made the request, and created the version
    "other_data_scientist",  # omar: another team, cannot see fraud-scorer
    "ds_lead",  # lee: dana's team, not an approver of Production
    "ml_engineer",
    "model_risk",
    "compliance",
    "manager",
    "outsider",
    "admin_user",  # sees everything, holds no approver role
]


def version_of(model, number) -> ModelVersion:
    return model.versions.get(version=number)


@pytest.fixture
def production_request(fraud_model, data_scientist):
    """dana asks to promote fraud-scorer v2 (Staging) to Production: Model Risk and Compliance approve."""
    return services.promotion_request_create(
        actor=data_scientist,
        version=version_of(fraud_model, 2),
        to_stage=Stage.PRODUCTION,
        justification="recall up 4 points on card-not-present",
    )


def snapshot() -> dict:
    """What an API call could have written."""
    return {
        "requests": list(PromotionRequest.objects.order_by("pk").values_list("pk", "status")),
        "approvals": Approval.objects.count(),
        "comments": RequestComment.objects.count(),
        "audit events": AuditEvent.objects.count(),
        "stages": list(ModelVersion.objects.order_by("pk").values_list("pk", "stage")),
    }


# --- the permission matrix -----------------------------------------------------------------------

DENIED = {"anonymous": 401, "other_data_scientist": 404, "outsider": 404}
DECIDERS = {"model_risk": 200, "compliance": 200}  # the two roles a Production request needs

# action -> (method, path under the request or the list, body, the status each person gets)
ACTIONS = {
    "list": ("get", "", None, {**DENIED, "other_data_scientist": 200, "outsider": 200}),
    "detail": ("get", "{pk}/", None, DENIED),
    "create": (
        "post",
        "",
        {"version": "{v4}", "to_stage": "candidate", "justification": "better recall"},
        {**DENIED, "data_scientist": 201, "ds_lead": 201, "admin_user": 201, "default": 403},
    ),
    "approve": (
        "post",
        "{pk}/approve/",
        {"comment": "evidence reviewed", "evidence_sha256": "{sha}"},
        {**DENIED, **DECIDERS, "default": 403},
    ),
    "reject": (
        "post",
        "{pk}/reject/",
        {"comment": "calibration is off"},
        {**DENIED, **DECIDERS, "default": 403},
    ),
    "withdraw": ("post", "{pk}/withdraw/", None, {**DENIED, "data_scientist": 200, "default": 403}),
    # The model's team and the approvers of the request's stage discuss it; other readers do not.
    "comment": (
        "post",
        "{pk}/comments/",
        {"body": "which holdout?"},
        {**DENIED, **dict.fromkeys(["ml_engineer", "manager"], 403), "default": 201},
    ),
}


def expected_status(action: str, person: str) -> int:
    statuses = ACTIONS[action][3]
    return statuses.get(person, statuses.get("default", 200))


def call(client, action: str, production_request, fraud_model):
    method, path, body, _ = ACTIONS[action]
    url = URL + path.format(pk=production_request.pk)
    if body is not None:
        values = {"v4": version_of(fraud_model, 4).pk, "sha": production_request.evidence_sha256}
        body = {key: value.format(**values) for key, value in body.items()}
        body = {key: int(value) if value.isdigit() else value for key, value in body.items()}
    return getattr(client, method)(url, body, format="json") if method == "post" else client.get(url)


def approve(client, pk, body: dict):
    """POST an approval with the evidence hash the request shows now (what the approver reviewed)."""
    seen = PromotionRequest.objects.filter(pk=pk).values_list("evidence_sha256", flat=True).first()
    return client.post(f"{URL}{pk}/approve/", {"evidence_sha256": seen or "0" * 64, **body}, format="json")


def test_the_matrix_covers_every_action_of_the_api():
    from apps.governance.api import PromotionRequestViewSet

    extra = {a.url_path for a in PromotionRequestViewSet.get_extra_actions()}
    assert extra == {"approve", "reject", "withdraw", "comments"}
    assert set(ACTIONS) == {"list", "detail", "create", "approve", "reject", "withdraw", "comment"}


@pytest.mark.parametrize("person", PEOPLE)
@pytest.mark.parametrize("action", ACTIONS)
def test_permission_matrix(as_person, action, person, production_request, fraud_model, other_model):
    client = as_person(person)  # signing in writes an audit event: count after it
    before = snapshot()

    response = call(client, action, production_request, fraud_model)

    expected = expected_status(action, person)
    assert response.status_code == expected, response.content
    after = snapshot()
    if expected >= 400:
        assert after == before
        assert "fraud-scorer" not in response.content.decode()
        if expected == 401:
            assert response["WWW-Authenticate"] == "Token"
        elif expected == 403:
            assert response.json()["detail"]
        return

    body = response.json()
    production_request.refresh_from_db()
    if action == "list":
        listed = [row["id"] for row in body["results"]]
        assert listed == ([] if person in ("other_data_scientist", "outsider") else [production_request.pk])
        assert after == before
    elif action == "detail":
        assert (body["id"], body["model"], body["version"]) == (production_request.pk, "fraud-scorer", 2)
        assert after == before
    elif action == "create":
        created = PromotionRequest.objects.get(pk=body["id"])
        assert (created.version.version, created.to_stage, created.status) == (4, "candidate", "pending")
        assert created.requested_by.username == body["requested_by"]
        assert len(after["requests"]) == len(before["requests"]) + 1
        assert AuditEvent.objects.filter(action="promotion.requested", object_id=str(created.pk)).exists()
    elif action == "approve":
        assert body["status"] == production_request.status == "pending"  # one of the two roles
        assert [(a["role"], a["decision"]) for a in body["approvals"]] == [
            ({"model_risk": "Model Risk", "compliance": "Compliance"}[person], "approve")
        ]
        assert after["approvals"] == before["approvals"] + 1
    elif action == "reject":
        assert body["status"] == production_request.status == "rejected"
        assert body["approvals"][0]["comment"] == "calibration is off"
        assert after["approvals"] == before["approvals"] + 1
    elif action == "withdraw":
        assert body["status"] == production_request.status == "withdrawn"
    elif action == "comment":
        assert [c["body"] for c in body["comments"]] == ["which holdout?"]
        assert after["comments"] == before["comments"] + 1
    if action not in ("list", "detail"):
        assert after["audit events"] == before["audit events"] + 1
    assert audit_verify()[0] is None


# --- refusals and their reasons ------------------------------------------------------------------


def test_requester_cannot_approve_own_request(as_person, production_request):
    client = as_person("data_scientist")
    before = snapshot()

    response = approve(client, production_request.pk, {})

    assert response.status_code == 403
    assert response.json() == {"detail": "You made this request, so you cannot approve or reject it."}
    assert snapshot() == before


def test_approver_without_the_role_is_refused_naming_the_roles(as_person, production_request):
    client = as_person("ml_engineer")
    before = snapshot()

    response = approve(client, production_request.pk, {})

    assert response.status_code == 403
    assert response.json()["detail"] == (
        "This request needs a decision from Model Risk and Compliance; you hold none of these roles."
    )
    assert snapshot() == before


def test_deciding_in_a_role_one_does_not_hold_is_refused(as_person, production_request):
    client = as_person("model_risk")
    before = snapshot()

    response = approve(client, production_request.pk, {"role": "Compliance"})

    assert response.status_code == 403
    assert response.json() == {"detail": "You cannot decide as Compliance on this request."}
    assert snapshot() == before


def test_unknown_role_is_a_bad_field(as_person, production_request):
    client = as_person("model_risk")
    before = snapshot()

    response = approve(client, production_request.pk, {"role": "Auditor"})

    assert response.status_code == 400
    assert list(response.json()) == ["role"]
    assert snapshot() == before


@pytest.mark.parametrize(
    ("action", "body", "message"),
    [
        (
            "approve",
            {"evidence_sha256": "0" * 64},
            "Request #{pk} is withdrawn; it can no longer be decided.",
        ),
        ("reject", {"comment": "too late"}, "Request #{pk} is withdrawn; it can no longer be decided."),
        ("withdraw", None, "Request #{pk} is withdrawn; it cannot be withdrawn."),
    ],
)
def test_a_closed_request_is_a_conflict(as_person, production_request, data_scientist, action, body, message):
    services.promotion_withdraw(actor=data_scientist, request=production_request)
    client = as_person("data_scientist" if action == "withdraw" else "model_risk")
    before = snapshot()

    response = client.post(f"{URL}{production_request.pk}/{action}/", body, format="json")

    assert response.status_code == 409
    assert response.json() == {"detail": message.format(pk=production_request.pk)}
    assert snapshot() == before


def test_one_person_decides_once(as_person, production_request):
    client = as_person("model_risk")
    assert approve(client, production_request.pk, {}).status_code == 200
    before = snapshot()

    response = client.post(
        f"{URL}{production_request.pk}/reject/", {"comment": "changed my mind"}, format="json"
    )

    assert response.status_code == 409
    assert "one person fills at most one role" in response.json()["detail"]
    assert snapshot() == before


@pytest.mark.parametrize("comment", ["", "   "])
def test_empty_reject_comment_is_refused_with_the_reason(as_person, production_request, comment):
    client = as_person("compliance")
    before = snapshot()

    response = client.post(f"{URL}{production_request.pk}/reject/", {"comment": comment}, format="json")

    assert response.status_code == 400
    assert response.json() == {"detail": "A rejection needs a comment saying why."}
    assert snapshot() == before


def test_reject_without_a_comment_field_names_the_field(as_person, production_request):
    client = as_person("compliance")
    before = snapshot()

    response = client.post(f"{URL}{production_request.pk}/reject/", {}, format="json")

    assert response.status_code == 400
    assert response.json() == {"comment": ["This field is required."]}
    assert snapshot() == before


def test_empty_comment_is_refused_with_the_reason(as_person, production_request):
    client = as_person("compliance")
    before = snapshot()

    response = client.post(f"{URL}{production_request.pk}/comments/", {"body": " "}, format="json")

    assert response.status_code == 400
    assert response.json() == {"detail": "A comment cannot be empty."}
    assert snapshot() == before


def test_unknown_request_is_not_found(as_person, production_request):
    response = approve(as_person("model_risk"), production_request.pk + 1000, {})

    assert response.status_code == 404


def create(client, **body):
    return client.post(URL, body, format="json")


def test_unknown_version_is_not_found(as_person, fraud_model):
    client = as_person("data_scientist")
    before = snapshot()

    response = create(client, version=999_999, to_stage="candidate", justification="x")

    assert response.status_code == 404
    assert snapshot() == before


def test_another_teams_version_is_not_found_and_nothing_is_written(as_person, fraud_model):
    client = as_person("other_data_scientist")
    before = snapshot()

    response = create(client, version=version_of(fraud_model, 4).pk, to_stage="candidate", justification="x")

    assert response.status_code == 404
    assert "fraud-scorer" not in response.content.decode()
    assert snapshot() == before


@pytest.mark.parametrize(
    ("number", "to_stage", "message"),
    [
        (4, "production", "fraud-scorer v4 is in Experiment: it can be promoted to Candidate only"),
        (3, "candidate", "fraud-scorer v3 is in Candidate: it can be promoted to Staging only"),
        (1, "production", "fraud-scorer v1 is in Production and cannot be promoted further"),
    ],
)
def test_wrong_target_stage_is_refused_with_the_reason(as_person, fraud_model, number, to_stage, message):
    client = as_person("data_scientist")
    before = snapshot()

    response = create(
        client, version=version_of(fraud_model, number).pk, to_stage=to_stage, justification="x"
    )

    assert response.status_code == 400
    assert response.json()["detail"].startswith(message)
    assert snapshot() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"to_stage": "candidate", "justification": "x"}, "version"),
        ({"version": "v4", "to_stage": "candidate", "justification": "x"}, "version"),
        ({"version": "{v4}", "justification": "x"}, "to_stage"),
        ({"version": "{v4}", "to_stage": "nowhere", "justification": "x"}, "to_stage"),
        ({"version": "{v4}", "to_stage": "candidate"}, "justification"),
        ({"version": "{v4}", "to_stage": "candidate", "justification": "  "}, "justification"),
    ],
)
def test_a_missing_or_bad_field_is_named(as_person, fraud_model, body, field):
    client = as_person("data_scientist")
    body = {key: value.format(v4=version_of(fraud_model, 4).pk) for key, value in body.items()}
    before = snapshot()

    response = client.post(URL, body, format="json")

    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert snapshot() == before


def test_a_second_open_request_for_the_same_move_is_a_conflict(as_person, production_request, fraud_model):
    client = as_person("ds_lead")
    before = snapshot()

    response = create(client, version=version_of(fraud_model, 2).pk, to_stage="production", justification="x")

    assert response.status_code == 409
    assert response.json() == {
        "detail": f"Request #{production_request.pk} already asks to promote fraud-scorer v2 to Production."
    }
    assert snapshot() == before


# --- what a request says, and the full flow ------------------------------------------------------


def test_request_shows_its_evidence_prechecks_policy_and_roles(as_person, production_request):
    body = as_person("compliance").get(f"{URL}{production_request.pk}/").json()

    assert body["url"] == f"http://testserver{URL}{production_request.pk}/"
    assert (body["from_stage"], body["to_stage"], body["status"]) == ("staging", "production", "pending")
    assert body["requested_by"] == "dana"
    assert body["justification"] == "recall up 4 points on card-not-present"
    assert body["policy_version"] == 1
    assert body["required_roles"] == ["Model Risk", "Compliance"]
    assert body["evidence"] == production_request.evidence
    assert body["evidence"]["artifact_sha256"] == f"{2:064x}"
    assert body["evidence_sha256"] == production_request.evidence_sha256
    assert body["prechecks"] == production_request.prechecks
    assert {check["name"] for check in body["prechecks"]} >= {"Model card complete", "Staging tests"}
    assert body["approvals"] == []
    assert body["decided_at"] is None


def test_production_flow_through_the_api(as_person, fraud_model):
    v2 = version_of(fraud_model, 2)

    created = create(
        as_person("data_scientist"), version=v2.pk, to_stage="production", justification="ready for prod"
    )
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    risk = approve(as_person("model_risk"), pk, {"comment": "risk ok"})
    assert risk.status_code == 200
    assert risk.json()["status"] == "pending"
    assert version_of(fraud_model, 2).stage == Stage.STAGING
    done = approve(as_person("compliance"), pk, {})

    assert done.status_code == 200, done.content
    body = done.json()
    assert body["status"] == "publishing"
    assert body["decided_at"] is not None
    approvals = [
        {key: row[key] for key in ("role", "approver", "decision", "comment", "voided_at", "void_reason")}
        for row in body["approvals"]
    ]
    assert approvals == [
        {
            "role": "Model Risk",
            "approver": "rita",
            "decision": "approve",
            "comment": "risk ok",
            "voided_at": None,
            "void_reason": "",
        },
        {
            "role": "Compliance",
            "approver": "cora",
            "decision": "approve",
            "comment": "",
            "voided_at": None,
            "void_reason": "",
        },
    ]
    assert all(row["created_at"] and row["policy_version"] == 1 for row in body["approvals"])
    # The approval hands over to the canary (apps.deployments): the stages move when it succeeds.
    assert version_of(fraud_model, 2).stage == Stage.STAGING
    assert version_of(fraud_model, 1).stage == Stage.PRODUCTION
    events = AuditEvent.objects.filter(object_type="governance.promotionrequest", object_id=str(pk))
    actions = list(events.order_by("id").values_list("action", flat=True))
    assert actions == [
        "promotion.requested",
        "promotion.approved_in_role",
        "promotion.approved_in_role",
        "promotion.approved",
    ]
    assert audit_verify()[0] is None


def test_voided_approvals_show_why(as_person, production_request, fraud_model):
    approve(as_person("model_risk"), production_request.pk, {})
    ModelVersion.objects.filter(pk=production_request.version_id).update(artifact_sha256="f" * 64)

    refused = approve(as_person("compliance"), production_request.pk, {})
    body = as_person("compliance").get(f"{URL}{production_request.pk}/").json()

    assert refused.status_code == 409
    assert "evidence changed" in refused.json()["detail"]
    assert body["evidence"]["artifact_sha256"] == "f" * 64
    [voided] = body["approvals"]
    assert voided["approver"] == "rita"
    assert voided["voided_at"] is not None
    assert "artifact_sha256" in voided["void_reason"]


def test_withdrawn_by_the_requester(as_person, production_request):
    response = as_person("data_scientist").post(f"{URL}{production_request.pk}/withdraw/")

    assert response.status_code == 200
    assert response.json()["status"] == "withdrawn"
    production_request.refresh_from_db()
    assert production_request.status == PromotionRequest.Status.WITHDRAWN


def test_token_authentication_acts_as_its_user(fraud_model, data_scientist, model_risk):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=data_scientist).key}")

    created = create(client, version=version_of(fraud_model, 4).pk, to_stage="candidate", justification="x")

    assert created.status_code == 201
    assert created.json()["requested_by"] == "dana"
    assert [row["id"] for row in client.get(f"{URL}?mine=true").json()["results"]] == [created.json()["id"]]
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=model_risk).key}")
    assert approve(client, created.json()["id"], {}).status_code == 403
    client.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    response = client.get(URL)
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token."}


# --- filters -------------------------------------------------------------------------------------


@pytest.fixture
def several_requests(fraud_model, other_model, data_scientist, ds_lead, other_data_scientist):
    """fraud-scorer: v2 to Production and v3 to Staging (pending, by dana), v4 to Candidate (withdrawn);
    payments-anomaly: v1 to Candidate (pending, by omar)."""

    def ask(actor, model, number, to_stage):
        return services.promotion_request_create(
            actor=actor, version=version_of(model, number), to_stage=to_stage, justification="why not"
        )

    made = {
        "v2-production": ask(data_scientist, fraud_model, 2, Stage.PRODUCTION),
        "v3-staging": ask(data_scientist, fraud_model, 3, Stage.STAGING),
        "v4-candidate": ask(ds_lead, fraud_model, 4, Stage.CANDIDATE),
        "payments-candidate": ask(other_data_scientist, other_model, 1, Stage.CANDIDATE),
    }
    services.promotion_withdraw(actor=ds_lead, request=made["v4-candidate"])
    return made


@pytest.mark.parametrize(
    ("person", "query", "expected"),
    [
        ("manager", "", ["payments-candidate", "v4-candidate", "v3-staging", "v2-production"]),
        ("data_scientist", "", ["v4-candidate", "v3-staging", "v2-production"]),
        ("other_data_scientist", "", ["payments-candidate"]),
        ("manager", "status=withdrawn", ["v4-candidate"]),
        ("manager", "status=pending&model=fraud-scorer", ["v3-staging", "v2-production"]),
        ("manager", "to_stage=candidate", ["payments-candidate", "v4-candidate"]),
        ("manager", "model=payments-anomaly", ["payments-candidate"]),
        ("data_scientist", "mine=true", ["v3-staging", "v2-production"]),
        ("ds_lead", "mine=true", ["v4-candidate"]),
        ("ds_lead", "mine=false", ["payments-candidate", "v4-candidate", "v3-staging", "v2-production"]),
        ("ds_lead", "inbox=true", ["payments-candidate"]),  # v4 is withdrawn, and was lee's own
        ("ml_engineer", "inbox=true", ["v3-staging"]),
        ("model_risk", "inbox=true", ["v2-production"]),
        ("compliance", "inbox=true&model=fraud-scorer", ["v2-production"]),
        ("manager", "inbox=true", []),
        ("data_scientist", "inbox=true", []),
    ],
)
def test_list_filters(as_person, several_requests, person, query, expected):
    response = as_person(person).get(f"{URL}?{query}")

    assert response.status_code == 200, response.content
    names = {request.pk: name for name, request in several_requests.items()}
    assert [names[row["id"]] for row in response.json()["results"]] == expected


def test_inbox_leaves_out_what_the_person_already_decided(as_person, several_requests):
    client = as_person("model_risk")
    pk = several_requests["v2-production"].pk
    approve(client, pk, {})

    assert client.get(f"{URL}?inbox=true").json()["results"] == []
    assert [row["id"] for row in as_person("compliance").get(f"{URL}?inbox=true").json()["results"]] == [pk]


@pytest.mark.parametrize(("query", "field"), [("status=open", "status"), ("to_stage=moon", "to_stage")])
def test_bad_filter_is_refused_naming_it(as_person, several_requests, query, field):
    response = as_person("manager").get(f"{URL}?{query}")

    assert response.status_code == 400
    assert list(response.json()) == [field]


# --- schema and scale ----------------------------------------------------------------------------


def test_schema_lists_the_governance_endpoints(as_person):
    response = as_person("data_scientist").get("/api/schema/?format=json")

    assert response.status_code == 200
    paths = response.json()["paths"]
    assert set(paths) >= {
        "/api/v1/promotion-requests/",
        "/api/v1/promotion-requests/{id}/",
        "/api/v1/promotion-requests/{id}/approve/",
        "/api/v1/promotion-requests/{id}/reject/",
        "/api/v1/promotion-requests/{id}/withdraw/",
        "/api/v1/promotion-requests/{id}/comments/",
    }
    assert set(paths["/api/v1/promotion-requests/"]) == {"get", "post"}
    parameters = {p["name"] for p in paths["/api/v1/promotion-requests/"]["get"]["parameters"]}
    assert parameters >= {"status", "model", "to_stage", "mine", "inbox"}


def _copies(template: PromotionRequest, count: int) -> None:
    """`count` closed requests like `template`, each with an approval and a comment."""
    fields = {
        field.name: getattr(template, field.name)
        for field in PromotionRequest._meta.concrete_fields
        if field.name not in ("id", "status", "created_at")
    }
    copies = PromotionRequest.objects.bulk_create(
        PromotionRequest(**fields, status=PromotionRequest.Status.REJECTED) for _ in range(count)
    )
    approvals, comments = [], []
    for copy in copies:
        approvals.append(
            Approval(
                request=copy,
                approver=template.requested_by,
                role="Model Risk",
                decision="reject",
                comment="no",
                evidence_sha256=copy.evidence_sha256,
                policy_version=1,
            )
        )
        comments.append(RequestComment(request=copy, author=template.requested_by, body="why?"))
    Approval.objects.bulk_create(approvals)
    RequestComment.objects.bulk_create(comments)


def test_list_reads_in_the_same_queries_however_many_requests(
    as_person, production_request, django_assert_max_num_queries
):
    client = as_person("manager")

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(URL)
        assert response.status_code == 200
        return len(captured)

    queries()  # the first request also warms caches (content types)
    one_request = queries()
    _copies(production_request, 59)

    with django_assert_max_num_queries(one_request):
        response = client.get(URL)
    assert response.json()["count"] == 60
    assert len(response.json()["results"]) == 50
    assert all(row["approvals"] and row["comments"] for row in response.json()["results"])
    with django_assert_max_num_queries(one_request):
        client.get(f"{URL}?model=fraud-scorer&status=rejected")
