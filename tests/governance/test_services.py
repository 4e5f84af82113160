"""Governance rules enforced on the server: requests, approvals, separation of duties, evidence."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.audit.services import audit_verify
from apps.governance import services
from apps.governance.models import Approval, PromotionPolicy, PromotionRequest
from apps.registry import gateway
from apps.registry.models import ModelVersion, Stage, StageTransition
from apps.registry.services import DomainError, model_card_edit
from tests.governance.conftest import CARD

pytestmark = pytest.mark.django_db
Status = PromotionRequest.Status


def _version(model, number):
    return ModelVersion.objects.get(model=model, version=number)


def _request(actor, model, number, to_stage, justification="better recall on card-not-present"):
    return services.promotion_request_create(
        actor=actor, version=_version(model, number), to_stage=to_stage, justification=justification
    )


def test_default_policy_is_the_governance_table():
    policy = PromotionPolicy.objects.get()
    assert policy.version == 1
    assert policy.rules == {
        "candidate": ["Data Scientist Lead"],
        "staging": ["ML Engineer"],
        "production": ["Model Risk", "Compliance"],
    }


def test_request_pins_evidence_and_runs_prechecks(incomplete_card, data_scientist):
    fraud_model = incomplete_card
    request = _request(data_scientist, fraud_model, 4, Stage.CANDIDATE)
    version = _version(fraud_model, 4)
    assert request.status == Status.PENDING
    assert request.required_roles == ["Data Scientist Lead"]
    assert request.policy.version == 1
    assert request.evidence["artifact_sha256"] == version.artifact_sha256
    assert request.evidence["run_id"] == version.run_id
    assert request.evidence["dataset_sha256"] == version.dataset.sha256
    assert len(request.evidence["model_card_sha256"]) == 64
    assert len(request.evidence_sha256) == 64
    checks = {check["name"]: check for check in request.prechecks}
    assert checks["Model card complete"]["passed"] is False  # no intended use written yet
    assert checks["Signature present"]["passed"] is True
    assert checks["Metrics vs production"]["passed"] is True  # 0.89 vs 0.86
    assert AuditEvent.objects.filter(action="promotion.requested", object_id=str(request.pk)).count() == 1


@pytest.mark.parametrize(
    ("number", "to_stage", "message"),
    [
        (4, Stage.STAGING, "can be promoted to Candidate only"),
        (4, Stage.PRODUCTION, "can be promoted to Candidate only"),
        (1, Stage.PRODUCTION, "cannot be promoted further"),
        (4, "nowhere", "unknown stage"),
    ],
)
def test_wrong_stage_is_refused_and_nothing_is_written(
    fraud_model, data_scientist, number, to_stage, message
):
    with pytest.raises(DomainError, match=message):
        _request(data_scientist, fraud_model, number, to_stage)
    assert not PromotionRequest.objects.exists()


def test_empty_justification_is_refused(fraud_model, data_scientist):
    with pytest.raises(DomainError, match="justification is required"):
        _request(data_scientist, fraud_model, 4, Stage.CANDIDATE, justification="   ")


def test_second_open_request_for_the_same_version_and_stage_is_refused(fraud_model, data_scientist):
    first = _request(data_scientist, fraud_model, 4, Stage.CANDIDATE)
    with pytest.raises(services.Conflict, match=f"#{first.pk} already asks"):
        _request(data_scientist, fraud_model, 4, Stage.CANDIDATE)
    assert PromotionRequest.objects.count() == 1


def test_only_the_models_team_may_request(fraud_model, other_data_scientist, ml_engineer):
    for outsider in (other_data_scientist, ml_engineer):
        with pytest.raises(PermissionDenied):
            _request(outsider, fraud_model, 4, Stage.CANDIDATE)
    assert not PromotionRequest.objects.exists()


def test_requester_cannot_approve_own_request(fraud_model, ds_lead):
    request = _request(ds_lead, fraud_model, 4, Stage.CANDIDATE)  # a lead of the team asks
    with pytest.raises(PermissionDenied, match="You made this request"):
        services.promotion_approve(actor=ds_lead, request=request)
    assert not Approval.objects.exists()


def test_creator_of_the_version_cannot_approve(fraud_model, data_scientist, ds_lead):
    from django.contrib.auth.models import Group

    from apps.accounts.roles import Role

    request = _request(ds_lead, fraud_model, 4, Stage.CANDIDATE)
    data_scientist.groups.add(Group.objects.get(name=Role.DATA_SCIENTIST_LEAD))  # dana made v4
    with pytest.raises(PermissionDenied, match="You created this version"):
        services.promotion_approve(actor=data_scientist, request=request)
    assert not Approval.objects.exists()


def test_approver_without_the_role_is_refused(fraud_model, data_scientist, ml_engineer, manager):
    request = _request(data_scientist, fraud_model, 4, Stage.CANDIDATE)
    for person in (ml_engineer, manager):
        with pytest.raises(PermissionDenied, match="needs a decision from Data Scientist Lead"):
            services.promotion_approve(actor=person, request=request)
    assert not Approval.objects.exists()


def test_candidate_approved_by_the_lead_moves_the_stage_then_publishes_the_alias(
    mlflow_model, data_scientist, ds_lead
):
    request = _request(data_scientist, mlflow_model, 4, Stage.CANDIDATE)
    approval = services.promotion_approve(actor=ds_lead, request=request, comment="looks good")
    assert approval.role == "Data Scientist Lead"
    assert approval.policy_version == 1
    request.refresh_from_db()
    assert request.status == Status.PUBLISHING  # "approved, publishing" until MLflow has the alias
    assert _version(mlflow_model, 4).stage == Stage.CANDIDATE
    assert _version(mlflow_model, 3).stage == Stage.ARCHIVED  # the previous candidate
    assert services.promotion_publish(request=request) is True
    request.refresh_from_db()
    assert request.status == Status.COMPLETED
    assert gateway.aliases(mlflow_model.name)["candidate"] == 4
    assert services.promotion_publish(request=request) is False  # twice is harmless
    assert AuditEvent.objects.filter(action="promotion.completed", object_id=str(request.pk)).count() == 1
    assert audit_verify()[0] is None


def test_production_needs_model_risk_and_compliance_from_two_people(
    mlflow_model, data_scientist, model_risk, compliance
):
    request = _request(data_scientist, mlflow_model, 2, Stage.PRODUCTION)
    services.promotion_approve(actor=model_risk, request=request)
    request.refresh_from_db()
    assert request.status == Status.PENDING
    assert _version(mlflow_model, 2).stage == Stage.STAGING
    with pytest.raises(services.Conflict, match="already decided on this request"):
        services.promotion_approve(actor=model_risk, request=request)
    services.promotion_approve(actor=compliance, request=request)
    request.refresh_from_db()
    assert request.status == Status.PUBLISHING
    assert {a.role for a in request.approvals.all()} == {"Model Risk", "Compliance"}
    services.promotion_publish(request=request)
    # Completed: the canary (apps.deployments) takes over; stages and aliases move when it succeeds.
    request.refresh_from_db()
    assert request.status == Status.COMPLETED
    assert gateway.aliases(mlflow_model.name)["production"] == 1
    assert _version(mlflow_model, 1).stage == Stage.PRODUCTION


def test_one_person_with_both_roles_fills_only_one(fraud_model, data_scientist, model_risk):
    from django.contrib.auth.models import Group

    model_risk.groups.add(Group.objects.get(name="Compliance"))
    request = _request(data_scientist, fraud_model, 2, Stage.PRODUCTION)
    with pytest.raises(DomainError, match="choose one of: Model Risk, Compliance"):
        services.promotion_approve(actor=model_risk, request=request)
    services.promotion_approve(actor=model_risk, request=request, role="Compliance")
    with pytest.raises(services.Conflict, match="one person fills at most one role"):
        services.promotion_approve(actor=model_risk, request=request, role="Model Risk")
    request.refresh_from_db()
    assert request.status == Status.PENDING


def test_mlflow_down_at_completion_leaves_approved_publishing_until_it_is_back(
    mlflow_store, mlflow_model, mlflow_unreachable, settings, data_scientist, ds_lead
):
    request = _request(data_scientist, mlflow_model, 4, Stage.CANDIDATE)
    services.promotion_approve(actor=ds_lead, request=request)
    with pytest.raises(gateway.RegistryUnavailable):
        services.promotion_publish(request=request)
    request.refresh_from_db()
    assert request.status == Status.PUBLISHING
    assert _version(mlflow_model, 4).stage == Stage.CANDIDATE

    settings.MLFLOW_TRACKING_URI = mlflow_store  # MLflow is back; the task's next retry succeeds
    assert services.promotion_publish(request=request) is True
    request.refresh_from_db()
    assert request.status == Status.COMPLETED
    assert gateway.aliases(mlflow_model.name)["candidate"] == 4


def test_reject_needs_a_comment_and_closes_the_request(fraud_model, data_scientist, ds_lead):
    request = _request(data_scientist, fraud_model, 4, Stage.CANDIDATE)
    with pytest.raises(DomainError, match="needs a comment"):
        services.promotion_reject(actor=ds_lead, request=request, comment=" ")
    request.refresh_from_db()
    assert request.status == Status.PENDING
    services.promotion_reject(actor=ds_lead, request=request, comment="calibration is off above 0.8")
    request.refresh_from_db()
    assert request.status == Status.REJECTED
    assert _version(fraud_model, 4).stage == Stage.EXPERIMENT
    with pytest.raises(services.Conflict, match="is rejected; it can no longer be decided"):
        services.promotion_approve(actor=ds_lead, request=request)


def test_only_the_requester_withdraws_and_only_while_pending(fraud_model, data_scientist, ds_lead):
    request = _request(data_scientist, fraud_model, 4, Stage.CANDIDATE)
    with pytest.raises(PermissionDenied):
        services.promotion_withdraw(actor=ds_lead, request=request)
    services.promotion_withdraw(actor=data_scientist, request=request)
    assert request.status == Status.WITHDRAWN
    with pytest.raises(services.Conflict, match="cannot be withdrawn"):
        services.promotion_withdraw(actor=data_scientist, request=request)


def test_pending_requests_expire(fraud_model, data_scientist):
    request = _request(data_scientist, fraud_model, 4, Stage.CANDIDATE)
    assert services.promotions_expire() == 0
    assert services.promotions_expire(now=request.expires_at + timedelta(seconds=1)) == 1
    request.refresh_from_db()
    assert request.status == Status.EXPIRED


def test_changed_evidence_voids_pending_approvals(fraud_model, data_scientist, model_risk, compliance):
    request = _request(data_scientist, fraud_model, 2, Stage.PRODUCTION)
    approval = services.promotion_approve(actor=model_risk, request=request)
    model_card_edit(actor=data_scientist, model=fraud_model, **{**CARD, "intended_use": "Card payments."})
    approval.refresh_from_db()
    assert approval.voided_at is not None
    assert "model_card_sha256" in approval.void_reason
    request.refresh_from_db()
    assert request.status == Status.PENDING
    # Compliance alone no longer completes it: Model Risk must approve the new evidence again.
    services.promotion_approve(actor=compliance, request=request)
    request.refresh_from_db()
    assert request.status == Status.PENDING
    services.promotion_approve(actor=model_risk, request=request)
    request.refresh_from_db()
    assert request.status == Status.PUBLISHING


def test_evidence_changed_behind_the_portals_back_is_caught_at_approval(
    fraud_model, data_scientist, model_risk
):
    request = _request(data_scientist, fraud_model, 2, Stage.PRODUCTION)
    ModelVersion.objects.filter(pk=request.version_id).update(artifact_sha256="f" * 64)
    with pytest.raises(services.Conflict, match="evidence changed"):
        services.promotion_approve(actor=model_risk, request=request)
    request.refresh_from_db()
    assert request.evidence["artifact_sha256"] == "f" * 64
    assert not Approval.objects.filter(voided_at__isnull=True).exists()


def test_every_decision_records_the_policy_version(fraud_model, data_scientist, ds_lead, admin_user):
    services.policy_publish(
        actor=admin_user,
        rules={
            "candidate": ["Data Scientist Lead", "ML Engineer"],
            "staging": ["ML Engineer"],
            "production": ["Model Risk", "Compliance"],
        },
        request_ttl_days=7,
        metric_margin=0.02,
        note="two approvers for candidates",
    )
    request = _request(data_scientist, fraud_model, 4, Stage.CANDIDATE)
    assert request.required_roles == ["Data Scientist Lead", "ML Engineer"]
    assert services.promotion_approve(actor=ds_lead, request=request).policy_version == 2
    assert AuditEvent.objects.filter(action="governance.policy_published").count() == 1


def test_policy_edit_needs_an_administrator(ds_lead):
    with pytest.raises(PermissionDenied):
        services.policy_publish(actor=ds_lead, rules={}, request_ttl_days=1, metric_margin=0)
    assert PromotionPolicy.objects.count() == 1


def test_stage_history_has_a_row_per_move(mlflow_model, data_scientist, ds_lead):
    request = _request(data_scientist, mlflow_model, 4, Stage.CANDIDATE)
    services.promotion_approve(actor=ds_lead, request=request)
    moves = StageTransition.objects.filter(
        version__model=mlflow_model, at__gte=timezone.now() - timedelta(minutes=1)
    )
    assert {(m.version.version, m.from_stage, m.to_stage) for m in moves if m.from_stage} >= {
        (4, "experiment", "candidate"),
        (3, "candidate", "archived"),
    }


def test_inbox_keeps_a_request_while_one_of_my_roles_is_unfilled(
    fraud_model, data_scientist, model_risk, compliance
):
    from django.contrib.auth.models import Group

    from apps.governance.selectors import inbox_for

    compliance.groups.add(Group.objects.get(name="Model Risk"))  # cora holds both roles
    request = _request(data_scientist, fraud_model, 2, Stage.PRODUCTION)
    assert list(inbox_for(compliance)) == [request]
    services.promotion_approve(actor=model_risk, request=request)
    assert list(inbox_for(compliance)) == [request]  # Compliance is still open for her
    assert list(inbox_for(model_risk)) == []  # rita has decided


def test_policy_is_published_through_the_admin_as_a_new_version(client, admin_user):
    client.force_login(admin_user)
    url = "/admin/governance/promotionpolicy/add/"
    bad = {"rules": '{"candidate": ["Nobody"]}', "request_ttl_days": 7, "metric_margin": 0.01, "note": ""}
    response = client.post(url, bad)
    assert response.status_code == 200
    assert "must name the approvers of each of" in response.content.decode()
    good = {
        "rules": '{"candidate": ["Data Scientist Lead"], "staging": ["ML Engineer"], '
        '"production": ["Model Risk", "Compliance", "Manager"]}',
        "request_ttl_days": 7,
        "metric_margin": 0.01,
        "note": "managers sign production off too",
    }
    assert client.post(url, good).status_code == 302
    assert list(PromotionPolicy.objects.values_list("version", flat=True)) == [2, 1]
    assert PromotionPolicy.objects.first().rules["production"] == ["Model Risk", "Compliance", "Manager"]
    assert (
        AuditEvent.objects.filter(action="governance.policy_published", actor=admin_user.username).count()
        == 1
    )
    first = PromotionPolicy.objects.get(version=1)
    page = client.get(f"/admin/governance/promotionpolicy/{first.pk}/change/")
    assert page.status_code == 200
    assert "Save" not in page.content.decode()  # shown, not editable
    assert client.post(f"/admin/governance/promotionpolicy/{first.pk}/delete/").status_code == 403
    assert PromotionPolicy.objects.count() == 2


def test_pending_requests_of_a_replaced_version_are_closed(fraud_model, data_scientist, ds_lead, ml_engineer):
    to_staging = _request(data_scientist, fraud_model, 3, Stage.STAGING)  # v3 (Candidate) asks for Staging
    to_candidate = _request(data_scientist, fraud_model, 4, Stage.CANDIDATE)
    services.promotion_approve(actor=ds_lead, request=to_candidate)  # v4 becomes Candidate, v3 archived
    to_staging.refresh_from_db()
    assert to_staging.status == Status.EXPIRED
    event = AuditEvent.objects.get(action="promotion.superseded", object_id=str(to_staging.pk))
    assert event.after["reason"] == f"v3 was archived when request #{to_candidate.pk} was approved"
    with pytest.raises(services.Conflict):
        services.promotion_approve(actor=ml_engineer, request=to_staging)
