"""Alerts in the browser: the banner of every page leads on-call to the alert, acknowledged with a note."""

import re

from playwright.sync_api import expect

from apps.alerts.models import Alert
from apps.alerts.services import alert_raise


def test_a_manager_follows_the_banner_and_acknowledges_the_alert(
    page, live_server, log_in, manager, fraud_model
):
    alert_raise(
        source="serving.breaker",
        key="fraud-scorer:1",
        severity="page",
        title="Circuit breaker open: fraud-scorer v1",
        detail="5 consecutive failures",
        model=fraud_model,
        link="/models/fraud-scorer/",
    )
    log_in("max")
    expect(page.get_by_test_id("open-alerts-count")).to_have_text("1")
    banner = page.get_by_test_id("paging-banner")
    expect(banner).to_contain_text("Circuit breaker open: fraud-scorer v1")

    banner.get_by_role("link", name="Circuit breaker open: fraud-scorer v1").click()
    expect(page).to_have_title(re.compile("^Alert #"))
    page.get_by_label("Note").fill("restarting the model cache")
    page.get_by_test_id("acknowledge").click()

    expect(page.get_by_test_id("alert-state")).to_have_text("Acknowledged")
    expect(page.get_by_test_id("timeline")).to_contain_text("acknowledged by max: restarting the model cache")
    expect(page.get_by_test_id("paging-banner")).to_have_count(0)  # someone is on it
    alert = Alert.objects.get()
    assert (alert.state, alert.acknowledged_by, alert.note) == (
        "acknowledged",
        manager,
        "restarting the model cache",
    )
