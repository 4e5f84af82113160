"""A data scientist reads a model in the browser: list, model, version and its card, compare charts."""

import re

from playwright.sync_api import expect


def test_data_scientist_reads_a_model_its_card_and_compares_versions(page, live_server, log_in, fraud_model):
    log_in("dana")
    page.get_by_test_id("nav").get_by_role("link", name="Models").click()
    expect(page).to_have_title(re.compile("^Models"))

    page.get_by_role("link", name="fraud-scorer").click()
    expect(page).to_have_title(re.compile("^fraud-scorer"))
    expect(page.get_by_test_id("version-row")).to_have_count(4)

    page.get_by_test_id("versions-table").get_by_role("link", name="v4", exact=True).click()
    expect(page).to_have_title(re.compile("^fraud-scorer v4"))
    card = page.get_by_test_id("model-card")
    expect(card.get_by_role("heading", name="Intended use")).to_be_visible()
    expect(page.get_by_test_id("card-completeness")).to_contain_text("Incomplete")

    page.get_by_role("link", name="Compare with production").click()
    expect(page).to_have_title(re.compile("^Compare v4 and v1"))
    # Plotly (served by the portal) drew both charts.
    expect(page.get_by_test_id("roc-chart").locator(".main-svg").first).to_be_visible()
    expect(page.get_by_test_id("pr-chart").locator(".main-svg").first).to_be_visible()
    # Two curves per chart (the ROC chart also has the chance diagonal).
    expect(page.get_by_test_id("roc-chart").locator(".scatterlayer .trace")).to_have_count(3)
    expect(page.get_by_test_id("pr-chart").locator(".scatterlayer .trace")).to_have_count(2)
    headers = page.get_by_test_id("compare-metrics").locator("thead th")
    expect(headers).to_contain_text(["Metric", "A: v4", "B: v1", "Difference"])
    expect(page.get_by_test_id("compare-metrics").locator("tbody tr").first).to_contain_text("roc_auc")


def test_version_selectors_change_the_comparison_without_a_script(page, live_server, log_in, fraud_model):
    log_in("dana")
    page.goto(f"{live_server.url}/models/fraud-scorer/compare/")
    page.get_by_label("Version B").select_option("2")
    page.get_by_role("button", name="Compare").click()
    expect(page).to_have_url(re.compile(r"\?a=4&b=2$"))
    expect(page.get_by_test_id("compare-metrics").locator("thead th")).to_contain_text(
        ["Metric", "A: v4", "B: v2", "Difference"]
    )
    expect(page.get_by_test_id("pr-chart").locator(".main-svg").first).to_be_visible()


def test_filtering_the_list_updates_the_table_and_the_address(page, live_server, log_in, fraud_model):
    log_in("dana")
    page.goto(f"{live_server.url}/models/")
    expect(page.get_by_test_id("model-row")).to_have_count(1)
    page.get_by_label("Search").fill("no-such-model")
    page.get_by_label("Search").press("Enter")
    expect(page.get_by_test_id("empty")).to_contain_text("No models match these filters")
    expect(page).to_have_url(re.compile(r"/models/\?q=no-such-model"))
    page.get_by_label("Search").fill("")
    page.get_by_label("Has a version in stage").select_option("production")
    expect(page.get_by_test_id("model-row")).to_have_count(1)
    expect(page).to_have_url(re.compile(r"stage=production"))
    # The filters stay usable on the page htmx left behind (one form, one table).
    expect(page.locator("form[data-testid=model-filters]")).to_have_count(1)
