"""Alerts fixtures: a real local HTTP server for the on-call webhook, on-call addresses."""

import pytest

from tests.governance.test_notifications import Receiver

SECRET = "on-call-secret-for-the-test"


@pytest.fixture
def oncall(settings):
    settings.ALERTS_ONCALL_EMAILS = ["oncall@hafnium.example", "lead-oncall@hafnium.example"]
    return settings.ALERTS_ONCALL_EMAILS


@pytest.fixture
def receiver(settings):
    """The on-call system's webhook: a real HTTP server on localhost recording each call."""
    import threading

    receiver = Receiver()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    settings.ALERTS_WEBHOOK_URL = receiver.url
    settings.ALERTS_WEBHOOK_SECRET = SECRET
    yield receiver
    if receiver.hold is not None:
        receiver.hold.set()
    receiver.server.shutdown()


@pytest.fixture
def story(fraud_model, other_model):
    """Three open alerts: one about the Fraud Analytics team's model (page), one about Payments Risk's
    (ticket), one about the portal itself (info); and a resolved one about fraud-scorer."""
    from apps.alerts import services

    fraud = services.alert_raise(
        source="serving.breaker", key="fraud-scorer:1", severity="page", model=fraud_model,
        title="Circuit breaker open: fraud-scorer v1", link="/models/fraud-scorer/",
    )  # fmt: skip
    payments = services.alert_raise(
        source="monitoring.drift", key="payments-anomaly:psi", severity="ticket", model=other_model,
        title="Drift on payments-anomaly",
    )  # fmt: skip
    portal = services.alert_raise(
        source="portal.worker", key="heartbeat", severity="info", title="Worker late"
    )
    old = services.alert_raise(
        source="monitoring.slo", key="fraud-scorer:latency", severity="ticket", model=fraud_model,
        title="Latency SLO burning",
    )  # fmt: skip
    services.alert_resolve(source=old.source, key=old.key)
    old.refresh_from_db()
    return {"fraud": fraud, "payments": payments, "portal": portal, "old": old}
