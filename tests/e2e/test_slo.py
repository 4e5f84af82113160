"""A manager's morning: the home page shows the SLO budgets a Celery worker measured, the SLO dashboard of
the burning model shows the page and draws its charts (plotly.js served by the portal)."""

import re
from datetime import timedelta

from django.utils import timezone
from playwright.sync_api import expect

from apps.alerts.models import Alert
from apps.monitoring.models import SLOMinute, SLOStatus
from hafnium_portal.enqueue import enqueue
from tests.monitoring.slo_fixtures import logs


def test_manager_reads_slo_budgets_and_the_dashboard(
    page, live_server, log_in, manager, fraud_model, start_celery
):
    now = timezone.now()
    minute = now.replace(second=0, microsecond=0)
    SLOMinute.objects.create(
        model=fraud_model,
        minute=minute - timedelta(days=2),
        requests=1_000_000,
        errors=0,
        slow=0,
        fallbacks=0,
    )
    for back in range(1, 61):  # the last hour: 10% errors
        logs(fraud_model, at=minute - timedelta(minutes=back), requests=20, errors=2)
    worker = start_celery("worker")
    assert enqueue("apps.monitoring.tasks_slo.evaluate_slos")
    status = worker.wait_for(lambda: SLOStatus.objects.filter(model=fraud_model).first())
    assert status.alert == "page"
    assert Alert.objects.get(source="slo").key == "fraud-scorer:availability:page"

    log_in("max")
    card = page.get_by_test_id("card-slo")
    expect(card).to_contain_text("fraud-scorer")
    expect(card.get_by_test_id("burn-status")).to_contain_text("paging")
    card.get_by_role("link", name="fraud-scorer").click()

    expect(page).to_have_title(re.compile("^SLOs of fraud-scorer"))
    expect(page.get_by_test_id("slo-alert")).to_contain_text("Paging on-call")
    for chart in ("chart-availability", "chart-burndown", "chart-latency", "chart-burn"):
        drawn = page.get_by_test_id(chart)
        expect(drawn).to_have_attribute("data-rendered", "true", timeout=60_000)  # plotly.js is 4 MB
        expect(drawn.locator("svg.main-svg").first).to_be_visible()
    # Measured again when the page opens (a minute or two later): the 6 h / 30 min rule still fires.
    slower = page.get_by_test_id("rule").filter(has_text="6x over 6 h and 30 min").first
    expect(slower).to_contain_text("firing")
    expect(slower).to_contain_text("100.00x")
