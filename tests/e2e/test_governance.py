"""Promotion in the browser: request from the version page, decide from the Approvals inbox (htmx, with a
confirmation dialog), override a failed pre-check with a reason, and read the outcome as the requester."""

import re

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from apps.accounts.roles import Role
from apps.governance.models import PromotionRequest
from apps.registry.models import ModelVersion, Stage
from apps.registry.services import model_card_edit
from tests.governance.conftest import CARD, staging_tests_passed


@pytest.fixture
def fraud_model(fraud_model, data_scientist):
    """fraud-scorer with a complete model card and its Staging version's tests passed: its hard
    pre-checks pass."""
    model_card_edit(actor=data_scientist, model=fraud_model, **CARD)
    staging_tests_passed(fraud_model)
    return fraud_model


@pytest.fixture
def dialogs(page):
    """Accept every confirmation dialog (hx-confirm) and keep its message."""
    shown = []

    def accept(dialog):
        shown.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    return shown


def log_out(page):
    page.get_by_test_id("user-menu").click()
    page.get_by_test_id("logout").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))


def request_promotion(page, live_server, version: int, stage: str, justification: str) -> None:
    """As a team member: from the version page, ask for the next stage."""
    page.goto(f"{live_server.url}/models/fraud-scorer/versions/{version}/")
    page.get_by_role("link", name=f"Request promotion to {stage}").click()
    expect(page).to_have_title(re.compile(rf"^Request promotion · fraud-scorer v{version}"))
    expect(page.get_by_test_id("target-stage")).to_have_text(stage)
    page.get_by_label("Justification").fill(justification)
    page.get_by_role("button", name=f"Request promotion to {stage}").click()
    expect(page.get_by_test_id("request-status")).to_have_text("Pending")


def open_from_inbox(page, version: int) -> None:
    page.get_by_test_id("nav").get_by_role("link", name=re.compile("^Approvals")).click()
    expect(page).to_have_title(re.compile("^Approvals"))
    row = page.get_by_test_id("inbox-row").filter(has_text=f"fraud-scorer v{version}")
    expect(row).to_have_count(1)
    row.get_by_role("link").click()


def test_lead_approves_a_candidate_requested_from_the_version_page(
    page, live_server, log_in, dialogs, fraud_model, ds_lead
):
    log_in("dana")
    request_promotion(page, live_server, 4, "Candidate", "Recall on card-not-present fraud is up 3 points.")
    expect(page.get_by_role("alert").filter(has_text="was sent to its approvers")).to_be_visible()
    promotion = PromotionRequest.objects.get()
    log_out(page)

    log_in("lee")
    expect(page.get_by_test_id("nav").get_by_test_id("inbox-count")).to_have_text("1")
    open_from_inbox(page, 4)
    expect(page).to_have_title(re.compile(rf"^Request #{promotion.pk} · fraud-scorer v4 to Candidate"))
    expect(page.get_by_test_id("justification")).to_have_text(
        "Recall on card-not-present fraud is up 3 points."
    )
    page.get_by_label("Comment (optional)").fill("The gain holds on the holdout.")
    page.get_by_role("button", name="Approve").click()

    panel = page.get_by_test_id("decision-panel")
    expect(panel.get_by_test_id("request-status")).to_have_text(
        re.compile("^(Approved, publishing|Completed)$")
    )
    expect(panel.get_by_test_id("decision-message")).to_contain_text("as Data Scientist Lead")
    expect(panel.locator("[data-role='Data Scientist Lead']")).to_contain_text(
        "The gain holds on the holdout."
    )
    assert dialogs == [f"Approve request #{promotion.pk}: fraud-scorer v4 to Candidate?"]
    # The navigation's count follows the decision without a reload (htmx out-of-band swap).
    expect(page.get_by_test_id("nav").get_by_test_id("inbox-count")).to_have_count(0)
    assert ModelVersion.objects.get(model=fraud_model, version=4).stage == Stage.CANDIDATE


def test_production_needs_model_risk_then_compliance_and_the_requester_may_not_approve(
    page, live_server, log_in, dialogs, fraud_model, data_scientist, model_risk, compliance
):
    # dana also holds Model Risk here, yet made the request: the panel (the services' rule) offers her
    # no decision, and her inbox stays empty.
    data_scientist.groups.add(Group.objects.get(name=Role.MODEL_RISK))
    log_in("dana")
    request_promotion(page, live_server, 2, "Production", "Ready: staging soak passed, card complete.")
    panel = page.get_by_test_id("decision-panel")
    expect(panel.get_by_test_id("request-status")).to_have_text("Pending")
    expect(panel.get_by_role("button", name="Approve")).to_have_count(0)
    expect(page.get_by_test_id("nav").get_by_test_id("inbox-count")).to_have_count(0)
    log_out(page)

    log_in("rita")
    open_from_inbox(page, 2)
    page.get_by_role("button", name="Approve").click()
    panel = page.get_by_test_id("decision-panel")
    expect(panel.get_by_test_id("decision-message")).to_contain_text("as Model Risk")
    expect(panel.get_by_test_id("request-status")).to_have_text("Pending")
    expect(panel.locator("[data-role='Compliance']")).to_contain_text("Waiting")
    log_out(page)

    log_in("cora")
    open_from_inbox(page, 2)
    expect(page.locator("[data-role='Model Risk']")).to_contain_text("rita")
    page.get_by_role("button", name="Approve").click()
    panel = page.get_by_test_id("decision-panel")
    expect(panel.get_by_test_id("request-status")).to_have_text(
        re.compile("^(Approved, publishing|Completed)$")
    )
    expect(panel.locator("[data-role='Compliance']")).to_contain_text("cora")
    assert len(dialogs) == 2  # every press asked for confirmation
    # Approved: the canary (apps.deployments) takes over, and moves the stage when it succeeds.
    assert ModelVersion.objects.get(model=fraud_model, version=2).stage == Stage.STAGING


def test_compliance_rejects_and_the_requester_reads_why(
    page, live_server, log_in, dialogs, fraud_model, compliance
):
    log_in("dana")
    request_promotion(page, live_server, 2, "Production", "Ready for production.")
    log_out(page)

    log_in("cora")
    open_from_inbox(page, 2)
    page.get_by_label("Reason for rejection (required)").fill(
        "No fairness review for the new channel feature."
    )
    page.get_by_role("button", name="Reject").click()
    expect(page.get_by_test_id("decision-panel").get_by_test_id("request-status")).to_have_text("Rejected")
    assert dialogs[0].startswith("Reject request #")
    log_out(page)

    log_in("dana")
    page.get_by_test_id("nav").get_by_role("link", name="My requests").click()
    row = page.get_by_test_id("request-row")
    expect(row).to_have_count(1)
    expect(row.get_by_test_id("request-status")).to_have_text("Rejected")
    row.get_by_role("link").click()
    compliance_row = page.locator("[data-role='Compliance']")
    expect(compliance_row).to_contain_text("Rejected")
    expect(compliance_row).to_contain_text("cora")
    expect(compliance_row).to_contain_text("No fairness review for the new channel feature.")
    expect(page.get_by_role("button", name="Withdraw my request")).to_have_count(0)
    assert ModelVersion.objects.get(model=fraud_model, version=2).stage == Stage.STAGING


def test_the_lead_overrides_a_failed_precheck_with_a_reason_everyone_reads(
    page, live_server, log_in, dialogs, fraud_model, data_scientist, ds_lead
):
    model_card_edit(actor=data_scientist, model=fraud_model, intended_use="", limitations="")
    log_in("dana")
    request_promotion(page, live_server, 4, "Candidate", "Recall is up; the card follows this week.")
    log_out(page)

    log_in("lee")
    open_from_inbox(page, 4)
    panel = page.get_by_test_id("decision-panel")
    expect(panel.get_by_test_id("failed-checks")).to_contain_text("Model card complete")
    page.get_by_role("button", name="Approve").click()
    expect(panel.get_by_test_id("decision-error")).to_contain_text("Pre-checks failed: Model card complete")
    expect(panel.get_by_test_id("request-status")).to_have_text("Pending")
    page.get_by_label("Override reason (required: pre-checks failed)").fill("Card review booked for Friday.")
    page.get_by_role("button", name="Approve").click()
    expect(panel.get_by_test_id("request-status")).to_have_text(
        re.compile("^(Approved, publishing|Completed)$")
    )
    expect(panel.get_by_test_id("override")).to_contain_text("Card review booked for Friday.")
    log_out(page)

    log_in("dana")
    page.goto(f"{live_server.url}/governance/requests/{PromotionRequest.objects.get().pk}/")
    expect(page.get_by_test_id("override")).to_contain_text(
        "Overrode failed pre-checks (Model card complete): Card review booked for Friday."
    )
