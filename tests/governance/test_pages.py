"""The governance pages: who may see and do what (and nothing is written when refused), the request form,
the inbox, my requests, a request's decision panel (with and without htmx), and the stage history."""

import re
from datetime import timedelta
from html import unescape

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from apps.accounts.roles import Role
from apps.audit.models import AuditEvent
from apps.governance import services
from apps.governance.models import Approval, PromotionRequest, RequestComment
from apps.registry.models import ModelVersion, Stage, StageTransition
from apps.registry.services import model_card_edit
from tests.governance.conftest import CARD
from tests.registry.fixtures import make_version

pytestmark = pytest.mark.django_db
Status = PromotionRequest.Status

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
SEE_THE_MODEL = ["data_scientist", "ds_lead", "ml_engineer", "model_risk", "compliance", "manager"]
NOT_THE_TEAM = ["other_data_scientist", "outsider"]
YOU_MADE_IT = "You made this request, so you cannot approve or reject it."


def squash(html: str) -> str:
    """The text of an HTML fragment, tags dropped, entities decoded and whitespace collapsed."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def text_of(response) -> str:
    return squash(re.sub(r"<script.*?</script>", " ", response.content.decode(), flags=re.S))


def version_of(model, number) -> ModelVersion:
    return ModelVersion.objects.get(model=model, version=number)


def ask(actor, model, number, to_stage, justification="better recall on card-not-present"):
    return services.promotion_request_create(
        actor=actor, version=version_of(model, number), to_stage=to_stage, justification=justification
    )


def rows_written() -> dict[str, int]:
    return {
        "requests": PromotionRequest.objects.count(),
        "approvals": Approval.objects.count(),
        "comments": RequestComment.objects.count(),
        "audit": AuditEvent.objects.count(),
        "transitions": StageTransition.objects.count(),
    }


def seen(promotion, **data) -> dict:
    """A decision form's data as the request page sends it: with the evidence hash it showed."""
    current = PromotionRequest.objects.filter(pk=promotion.pk).values_list("evidence_sha256", flat=True)
    return {"evidence_sha256": current.first() or "", **data}


def give_role(user, role: Role) -> None:
    user.groups.add(Group.objects.get(name=role))
    if hasattr(user, "_hafnium_roles"):
        del user._hafnium_roles


@pytest.fixture
def candidate_request(fraud_model, data_scientist):
    """dana asks to promote v4 (Experiment) to Candidate: Data Scientist Lead decides."""
    return ask(data_scientist, fraud_model, 4, Stage.CANDIDATE)


@pytest.fixture
def production_request(fraud_model, data_scientist):
    """dana asks to promote v2 (Staging) to Production: Model Risk and Compliance decide."""
    return ask(data_scientist, fraud_model, 2, Stage.PRODUCTION)


def page_url(page: str, fraud_model, promotion) -> str:
    return {
        "create": f"{reverse('governance:request-create')}?version={version_of(fraud_model, 3).pk}",
        "inbox": reverse("governance:inbox"),
        "mine": reverse("governance:my-requests"),
        "detail": reverse("governance:request-detail", args=[promotion.pk]),
        "history": reverse("governance:model-history", args=[fraud_model.name]),
    }[page]


ACTIONS = {
    # action: (url name, POST data); "create" asks for v3 (Candidate) to go to Staging.
    "create": ("governance:request-create", {"to_stage": "staging", "justification": "passes the gates"}),
    "approve": ("governance:request-approve", {"comment": "fine"}),
    "reject": ("governance:request-reject", {"comment": "calibration is off above 0.8"}),
    "withdraw": ("governance:request-withdraw", {}),
    "comment": ("governance:request-comment", {"body": "what about the holdout drift?"}),
}


def post_action(client, action: str, fraud_model, promotion, data=None, **extra):
    name, default = ACTIONS[action]
    if action == "create":
        url = f"{reverse(name)}?version={version_of(fraud_model, 3).pk}"
    else:
        url = reverse(name, args=[promotion.pk])
    data = default if data is None else data
    if action in ("approve", "reject"):
        data = seen(promotion, **data)
    return client.post(url, data, **extra)


# --- the permission matrix -----------------------------------------------------------------------


@pytest.mark.parametrize("page", ["create", "inbox", "mine", "detail", "history"])
def test_anonymous_visitor_is_sent_to_log_in(client, fraud_model, candidate_request, page):
    url = page_url(page, fraud_model, candidate_request)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(f"{reverse('accounts:login')}?next=")


@pytest.mark.parametrize("action", ACTIONS)
def test_anonymous_actions_are_sent_to_log_in_and_write_nothing(
    client, fraud_model, candidate_request, action
):
    before = rows_written()
    response = post_action(client, action, fraud_model, candidate_request)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))
    assert rows_written() == before


PAGE_MATRIX = [
    # The request form: the model's team only (approvers and managers see the model, may not ask).
    *[("create", person, 200) for person in ["data_scientist", "ds_lead"]],
    *[("create", person, 403) for person in ["ml_engineer", "model_risk", "compliance", "manager"]],
    *[("create", person, 404) for person in NOT_THE_TEAM],
    # Lists are scoped to the user: everyone signed in has one (maybe empty).
    *[("inbox", person, 200) for person in EVERYONE],
    *[("mine", person, 200) for person in EVERYONE],
    # A request and a model's history: whoever sees the model.
    *[("detail", person, 200) for person in SEE_THE_MODEL],
    *[("detail", person, 404) for person in NOT_THE_TEAM],
    *[("history", person, 200) for person in SEE_THE_MODEL],
    *[("history", person, 404) for person in NOT_THE_TEAM],
]


@pytest.mark.parametrize(("page", "person", "status"), PAGE_MATRIX)
def test_who_may_open_each_page(request, client, fraud_model, candidate_request, page, person, status):
    client.force_login(request.getfixturevalue(person))
    response = client.get(page_url(page, fraud_model, candidate_request))
    assert response.status_code == status
    if status == 200 and page in ("detail", "history", "create"):
        assert "fraud-scorer" in response.content.decode()


ACTION_MATRIX = [
    *[("create", person, 302) for person in ["data_scientist", "ds_lead"]],
    *[("create", person, 403) for person in ["ml_engineer", "model_risk", "compliance", "manager"]],
    # dana made the request (and v4): only the Data Scientist Lead decides on a Candidate request.
    ("approve", "ds_lead", 302),
    *[("approve", p, 403) for p in ["data_scientist", "ml_engineer", "model_risk", "compliance", "manager"]],
    ("reject", "ds_lead", 302),
    *[("reject", p, 403) for p in ["data_scientist", "ml_engineer", "model_risk", "compliance", "manager"]],
    ("withdraw", "data_scientist", 302),
    *[("withdraw", p, 403) for p in ["ds_lead", "ml_engineer", "model_risk", "compliance", "manager"]],
    # The model's team and the approvers of the request's stage discuss it; other readers do not.
    *[("comment", person, 302) for person in ["data_scientist", "ds_lead"]],
    *[("comment", person, 403) for person in ["ml_engineer", "model_risk", "compliance", "manager"]],
    *[(action, person, 404) for action in ACTIONS for person in NOT_THE_TEAM],
]


@pytest.mark.parametrize(("action", "person", "status"), ACTION_MATRIX)
def test_who_may_take_each_action_and_refusals_write_nothing(
    request, client, fraud_model, candidate_request, action, person, status
):
    client.force_login(request.getfixturevalue(person))
    before = rows_written()
    response = post_action(client, action, fraud_model, candidate_request)
    assert response.status_code == status
    if status == 302:
        assert rows_written()["audit"] > before["audit"]
    else:
        assert rows_written() == before
    if status == 403:
        error = {"create": "exception", "comment": "comment_error"}.get(action, "decision_error")
        assert response.context[error]


@pytest.mark.parametrize("page", ["detail", "approve", "reject", "withdraw", "comment"])
def test_unknown_request_is_404(client, ds_lead, candidate_request, page):
    client.force_login(ds_lead)
    missing = candidate_request.pk + 1000
    if page == "detail":
        response = client.get(reverse("governance:request-detail", args=[missing]))
    else:
        response = client.post(reverse(f"governance:request-{page}", args=[missing]), {"comment": "x"})
    assert response.status_code == 404


@pytest.mark.parametrize("action", ["approve", "reject", "withdraw", "comment"])
def test_actions_answer_only_post(client, ds_lead, candidate_request, action):
    client.force_login(ds_lead)
    assert client.get(reverse(f"governance:request-{action}", args=[candidate_request.pk])).status_code == 405


# --- the request form ----------------------------------------------------------------------------


def test_request_form_shows_the_version_stages_and_prechecks(client, data_scientist, incomplete_card):
    fraud_model = incomplete_card
    client.force_login(data_scientist)
    v4 = version_of(fraud_model, 4)
    response = client.get(reverse("governance:request-create"), {"version": v4.pk})
    text = text_of(response)
    assert response.status_code == 200
    assert "<title>Request promotion · fraud-scorer v4 · Hafnium Portal</title>" in response.content.decode()
    assert "Current stage Experiment" in text
    assert "Target stage Candidate" in text
    assert "Approvals needed Data Scientist Lead (policy v1)" in text
    assert "fail Model card complete: missing: intended_use, limitations" in text
    assert "pass Signature present" in text
    assert 'name="to_stage" value="candidate"' in response.content.decode()
    assert (
        '<label class="form-label" for="id_justification">Justification</label>' in response.content.decode()
    )
    assert "Request promotion to Candidate" in text


def test_a_production_request_form_shows_the_staging_tests_result(client, data_scientist, fraud_model):
    client.force_login(data_scientist)
    response = client.get(reverse("governance:request-create"), {"version": version_of(fraud_model, 2).pk})
    assert "Approvals needed Model Risk and Compliance" in text_of(response)
    assert "pass Staging tests: all 5 staging tests passed" in text_of(response)


def test_submitting_the_form_makes_the_request_and_shows_it(client, data_scientist, fraud_model):
    client.force_login(data_scientist)
    v4 = version_of(fraud_model, 4)
    response = client.post(
        f"{reverse('governance:request-create')}?version={v4.pk}",
        {"to_stage": "candidate", "justification": "  recall +3 points on CNP fraud  "},
        follow=True,
    )
    promotion = PromotionRequest.objects.get()
    assert response.redirect_chain == [(reverse("governance:request-detail", args=[promotion.pk]), 302)]
    assert promotion.requested_by == data_scientist
    assert promotion.to_stage == Stage.CANDIDATE
    assert promotion.justification == "recall +3 points on CNP fraud"
    text = text_of(response)
    assert (
        f"Request #{promotion.pk} to promote fraud-scorer v4 to Candidate was sent to its approvers." in text
    )
    assert "Status: Pending" in text


@pytest.mark.parametrize(
    ("to_stage", "message"),
    [
        ("production", "fraud-scorer v4 is in Experiment: it can be promoted to Candidate only"),
        ("staging", "it can be promoted to Candidate only (one stage at a time)"),
        ("nowhere", "unknown stage 'nowhere'"),
        ("", "unknown stage ''"),
    ],
)
def test_a_tampered_target_stage_is_refused_with_400(client, data_scientist, fraud_model, to_stage, message):
    client.force_login(data_scientist)
    before = rows_written()
    response = client.post(
        f"{reverse('governance:request-create')}?version={version_of(fraud_model, 4).pk}",
        {"to_stage": to_stage, "justification": "why not"},
    )
    assert response.status_code == 400
    assert message in text_of(response)
    assert 'data-testid="form-error"' in response.content.decode()
    assert rows_written() == before


def test_a_missing_justification_is_refused_and_the_form_kept(client, data_scientist, fraud_model):
    client.force_login(data_scientist)
    response = client.post(
        f"{reverse('governance:request-create')}?version={version_of(fraud_model, 4).pk}",
        {"to_stage": "candidate", "justification": "   "},
    )
    assert response.status_code == 400
    assert "A justification is required." in text_of(response)
    assert 'data-testid="request-form"' in response.content.decode()
    assert not PromotionRequest.objects.exists()


def test_a_second_request_for_the_same_stage_is_a_conflict(client, data_scientist, candidate_request):
    client.force_login(data_scientist)
    before = rows_written()
    response = client.post(
        f"{reverse('governance:request-create')}?version={candidate_request.version_id}",
        {"to_stage": "candidate", "justification": "again"},
    )
    assert response.status_code == 409
    assert (
        f"Request #{candidate_request.pk} already asks to promote fraud-scorer v4 to Candidate."
        in text_of(response)
    )
    assert rows_written() == before


def test_the_form_points_to_an_open_request_of_the_version(client, data_scientist, candidate_request):
    client.force_login(data_scientist)
    response = client.get(reverse("governance:request-create"), {"version": candidate_request.version_id})
    assert f"Request #{candidate_request.pk} already asks to promote this version to Candidate" in text_of(
        response
    )


def test_a_version_at_the_top_cannot_be_requested(client, data_scientist, fraud_model):
    client.force_login(data_scientist)
    response = client.get(reverse("governance:request-create"), {"version": version_of(fraud_model, 1).pk})
    assert response.status_code == 400
    assert "fraud-scorer v1 is in Production and cannot be promoted further." in text_of(response)
    assert 'data-testid="request-form"' not in response.content.decode()


@pytest.mark.parametrize("version", ["", "abc", "999999"])
def test_a_missing_or_unknown_version_is_404(client, data_scientist, fraud_model, version):
    client.force_login(data_scientist)
    assert client.get(reverse("governance:request-create"), {"version": version}).status_code == 404


def test_version_page_offers_the_next_stage_to_the_team_only(client, data_scientist, model_risk, fraud_model):
    client.force_login(data_scientist)
    for number, label in [(4, "Candidate"), (3, "Staging"), (2, "Production")]:
        response = client.get(reverse("registry:version-detail", args=[fraud_model.name, number]))
        assert f"Request promotion to {label}" in text_of(response)
        assert f"?version={version_of(fraud_model, number).pk}" in response.content.decode()
    top = client.get(reverse("registry:version-detail", args=[fraud_model.name, 1]))
    assert 'data-testid="request-promotion"' not in top.content.decode()
    client.force_login(model_risk)  # sees the model, is not in its team
    response = client.get(reverse("registry:version-detail", args=[fraud_model.name, 4]))
    assert 'data-testid="request-promotion"' not in response.content.decode()


def test_version_page_lists_its_promotion_requests(client, data_scientist, fraud_model, candidate_request):
    client.force_login(data_scientist)
    response = client.get(reverse("registry:version-detail", args=[fraud_model.name, 4]))
    assert f"Request #{candidate_request.pk} to Candidate Pending by dana" in text_of(response)
    other = client.get(reverse("registry:version-detail", args=[fraud_model.name, 3]))
    assert "No promotion has been requested for this version." in text_of(other)


def test_model_page_links_to_its_stage_history(client, data_scientist, fraud_model):
    client.force_login(data_scientist)
    response = client.get(reverse("registry:model-detail", args=[fraud_model.name]))
    url = reverse("governance:model-history", args=[fraud_model.name])
    assert f'href="{url}">Stage history and approvals</a>' in response.content.decode()


# --- deciding ------------------------------------------------------------------------------------


def test_the_requester_cannot_approve_their_own_request(client, fraud_model, ds_lead):
    promotion = ask(ds_lead, fraud_model, 4, Stage.CANDIDATE)  # a lead of the team asks
    client.force_login(ds_lead)
    before = rows_written()
    detail = client.get(reverse("governance:request-detail", args=[promotion.pk]))
    assert 'data-testid="approve"' not in detail.content.decode()  # the panel asks the service's rule
    response = client.post(
        reverse("governance:request-approve", args=[promotion.pk]), seen(promotion, comment="mine")
    )
    assert response.status_code == 403
    assert YOU_MADE_IT in text_of(response)
    assert 'role="alert" data-testid="decision-error"' in response.content.decode()
    assert rows_written() == before
    promotion.refresh_from_db()
    assert promotion.status == Status.PENDING


def test_htmx_refusal_swaps_the_panel_with_the_reason(client, fraud_model, ds_lead):
    promotion = ask(ds_lead, fraud_model, 4, Stage.CANDIDATE)
    client.force_login(ds_lead)
    response = client.post(
        reverse("governance:request-approve", args=[promotion.pk]),
        seen(promotion),
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 403
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="decision"')
    assert "<html" not in html
    assert YOU_MADE_IT in squash(html)
    assert not Approval.objects.exists()


def test_the_lead_approves_a_candidate_and_the_stage_moves(client, fraud_model, ds_lead, candidate_request):
    client.force_login(ds_lead)
    response = client.post(
        reverse("governance:request-approve", args=[candidate_request.pk]),
        seen(candidate_request, comment="recall gain is real"),
        follow=True,
    )
    assert response.redirect_chain == [
        (reverse("governance:request-detail", args=[candidate_request.pk]), 302)
    ]
    text = text_of(response)
    done = f"You approved request #{candidate_request.pk} as Data Scientist Lead."
    assert f"{done} It is now approved, publishing." in text
    assert "Status: Approved, publishing" in text
    assert "Data Scientist Lead Approved lee" in text
    assert "recall gain is real" in text
    candidate_request.refresh_from_db()
    assert candidate_request.status == Status.PUBLISHING
    assert version_of(fraud_model, 4).stage == Stage.CANDIDATE
    assert version_of(fraud_model, 3).stage == Stage.ARCHIVED
    approval = Approval.objects.get()
    assert (approval.approver, approval.role, approval.policy_version) == (ds_lead, "Data Scientist Lead", 1)


def test_htmx_approval_swaps_the_decision_panel(client, fraud_model, ds_lead, candidate_request):
    client.force_login(ds_lead)
    response = client.post(
        reverse("governance:request-approve", args=[candidate_request.pk]),
        seen(candidate_request),
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="decision"')
    assert "Approved, publishing" in squash(html)
    assert 'data-testid="approve"' not in html  # decided: no more buttons
    assert "You approved this request as Data Scientist Lead." in squash(html)


def test_the_decision_forms_post_without_javascript_and_confirm_with_htmx(client, ds_lead, candidate_request):
    client.force_login(ds_lead)
    html = client.get(reverse("governance:request-detail", args=[candidate_request.pk])).content.decode()
    approve = reverse("governance:request-approve", args=[candidate_request.pk])
    form = re.search(r'<form[^>]*data-testid="approve-form"[^>]*>', html).group(0)
    assert f'method="post" action="{approve}"' in form
    assert f'hx-post="{approve}"' in form
    assert 'hx-confirm="Approve request' in form
    assert 'hx-target="#decision"' in form
    assert "csrfmiddlewaretoken" in html
    assert '<label class="form-label" for="reject-comment">Reason for rejection (required)</label>' in html


def test_a_rejection_without_a_comment_is_refused_with_400(client, ds_lead, candidate_request):
    client.force_login(ds_lead)
    before = rows_written()
    response = client.post(
        reverse("governance:request-reject", args=[candidate_request.pk]),
        seen(candidate_request, comment=" "),
    )
    assert response.status_code == 400
    assert "A rejection needs a comment saying why." in text_of(response)
    assert rows_written() == before


def test_a_rejection_closes_the_request_with_its_comment(client, fraud_model, ds_lead, candidate_request):
    client.force_login(ds_lead)
    response = client.post(
        reverse("governance:request-reject", args=[candidate_request.pk]),
        seen(candidate_request, comment="calibration is off above 0.8"),
        follow=True,
    )
    text = text_of(response)
    assert f"You rejected request #{candidate_request.pk} as Data Scientist Lead." in text
    assert "Status: Rejected" in text
    assert "Data Scientist Lead Rejected lee" in text
    assert "calibration is off above 0.8" in text
    assert version_of(fraud_model, 4).stage == Stage.EXPERIMENT


def test_approving_a_closed_request_is_a_conflict(client, data_scientist, ds_lead, candidate_request):
    services.promotion_withdraw(actor=data_scientist, request=candidate_request)
    client.force_login(ds_lead)
    before = rows_written()
    response = client.post(
        reverse("governance:request-approve", args=[candidate_request.pk]), seen(candidate_request)
    )
    assert response.status_code == 409
    assert f"Request #{candidate_request.pk} is withdrawn; it can no longer be decided." in text_of(response)
    assert rows_written() == before


def test_an_approver_without_the_role_is_refused_with_403(client, ml_engineer, candidate_request):
    client.force_login(ml_engineer)
    detail = client.get(reverse("governance:request-detail", args=[candidate_request.pk]))
    assert 'data-testid="approve"' not in detail.content.decode()
    response = client.post(
        reverse("governance:request-approve", args=[candidate_request.pk]), seen(candidate_request)
    )
    assert response.status_code == 403
    assert "This request needs a decision from Data Scientist Lead; you hold none of these roles." in text_of(
        response
    )
    assert not Approval.objects.exists()


def test_production_needs_both_roles_and_shows_the_progress(
    client, model_risk, compliance, production_request
):
    url = reverse("governance:request-approve", args=[production_request.pk])
    client.force_login(model_risk)
    text = text_of(client.post(url, seen(production_request, comment="risk accepted"), follow=True))
    assert "Status: Pending" in text
    assert "Model Risk Approved rita" in text
    assert "Compliance Waiting" in text
    client.force_login(compliance)
    text = text_of(client.post(url, seen(production_request), follow=True))
    assert "Status: Approved, publishing" in text
    assert "Compliance Approved cora" in text
    production_request.refresh_from_db()
    assert production_request.status == Status.PUBLISHING


def test_someone_holding_two_required_roles_chooses_one(client, model_risk, production_request):
    give_role(model_risk, Role.COMPLIANCE)
    client.force_login(model_risk)
    html = client.get(reverse("governance:request-detail", args=[production_request.pk])).content.decode()
    assert '<label class="form-label" for="approve-role">Approve as</label>' in html
    assert (
        '<option value="Model Risk">Model Risk</option><option value="Compliance">Compliance</option>' in html
    )
    url = reverse("governance:request-approve", args=[production_request.pk])
    response = client.post(url, seen(production_request, role="Compliance"))
    assert response.status_code == 302
    assert Approval.objects.get().role == "Compliance"
    # Without a role, the service asks for one: that is a 400 with its message.
    production_request.approvals.all().delete()
    response = client.post(url, seen(production_request, comment=""))
    assert response.status_code == 400
    assert "choose one of: Model Risk, Compliance" in text_of(response)


def test_voided_approvals_are_struck_through_with_their_reason(
    client, fraud_model, data_scientist, model_risk, production_request
):
    services.promotion_approve(actor=model_risk, request=production_request, comment="ok as it was")
    model_card_edit(actor=data_scientist, model=fraud_model, intended_use="Score card payments for fraud.")
    client.force_login(model_risk)
    response = client.get(reverse("governance:request-detail", args=[production_request.pk]))
    html = response.content.decode()
    voided = re.search(r'<li data-testid="voided-approval">(.*?)</li>', html, re.S).group(1)
    assert "<del>Approved by rita as Model Risk" in voided
    assert "the evidence changed (model_card_sha256) after the approval was given" in squash(voided)
    assert "Model Risk Waiting" in text_of(response)
    assert 'data-testid="approve"' in html  # rita may approve the new evidence


def test_the_requester_withdraws_and_the_buttons_go(client, data_scientist, candidate_request):
    client.force_login(data_scientist)
    url = reverse("governance:request-detail", args=[candidate_request.pk])
    assert 'data-testid="withdraw"' in client.get(url).content.decode()
    response = client.post(reverse("governance:request-withdraw", args=[candidate_request.pk]), follow=True)
    assert f"You withdrew request #{candidate_request.pk}." in text_of(response)
    assert "Status: Withdrawn" in text_of(response)
    assert 'data-testid="withdraw"' not in response.content.decode()
    again = client.post(reverse("governance:request-withdraw", args=[candidate_request.pk]))
    assert again.status_code == 409
    assert "is withdrawn; it cannot be withdrawn." in text_of(again)


def test_comments_are_added_and_an_empty_one_is_refused(client, ds_lead, candidate_request):
    client.force_login(ds_lead)
    url = reverse("governance:request-comment", args=[candidate_request.pk])
    response = client.post(url, {"body": "what about the holdout drift?"}, follow=True)
    assert "Your comment was added." in text_of(response)
    assert re.search(r"lee \d{4}-\d\d-\d\d \d\d:\d\d UTC what about the holdout drift\?", text_of(response))
    before = rows_written()
    response = client.post(url, {"body": "  "})
    assert response.status_code == 400
    assert "A comment cannot be empty." in text_of(response)
    assert rows_written() == before


def test_the_detail_shows_evidence_prechecks_metrics_and_policy(
    client, fraud_model, incomplete_card, model_risk, production_request
):
    client.force_login(model_risk)
    response = client.get(reverse("governance:request-detail", args=[production_request.pk]))
    text = text_of(response)
    v2 = version_of(fraud_model, 2)
    title = (
        f"<title>Request #{production_request.pk} · fraud-scorer v2 to Production · Hafnium Portal</title>"
    )
    assert title in response.content.decode()
    assert f"Artifact sha256 {v2.artifact_sha256}" in text
    assert f"MLflow run {v2.run_id}" in text
    assert f"Dataset sha256 {'a' * 64}" in text
    assert f"Model card sha256 {production_request.evidence['model_card_sha256']}" in text
    assert "fail Model card complete" in text
    assert "pass Signature present" in text
    assert "pass Metrics vs production: ROC AUC 0.8700 vs production v1 0.8600" in text
    assert "pass Staging tests" in text
    # Side by side with production (v1), difference this minus production.
    assert "This request: v2 Production: v1 Difference" in text
    assert "roc_auc 0.8700 0.8600 +0.0100" in text
    assert "Approvals needed under policy v1" in text
    assert re.search(r"Requested by dana, \d{4}-\d\d-\d\d \d\d:\d\d UTC", text)


# --- lists ---------------------------------------------------------------------------------------


def test_the_navigation_counts_the_leads_inbox(client, data_scientist, ds_lead, fraud_model):
    client.force_login(ds_lead)
    assert 'data-testid="inbox-count"' not in client.get(reverse("home")).content.decode()
    ask(data_scientist, fraud_model, 4, Stage.CANDIDATE)
    html = client.get(reverse("home")).content.decode()
    assert re.search(r'data-testid="inbox-count"[^>]*>1</span>', html)


def test_the_inbox_lists_waiting_requests_oldest_first(
    client, data_scientist, ds_lead, fraud_model, candidate_request
):
    make_version(fraud_model, 5, creator=data_scientist)
    newer = ask(data_scientist, fraud_model, 5, Stage.CANDIDATE)
    PromotionRequest.objects.filter(pk=candidate_request.pk).update(
        created_at=timezone.now() - timedelta(days=3)
    )
    client.force_login(ds_lead)
    response = client.get(reverse("governance:inbox"))
    assert response.status_code == 200
    assert [p.pk for p in response.context["page"].object_list] == [candidate_request.pk, newer.pk]
    rows = re.findall(r'<tr data-testid="inbox-row">(.*?)</tr>', response.content.decode(), re.S)
    first = squash(rows[0])
    assert first.startswith(f"#{candidate_request.pk} fraud-scorer v4 Candidate dana")
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC \(3 days ago\)", first)
    assert first.endswith("Data Scientist Lead")


def test_the_inbox_shows_which_roles_are_still_missing(client, model_risk, compliance, production_request):
    services.promotion_approve(actor=model_risk, request=production_request)
    client.force_login(compliance)
    response = client.get(reverse("governance:inbox"))
    (row,) = re.findall(r'data-testid="missing-roles">(.*?)</td>', response.content.decode())
    assert row == "Compliance"
    client.force_login(model_risk)  # has decided: nothing left for rita
    assert "Nothing is waiting for your decision." in text_of(client.get(reverse("governance:inbox")))


def test_my_requests_filters_by_status(client, data_scientist, fraud_model, candidate_request):
    withdrawn = ask(data_scientist, fraud_model, 3, Stage.STAGING)
    client.force_login(data_scientist)
    everything = client.get(reverse("governance:my-requests"))
    assert [p.pk for p in everything.context["page"].object_list] == [withdrawn.pk, candidate_request.pk]
    services.promotion_withdraw(actor=data_scientist, request=withdrawn)
    filtered = client.get(reverse("governance:my-requests"), {"status": "withdrawn"})
    assert [p.pk for p in filtered.context["page"].object_list] == [withdrawn.pk]
    assert "Withdrawn" in text_of(filtered)
    none = client.get(reverse("governance:my-requests"), {"status": "completed"})
    assert "None of your requests has this status." in text_of(none)
    bad = client.get(reverse("governance:my-requests"), {"status": "lost"})
    assert bad.status_code == 400
    assert "Select a valid choice. lost is not one of the available choices." in text_of(bad)
    assert len(bad.context["page"].object_list) == 2


def test_my_requests_are_only_mine(client, ds_lead, candidate_request):
    client.force_login(ds_lead)
    response = client.get(reverse("governance:my-requests"))
    assert "You have not requested any promotion yet." in text_of(response)


def test_the_inbox_and_my_requests_are_paginated(client, data_scientist, ds_lead, fraud_model):
    for number in range(5, 32):
        make_version(fraud_model, number, creator=data_scientist)
        ask(data_scientist, fraud_model, number, Stage.CANDIDATE)
    client.force_login(ds_lead)
    first = client.get(reverse("governance:inbox"))
    assert len(first.context["page"].object_list) == 25
    assert "Page 1 of 2" in text_of(first)
    assert len(client.get(reverse("governance:inbox"), {"page": 2}).context["page"].object_list) == 2
    client.force_login(data_scientist)
    mine = client.get(reverse("governance:my-requests"), {"status": "pending"})
    assert 'href="?status=pending&amp;page=2"' in mine.content.decode()


# --- stage history -------------------------------------------------------------------------------


@pytest.fixture
def completed_production(mlflow_model, data_scientist, model_risk, compliance, ml_engineer):
    """v2 of the MLflow-backed model promoted to Production through the whole process: approved,
    published, then its canary (apps.deployments) promoted by the ML Engineer."""
    from apps.deployments.services import controller_tick, rollout_promote_now, rollout_start

    promotion = ask(data_scientist, mlflow_model, 2, Stage.PRODUCTION)
    # The MLflow-only versions have no card nor signature: the approvers override, saying why.
    why = "validated outside the portal"
    services.promotion_approve(
        actor=model_risk, request=promotion, comment="risk accepted", override_reason=why
    )
    services.promotion_approve(actor=compliance, request=promotion, comment="documented", override_reason=why)
    assert services.promotion_publish(request=promotion) is True
    promotion.refresh_from_db()
    assert promotion.status == Status.COMPLETED
    canary = rollout_start(request=promotion)
    controller_tick()
    rollout_promote_now(actor=ml_engineer, rollout=canary, reason="the canary looks fine")
    return promotion


def test_the_version_in_production_on_a_date_and_who_approved_it(
    client, manager, mlflow_model, completed_production
):
    client.force_login(manager)
    url = reverse("governance:model-history", args=[mlflow_model.name])
    today = timezone.localdate()
    response = client.get(url, {"date": today.isoformat()})
    assert response.status_code == 200
    answer = squash(
        re.search(r'data-testid="production-on"[^>]*>(.*?)</div>', response.content.decode(), re.S)[1]
    )
    assert re.search(
        rf"On {today:%Y-%m-%d}, v2 was in Production, since {today:%Y-%m-%d} \d\d:\d\d UTC "
        rf"\(moved by mia, request #{completed_production.pk} ?\)",
        answer,
    )
    assert re.search(r"rita as Model Risk, [\d-]+ [\d:]+ UTC \(policy v1\)", answer)
    assert re.search(r"cora as Compliance, [\d-]+ [\d:]+ UTC \(policy v1\)", answer)
    # The day before, v1 was in Production only by the mirror's say-so: no transition, so no answer.
    yesterday = client.get(url, {"date": (today - timedelta(days=1)).isoformat()})
    assert f"No version of {mlflow_model.name} was in production then" in text_of(yesterday)


def test_the_history_lists_stage_changes_and_requests_with_approvals(
    client, data_scientist, mlflow_model, completed_production
):
    client.force_login(data_scientist)
    response = client.get(reverse("governance:model-history", args=[mlflow_model.name]))
    text = text_of(response)
    assert f"<title>Stage history and approvals · {mlflow_model.name} · Hafnium Portal</title>" in (
        response.content.decode()
    )
    assert re.search(
        r"v2 Staging Production mia canary #\d+ promoted: promoted now: the canary looks fine", text
    )
    assert re.search(r"v1 Production Archived mia replaced by v2", text)
    row = squash(
        re.search(r'<tr data-testid="history-request">(.*?)</tr>', response.content.decode(), re.S)[1]
    )
    assert row.startswith(f"#{completed_production.pk} v2 Staging → Production Completed dana")
    assert "Approved by rita as Model Risk" in row
    assert "Approved by cora as Compliance" in row


@pytest.mark.parametrize("date", ["2026-13-45", "yesterday", "31/01/2026"])
def test_an_invalid_date_is_a_form_error(client, data_scientist, fraud_model, date):
    client.force_login(data_scientist)
    response = client.get(reverse("governance:model-history", args=[fraud_model.name]), {"date": date})
    assert response.status_code == 400
    assert "Enter a date as YYYY-MM-DD, for example 2026-01-31." in text_of(response)
    assert 'data-testid="production-on"' not in response.content.decode()


def test_no_production_before_any_transition(client, data_scientist, fraud_model):
    client.force_login(data_scientist)
    response = client.get(
        reverse("governance:model-history", args=[fraud_model.name]), {"date": "2020-01-01"}
    )
    assert response.status_code == 200
    assert "No version of fraud-scorer was in production then (2020-01-01)." in text_of(response)


# --- bounded queries -----------------------------------------------------------------------------


@pytest.fixture
def many_requests(fraud_model, data_scientist):
    """30 pending Candidate requests (v5..v34) by dana."""
    promotions = []
    for number in range(5, 35):
        make_version(fraud_model, number, creator=data_scientist)
        promotions.append(ask(data_scientist, fraud_model, number, Stage.CANDIDATE))
    return promotions


def test_the_inbox_takes_a_bounded_number_of_queries(
    client, ds_lead, many_requests, django_assert_max_num_queries
):
    client.force_login(ds_lead)
    with django_assert_max_num_queries(12):
        response = client.get(reverse("governance:inbox"))
    assert len(response.context["rows"]) == 25


def test_the_request_page_takes_a_bounded_number_of_queries(
    client, fraud_model, data_scientist, model_risk, compliance, manager, many_requests, production_request,
    django_assert_max_num_queries,
):  # fmt: skip
    services.promotion_approve(actor=model_risk, request=production_request)
    model_card_edit(actor=data_scientist, model=fraud_model, **{**CARD, "intended_use": "Score."})  # voids it
    services.promotion_approve(actor=model_risk, request=production_request)
    for number in range(6):
        author = [data_scientist, model_risk, compliance][number % 3]
        services.promotion_comment(actor=author, request=production_request, body=f"comment {number}")
    client.force_login(compliance)
    # The decision panel's standing (one query, plus the policies) and the comment right (guardian) included.
    with django_assert_max_num_queries(16):
        response = client.get(reverse("governance:request-detail", args=[production_request.pk]))
    assert response.status_code == 200
    assert len(re.findall(r'data-testid="comment"', response.content.decode())) == 6
    assert len(re.findall(r'data-testid="voided-approval"', response.content.decode())) == 1
