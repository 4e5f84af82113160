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
