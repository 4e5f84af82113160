"""One place for each governance rule, the same on every face (service, inbox, decision panel, page, API):
who may decide (the creator never, even when only MLflow knows who it was), the evidence the approver
saw, hard pre-checks and their recorded override, who may comment and sync, governance's panels on
the registry's pages."""

import re
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from apps.accounts.roles import Role, may_sync
from apps.audit.models import AuditEvent
from apps.governance import selectors, services
from apps.governance.models import Approval, PromotionRequest
from apps.registry.models import ModelVersion, Stage
from apps.registry.services import model_card_edit
from tests.conftest import UserFactory
from tests.governance.conftest import CARD

pytestmark = pytest.mark.django_db
Status = PromotionRequest.Status
ROOT = Path(__file__).resolve().parents[2]
URL = "/api/v1/promotion-requests/"


def _version(model, number) -> ModelVersion:
    return ModelVersion.objects.get(model=model, version=number)


def _ask(actor, model, number, to_stage) -> PromotionRequest:
    return services.promotion_request_create(
        actor=actor, version=_version(model, number), to_stage=to_stage, justification="recall is up"
    )


def _text(response) -> str:
    html = re.sub(r"<script.*?</script>", " ", response.content.decode(), flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def _agree(user, request) -> bool:
    """The service, the inbox and the decision panel say the same about `user` deciding on `request`."""
    standing = selectors.decision_standing(user, request)
    in_inbox = selectors.inbox_for(user).filter(pk=request.pk).exists()
    assert in_inbox == standing.may_decide
    return standing.may_decide


# --- item 1: the creator never decides, even when only MLflow knows who it was --------------------


@pytest.fixture
def synced_version(fraud_model):
    """v4 as a sync from MLflow leaves it: no portal creator, MLflow's user name "lena"."""
    ModelVersion.objects.filter(model=fraud_model, version=4).update(created_by=None, mlflow_user="lena")
    return _version(fraud_model, 4)


def test_the_mlflow_creator_of_a_synced_version_cannot_decide_on_its_promotion(
    client, fraud_model, synced_version, data_scientist, team
):
    lena = UserFactory(username="lena", roles=[Role.DATA_SCIENTIST_LEAD])  # the portal user MLflow names
    lena.groups.add(team.group)
    request = _ask(data_scientist, fraud_model, 4, Stage.CANDIDATE)

    assert _agree(lena, request) is False
    with pytest.raises(PermissionDenied, match="You created this version"):
        services.promotion_approve(actor=lena, request=request, evidence_sha256=request.evidence_sha256)
    client.force_login(lena)
    page = client.get(reverse("governance:request-detail", args=[request.pk]))
    assert 'data-testid="approve"' not in page.content.decode()
    response = client.post(
        reverse("governance:request-approve", args=[request.pk]), {"evidence_sha256": request.evidence_sha256}
    )
    assert response.status_code == 403
    assert "You created this version" in _text(response)
    assert not Approval.objects.exists()


def test_with_the_creator_unknown_only_the_requester_is_kept_out_and_the_approval_says_so(
    client, fraud_model, data_scientist, ds_lead
):
    ModelVersion.objects.filter(model=fraud_model, version=4).update(created_by=None, mlflow_user="")
    request = _ask(data_scientist, fraud_model, 4, Stage.CANDIDATE)
    assert _agree(data_scientist, request) is False  # the requester, as ever
    assert _agree(ds_lead, request) is True
    client.force_login(ds_lead)
    page = _text(client.get(reverse("governance:request-detail", args=[request.pk])))
    assert "Neither the portal nor MLflow records who created this version" in page

    approval = services.promotion_approve(
        actor=ds_lead, request=request, evidence_sha256=request.evidence_sha256
    )

    assert approval.creator_unknown is True
    event = AuditEvent.objects.get(action="promotion.approved_in_role", object_id=str(request.pk))
    assert event.after["creator_unknown"] is True
    page = _text(client.get(reverse("governance:request-detail", args=[request.pk])))
    assert "Given while the version's creator was unknown." in page


# --- item 11: one rule for the service, the inbox and the panel -----------------------------------


@pytest.mark.parametrize(
    "person", ["data_scientist", "ds_lead", "ml_engineer", "model_risk", "compliance", "manager"]
)
def test_service_inbox_and_panel_agree_on_who_may_decide(
    request, client, fraud_model, data_scientist, person
):
    candidate = _ask(data_scientist, fraud_model, 4, Stage.CANDIDATE)
    production = _ask(data_scientist, fraud_model, 2, Stage.PRODUCTION)
    user = request.getfixturevalue(person)
    client.force_login(user)
    for promotion in (candidate, production):
        may = _agree(user, promotion)
        page = client.get(reverse("governance:request-detail", args=[promotion.pk])).content.decode()
        assert ('data-testid="approve"' in page) == may
        expected = {candidate.pk: person == "ds_lead", production.pk: person in ("model_risk", "compliance")}
        assert may == expected[promotion.pk]
        if not may:
            with pytest.raises((PermissionDenied, services.DomainError)):
                services.promotion_approve(
                    actor=user, request=promotion, evidence_sha256=promotion.evidence_sha256
                )


def test_the_decision_rule_is_written_once():
    sources = {
        path: (ROOT / path).read_text()
        for path in [
            "apps/governance/views.py",
            "apps/governance/services/decisions.py",
            "apps/governance/selectors.py",
        ]
    }
    assert "_decision_role" not in "".join(sources.values())
    for path in ["apps/governance/views.py", "apps/governance/services/decisions.py"]:
        assert "decision_standing(" in sources[path]
        assert "roles_of(" not in sources[path]  # roles are read by the rule only


# --- item 12: the evidence the approver saw --------------------------------------------------------


def test_a_page_approval_of_evidence_that_moved_since_the_page_loaded_is_a_409(
    client, fraud_model, data_scientist, ds_lead
):
    request = _ask(data_scientist, fraud_model, 4, Stage.CANDIDATE)
    client.force_login(ds_lead)
    page = client.get(reverse("governance:request-detail", args=[request.pk])).content.decode()
    seen = re.search(r'name="evidence_sha256" value="([0-9a-f]{64})"', page).group(1)
    assert seen == request.evidence_sha256
    model_card_edit(actor=data_scientist, model=fraud_model, **{**CARD, "limitations": "Not for refunds."})

    response = client.post(
        reverse("governance:request-approve", args=[request.pk]), {"evidence_sha256": seen}
    )

    assert response.status_code == 409
    assert "The evidence changed since you loaded the page; reload and review it" in _text(response)
    assert not Approval.objects.exists()
    request.refresh_from_db()
    assert request.status == Status.PENDING
    # Reloaded, the page carries the new evidence, and the approval goes through.
    page = client.get(reverse("governance:request-detail", args=[request.pk])).content.decode()
    fresh = re.search(r'name="evidence_sha256" value="([0-9a-f]{64})"', page).group(1)
    assert fresh != seen
    response = client.post(
        reverse("governance:request-approve", args=[request.pk]), {"evidence_sha256": fresh}
    )
    assert response.status_code == 302
    assert Approval.objects.get().evidence_sha256 == fresh


def test_a_page_decision_without_the_evidence_hash_is_refused(client, fraud_model, data_scientist, ds_lead):
    request = _ask(data_scientist, fraud_model, 4, Stage.CANDIDATE)
    client.force_login(ds_lead)
    for action in ("approve", "reject"):
        response = client.post(reverse(f"governance:request-{action}", args=[request.pk]), {"comment": "x"})
        assert response.status_code == 409
    assert not Approval.objects.exists()


def test_an_api_approval_of_evidence_that_moved_is_a_409_and_the_hash_is_required(
    as_person, fraud_model, data_scientist
):
    request = _ask(data_scientist, fraud_model, 2, Stage.PRODUCTION)
    seen = as_person("model_risk").get(f"{URL}{request.pk}/").json()["evidence_sha256"]
    model_card_edit(actor=data_scientist, model=fraud_model, **{**CARD, "limitations": "Not for refunds."})
    client = as_person("model_risk")

    missing = client.post(f"{URL}{request.pk}/approve/", {}, format="json")
    stale = client.post(f"{URL}{request.pk}/approve/", {"evidence_sha256": seen}, format="json")
    stale_reject = client.post(
        f"{URL}{request.pk}/reject/", {"evidence_sha256": seen, "comment": "no"}, format="json"
    )

    assert missing.status_code == 400
    assert list(missing.json()) == ["evidence_sha256"]
    assert stale.status_code == stale_reject.status_code == 409
    assert stale.json()["detail"].startswith(
        "The evidence changed since you loaded the page; reload and review"
    )
    assert not Approval.objects.exists()
    fresh = client.get(f"{URL}{request.pk}/").json()["evidence_sha256"]
    assert (
        client.post(f"{URL}{request.pk}/approve/", {"evidence_sha256": fresh}, format="json").status_code
        == 200
    )


# --- item 13: hard pre-checks block approval unless overridden with a reason ----------------------


def test_a_failed_hard_precheck_blocks_approval_until_overridden_with_a_recorded_reason(
    client, incomplete_card, data_scientist, ds_lead
):
    request = _ask(data_scientist, incomplete_card, 4, Stage.CANDIDATE)
    client.force_login(ds_lead)
    url = reverse("governance:request-approve", args=[request.pk])
    page = _text(client.get(reverse("governance:request-detail", args=[request.pk])))
    assert "Failed pre-checks: Model card complete." in page
    assert "Override reason (required: pre-checks failed)" in page

    blocked = client.post(url, {"evidence_sha256": request.evidence_sha256})
    assert blocked.status_code == 400
    assert "Pre-checks failed: Model card complete. Approving anyway needs an override" in _text(blocked)
    assert not Approval.objects.exists()

    reason = "The card is being written; the lead reviewed the notebook."
    done = client.post(
        url, {"evidence_sha256": request.evidence_sha256, "override_reason": reason}, follow=True
    )

    approval = Approval.objects.get()
    assert (approval.overridden_checks, approval.override_reason) == (["Model card complete"], reason)
    event = AuditEvent.objects.get(action="promotion.approved_in_role", object_id=str(request.pk))
    assert event.after["override"] == {"checks": ["Model card complete"], "reason": reason}
    assert f"Overrode failed pre-checks (Model card complete): {reason}" in _text(done)
    request.refresh_from_db()
    assert request.status == Status.PUBLISHING


def test_an_api_approval_needs_the_override_when_a_hard_precheck_fails(
    as_person, incomplete_card, data_scientist
):
    request = _ask(data_scientist, incomplete_card, 2, Stage.PRODUCTION)
    body = {"evidence_sha256": request.evidence_sha256}
    client = as_person("model_risk")

    blocked = client.post(f"{URL}{request.pk}/approve/", body, format="json")
    assert blocked.status_code == 400
    assert "Model card complete" in blocked.json()["detail"]
    done = client.post(
        f"{URL}{request.pk}/approve/", {**body, "override_reason": "accepted risk"}, format="json"
    )
    assert done.status_code == 200
    (approval,) = done.json()["approvals"]
    assert approval["overridden_checks"] == ["Model card complete"]
    assert approval["override_reason"] == "accepted risk"


def test_metrics_below_production_beyond_the_margin_block_approval(fraud_model, data_scientist, ds_lead):
    ModelVersion.objects.filter(model=fraud_model, version=4).update(metrics={"roc_auc": 0.80})  # prod 0.86
    request = _ask(data_scientist, fraud_model, 4, Stage.CANDIDATE)
    assert selectors.failed_hard_checks(request.prechecks) == ["Metrics vs production"]
    with pytest.raises(services.DomainError, match="Pre-checks failed: Metrics vs production"):
        services.promotion_approve(actor=ds_lead, request=request, evidence_sha256=request.evidence_sha256)
    assert not Approval.objects.exists()


def test_passing_prechecks_need_no_override_and_record_none(fraud_model, data_scientist, ds_lead):
    request = _ask(data_scientist, fraud_model, 4, Stage.CANDIDATE)
    approval = services.promotion_approve(
        actor=ds_lead, request=request, evidence_sha256=request.evidence_sha256, override_reason="not needed"
    )
    assert (approval.overridden_checks, approval.override_reason) == ([], "")


# --- item 5: who may comment, who may sync --------------------------------------------------------


def test_comment_rights_follow_the_team_and_the_stages_approvers(
    fraud_model, data_scientist, ds_lead, manager, ml_engineer, model_risk
):
    request = _ask(data_scientist, fraud_model, 2, Stage.PRODUCTION)
    for person in (data_scientist, ds_lead, model_risk):
        services.promotion_comment(actor=person, request=request, body="noted")
    for person in (manager, ml_engineer):
        with pytest.raises(PermissionDenied, match="your role reads it"):
            services.promotion_comment(actor=person, request=request, body="noted")
    assert request.comments.count() == 3


def test_the_page_offers_the_comment_form_only_to_who_may_comment(
    client, fraud_model, data_scientist, manager, compliance
):
    request = _ask(data_scientist, fraud_model, 2, Stage.PRODUCTION)
    url = reverse("governance:request-detail", args=[request.pk])
    client.force_login(manager)
    page = client.get(url).content.decode()
    assert 'data-testid="comment-form"' not in page
    assert 'data-testid="comment-readonly"' in page
    client.force_login(compliance)
    assert 'data-testid="comment-form"' in client.get(url).content.decode()


@pytest.mark.parametrize(
    ("person", "allowed"),
    [
        ("anonymous", False),
        ("data_scientist", True),
        ("other_data_scientist", True),
        ("ds_lead", True),
        ("ml_engineer", True),
        ("model_risk", False),
        ("compliance", False),
        ("manager", False),
        ("outsider", False),
        ("admin_user", True),
    ],
)
def test_who_may_sync_the_registry(request, person, allowed):
    from django.contrib.auth.models import AnonymousUser

    user = AnonymousUser() if person == "anonymous" else request.getfixturevalue(person)
    assert may_sync(user) is allowed


def test_pages_know_whether_the_reader_may_sync(client, manager, ml_engineer):
    client.force_login(manager)
    assert client.get(reverse("home")).context["may_sync"] is False
    client.force_login(ml_engineer)
    assert client.get(reverse("home")).context["may_sync"] is True


def test_a_manager_who_becomes_an_ml_engineer_may_sync(manager):
    assert may_sync(manager) is False
    manager.groups.add(Group.objects.get(name=Role.ML_ENGINEER))
    del manager._hafnium_roles
    assert may_sync(manager) is True


# --- item 14: governance contributes its panels; the registry knows nothing of governance ---------


def test_registry_templates_do_not_know_governance():
    for template in (ROOT / "templates" / "registry").rglob("*.html"):
        text = template.read_text()
        assert "{% load governance" not in text, template
        assert "governance" not in text, template


def test_governance_panels_appear_on_the_registry_pages(client, fraud_model, data_scientist):
    request = _ask(data_scientist, fraud_model, 4, Stage.CANDIDATE)
    client.force_login(data_scientist)
    version_page = client.get(reverse("registry:version-detail", args=[fraud_model.name, 4]))
    text = _text(version_page)
    assert f"Request #{request.pk} to Candidate Pending by dana" in text
    assert reverse("governance:request-detail", args=[request.pk]) in version_page.content.decode()
    v3 = client.get(reverse("registry:version-detail", args=[fraud_model.name, 3])).content.decode()
    assert 'data-testid="request-promotion"' in v3
    model_page = client.get(reverse("registry:model-detail", args=[fraud_model.name])).content.decode()
    assert reverse("governance:model-history", args=[fraud_model.name]) in model_page


def test_the_public_names_survive_the_split():
    from apps.governance.services import (  # noqa: F401
        evidence_of,
        notification_deliver,
        policy_current,
        policy_publish,
        prechecks_for,
        promotion_approve,
        promotion_comment,
        promotion_publish,
        promotion_reject,
        promotion_request_create,
        promotion_withdraw,
        promotions_expire,
    )
    from apps.governance.signals import promotion_completed  # noqa: F401
