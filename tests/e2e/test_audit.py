"""The audit page in the browser: "Verify chain" hands the work to a Celery worker and the page polls the
run's status (htmx) until the outcome shows."""

import re

from playwright.sync_api import expect

from apps.audit.models import AuditEvent, VerificationRun
from apps.audit.services import audit_record


def test_compliance_verifies_the_chain_and_watches_it_finish(
    page, live_server, log_in, compliance, start_celery
):
    for n in range(25):
        audit_record(actor="system", action="test.event", after={"n": n})
    start_celery("worker")
    log_in("cora")
    page.goto(f"{live_server.url}/audit/")
    expect(page).to_have_title(re.compile("^Audit trail"))

    page.get_by_test_id("verify-chain").click()

    result = page.get_by_test_id("verify-result")
    expect(result).to_contain_text("Audit chain intact", timeout=60_000)  # polled until the worker is done
    run = VerificationRun.objects.get()
    assert run.status == VerificationRun.Status.INTACT
    expect(result).to_contain_text(f"{run.checked} events verified")
    assert run.checked == AuditEvent.objects.count()  # the login and the request to verify included
