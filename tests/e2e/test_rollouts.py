"""An ML Engineer watches a canary in the browser and aborts it.

The rollout is a row the controller picks up (as after a Production approval); the controller's moves
are made by calling its service (`rollout_advance`, what the beat tick calls for each rollout) from the
test, at the moments the journey needs them: a worker and beat would make the same moves, only at times
the test could not choose (the controller with a real worker and beat is tested by deployments' own
end-to-end tests). The page learns each move by itself (htmx polling), never by a reload.
"""

import re
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from apps.deployments.models import Rollout
from apps.deployments.selectors import policy_in_force
from apps.deployments.services import rollout_advance
from apps.registry.models import ModelVersion
from apps.serving.models import PredictionLog
from apps.serving.routing import routes_get

# What the page learns by polling (every 2 s) can take a few polls on a loaded machine; so can Plotly's
# first drawing. The deadline of those expectations, not a sleep.
LIVE = 15_000


@pytest.fixture
def dialogs(page):
    """Accept every confirmation dialog (hx-confirm) and keep its message."""
    shown = []

    def accept(dialog):
        shown.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    return shown


@pytest.fixture
def pending_canary(fraud_model, ml_engineer):
    """fraud-scorer v2's canary over v1 (Production), as the Production approval leaves it: pending."""
    versions = {v.version: v for v in ModelVersion.objects.filter(model=fraud_model)}
    return Rollout.objects.create(
        model=fraud_model,
        candidate=versions[2],
        stable=versions[1],
        kind=Rollout.Kind.CANARY,
        policy=policy_in_force(fraud_model),
    )


def traffic(model, version: int, count: int, *, latency: float):
    """Answers of `version` in the last seconds, as the log writer stores them."""
    now = timezone.now()
    PredictionLog.objects.bulk_create(
        PredictionLog(
            request_id=uuid.uuid4().hex,
            transaction_id=uuid.uuid4().hex,
            model=model,
            version=version,
            numeric_features=[1.0],
            categorical_features=["grocery"],
            score=0.1,
            decision="approve",
            latency_ms=latency,
            created_at=now - timedelta(seconds=index % 5),
        )
        for index in range(count)
    )


def test_ml_engineer_watches_a_canary_progress_and_aborts_it(
    page, live_server, log_in, dialogs, pending_canary
):
    rollout = pending_canary
    log_in("mia")
    page.get_by_test_id("nav").get_by_role("link", name="Deployments").click()
    expect(page).to_have_title(re.compile("^Deployments"))
    row = page.get_by_test_id("rollout-row").filter(has_text="fraud-scorer")
    expect(row.get_by_test_id("rollout-state")).to_have_text("Pending")
    row.get_by_role("link", name=f"#{rollout.pk}").click()
    expect(page).to_have_title(re.compile(rf"^Rollout #{rollout.pk} · fraud-scorer v2"))

    live = page.get_by_test_id("rollout-live")
    expect(live.get_by_test_id("rollout-state")).to_have_text("Pending", timeout=LIVE)
    expect(page.get_by_test_id("no-events")).to_be_visible()
    # The chart is drawn by plotly.js (served by the portal) from the figure the server built.
    expect(page.get_by_test_id("rollout-chart").locator(".main-svg").first).to_be_visible(timeout=LIVE)
    page.evaluate("window.notReloaded = true")

    # The controller's tick: the canary takes 5 % of production traffic and its analysis starts.
    rollout_advance(rollout_id=rollout.pk)
    expect(live.get_by_test_id("rollout-state")).to_have_text("Analysing", timeout=LIVE)
    expect(live.get_by_test_id("canary-weight")).to_have_text("5 %", timeout=LIVE)
    expect(live.get_by_test_id("rollout-step").first).to_have_attribute(
        "data-status", "current", timeout=LIVE
    )
    expect(live.get_by_test_id("timeline-event")).to_have_count(2, timeout=LIVE)
    assert routes_get(rollout.model) == {2: 500, 1: 9500}
    # The controls followed the state: an analysing canary can be paused, promoted or aborted.
    expect(page.get_by_test_id("pause-form")).to_be_visible(timeout=LIVE)

    # Thin traffic on the canary; one analysis interval later the tick measures it: inconclusive.
    traffic(rollout.model, 1, 200, latency=20.0)
    traffic(rollout.model, 2, 10, latency=25.0)
    later = timezone.now() + timedelta(seconds=rollout.policy.analysis_interval_s + 1)
    rollout_advance(rollout_id=rollout.pk, now=later)
    measurements = live.get_by_test_id("measurement")
    expect(measurements.first).to_have_attribute("data-verdict", "inconclusive", timeout=LIVE)
    expect(live.get_by_test_id("rollout-state")).to_have_text("Analysing", timeout=LIVE)
    assert page.evaluate("window.notReloaded") is True

    # Abort, with a reason and a confirmation.
    abort = page.get_by_test_id("abort-form")
    abort.get_by_label("Reason to abort").fill("the canary's p99 worries me")
    abort.get_by_role("button", name="Abort").click()
    expect(page.get_by_test_id("control-message")).to_contain_text(
        f"Rollout #{rollout.pk} is aborted", timeout=LIVE
    )
    assert dialogs == [f"Abort rollout #{rollout.pk}? v1 takes all the traffic back at once."]
    expect(live.get_by_test_id("rollout-state")).to_have_text("Aborted", timeout=LIVE)
    expect(live.get_by_test_id("rollout-cause")).to_have_text("Aborted by a person", timeout=LIVE)
    expect(live.get_by_test_id("canary-weight")).to_have_text("0 %", timeout=LIVE)
    expect(page.get_by_test_id("abort-form")).to_have_count(0, timeout=LIVE)
    expect(page.get_by_test_id("pause-form")).to_have_count(0, timeout=LIVE)
    # Finished: the live part no longer polls.
    expect(page.locator("#rollout-live")).to_have_attribute(
        "hx-trigger", "rollout-acted from:body", timeout=LIVE
    )
    assert page.evaluate("window.notReloaded") is True

    rollout.refresh_from_db()
    assert rollout.state == Rollout.State.ABORTED
    assert routes_get(rollout.model) == {1: 10_000}
