"""An ML Engineer changes a model's serving thresholds and fallback rules in the browser."""

import re

from playwright.sync_api import expect

from apps.serving.models import FallbackRule, ServingPolicy


def test_ml_engineer_publishes_thresholds_and_deletes_a_rule(
    page, live_server, log_in, fraud_model, ml_engineer
):
    FallbackRule.objects.create(
        model=fraud_model,
        order=1,
        feature="amount",
        operator=">",
        threshold=5000,
        score=0.95,
        decision="decline",
    )
    log_in("mia")
    page.goto(f"{live_server.url}/models/fraud-scorer/")
    page.get_by_test_id("serving-thresholds-link").click()  # in the Serving panel, loaded by htmx
    expect(page).to_have_title(re.compile("^Thresholds and rules"))
    expect(page.get_by_test_id("policy-history-empty")).to_be_visible()

    page.get_by_label("Review from score").fill("0.8")
    page.get_by_label("Decline from score").fill("0.6")
    page.get_by_label("Reason").fill("tighter after the fraud wave")
    page.get_by_role("button", name="Publish the thresholds").click()
    expect(page.get_by_test_id("form-error")).to_contain_text("review_at <= decline_at")

    page.get_by_label("Decline from score").fill("0.95")
    page.get_by_role("button", name="Publish the thresholds").click()
    expect(page.get_by_test_id("policy-history")).to_contain_text("tighter after the fraud wave")
    expect(page.get_by_test_id("policy-current")).to_contain_text("0.95")
    assert ServingPolicy.objects.get(model=fraud_model).decline_at == 0.95

    page.get_by_test_id("rules").get_by_role("link", name="Delete").click()
    expect(page.get_by_test_id("rule-to-delete")).to_contain_text("amount > 5000")
    page.get_by_role("button", name="Delete the rule").click()
    expect(page.get_by_test_id("rules-empty")).to_be_visible()
    assert not FallbackRule.objects.filter(model=fraud_model).exists()
