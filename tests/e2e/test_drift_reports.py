"""A manager reads drift: the home page's card, a drift report with its charts, the export opened offline."""

import re
from datetime import timedelta

from django.utils import timezone
from playwright.sync_api import expect

from tests.monitoring.test_drift_pages import make_model, make_run


def test_manager_opens_a_drift_report_and_its_export_opens_offline(
    page, browser, live_server, log_in, manager, team, tmp_path
):
    model, version = make_model("fraud-scorer", team)
    make_run(model, version, verdict="no drift", drifted=(), ended=timezone.now() - timedelta(days=1))
    run = make_run(model, version, verdict="drift")

    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    log_in("max")
    card = page.get_by_test_id("card-drift-verdicts")
    expect(card.get_by_test_id("drift-verdict")).to_contain_text("fraud-scorer")
    expect(card.locator("[data-verdict]")).to_have_text("drift")
    card.get_by_role("link", name="fraud-scorer").click()

    expect(page).to_have_title(re.compile(f"^Drift report #{run.pk}"))
    expect(page.get_by_test_id("feature-row").filter(has_text="amount")).to_have_class(
        re.compile("table-danger")
    )
    # Plotly (served by the portal) drew the heatmap, the score and every feature's distributions.
    for chart in ("chart-heatmap", "chart-score", "chart-embedding-0"):
        expect(page.locator(f"#{chart} .main-svg").first).to_be_visible(timeout=30_000)
    expect(page.locator("#chart-heatmap .heatmaplayer .hm")).to_have_count(1)
    expect(page.locator("[data-testid=drift-chart][data-rendered=true]")).to_have_count(5)
    assert errors == []

    with page.expect_download() as download_info:
        page.get_by_test_id("export-report").click()
    download = download_info.value
    assert re.fullmatch(
        rf"drift-report-fraud-scorer-run{run.pk}-\d{{8}}-\d{{4}}\.html", download.suggested_filename
    )
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)

    offline = browser.new_context(offline=True)
    requested = []
    offline.on("request", lambda request: requested.append(request.url))
    try:
        report = offline.new_page()
        report.goto(saved.as_uri())
        expect(report.get_by_role("heading", name=f"Drift report #{run.pk}: fraud-scorer")).to_be_visible()
        expect(report.locator("#chart-heatmap .main-svg").first).to_be_visible(timeout=30_000)
        expect(report.locator("[data-testid=drift-chart][data-rendered=true]")).to_have_count(5)
        assert [url for url in requested if not url.startswith(("file:", "data:", "blob:"))] == []
    finally:
        offline.close()
