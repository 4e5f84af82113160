"""Mail to the people concerned and a signed webhook for every governance event."""

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.core import mail

from apps.governance import services
from apps.registry.models import ModelVersion, Stage

pytestmark = pytest.mark.django_db


@pytest.fixture
def webhook_receiver(settings):
    """A real HTTP server on localhost that records what it receives."""
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"headers": dict(self.headers), "body": body})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.GOVERNANCE_WEBHOOK_URL = f"http://127.0.0.1:{server.server_port}/hook"
    settings.GOVERNANCE_WEBHOOK_SECRET = "shared-secret-for-the-test"
    yield received
    server.shutdown()


def _request(actor, model, number, stage):
    version = ModelVersion.objects.get(model=model, version=number)
    return services.promotion_request_create(
        actor=actor, version=version, to_stage=stage, justification="why"
    )


def test_approvers_are_mailed_a_new_request_and_the_requester_each_decision(
    fraud_model,
    data_scientist,
    model_risk,
    compliance,
    ml_engineer,
    celery_eager,
    django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=True):
        request = _request(data_scientist, fraud_model, 2, Stage.PRODUCTION)
    (new,) = mail.outbox
    assert set(new.to) == {model_risk.email, compliance.email}  # not the ML engineer, not the requester
    assert f"/governance/requests/{request.pk}/" in new.body

    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.promotion_reject(actor=compliance, request=request, comment="fairness review missing")
    (decision,) = mail.outbox
    assert decision.to == [data_scientist.email]
    assert "fairness review missing" in decision.body


def test_each_governance_event_is_posted_to_the_webhook_signed_with_hmac(
    fraud_model,
    data_scientist,
    ds_lead,
    celery_eager,
    django_capture_on_commit_callbacks,
    webhook_receiver,
    settings,
):
    with django_capture_on_commit_callbacks(execute=True):
        request = _request(data_scientist, fraud_model, 4, Stage.CANDIDATE)
    with django_capture_on_commit_callbacks(execute=True):
        services.promotion_withdraw(actor=data_scientist, request=request)

    events = [json.loads(call["body"]) for call in webhook_receiver]
    assert [event["event"] for event in events] == ["promotion.requested", "promotion.withdrawn"]
    assert events[0]["request"] == request.pk
    assert events[0]["model"] == "fraud-scorer"
    for call in webhook_receiver:
        expected = hmac.new(
            settings.GOVERNANCE_WEBHOOK_SECRET.encode(), call["body"], hashlib.sha256
        ).hexdigest()
        assert call["headers"]["X-Hafnium-Signature"] == f"sha256={expected}"


def test_a_notification_lost_to_a_broker_outage_is_delivered_by_the_sweep(
    fraud_model, data_scientist, model_risk, compliance, django_capture_on_commit_callbacks, monkeypatch
):
    from datetime import timedelta

    from django.utils import timezone

    from apps.governance import tasks
    from apps.governance.models import Notification

    def broker_down(*args, **kwargs):
        raise ConnectionRefusedError("Redis is down")

    monkeypatch.setattr(tasks.deliver_notification, "apply_async", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        request = _request(data_scientist, fraud_model, 2, Stage.PRODUCTION)  # the action still succeeds
    (pending,) = Notification.objects.filter(sent_at__isnull=True)
    assert pending.event == "promotion.requested"
    assert mail.outbox == []
    monkeypatch.undo()

    assert services.notifications_pending() == []  # a minute's grace for the first delivery
    Notification.objects.filter(pk=pending.pk).update(created_at=timezone.now() - timedelta(minutes=2))
    assert services.notifications_pending() == [pending.pk]
    assert tasks.deliver_notification.apply(args=[pending.pk]).get() is True
    (sent,) = mail.outbox
    assert set(sent.to) == {model_risk.email, compliance.email}
    assert f"/governance/requests/{request.pk}/" in sent.body
    assert services.notifications_pending() == []
    assert tasks.deliver_notification.apply(args=[pending.pk]).get() is False  # never twice


def test_a_failing_webhook_is_recorded_and_retried(fraud_model, data_scientist, settings, mlflow_unreachable):
    from apps.governance.models import Notification

    settings.GOVERNANCE_WEBHOOK_URL = mlflow_unreachable + "/hook"  # nobody answers there
    settings.GOVERNANCE_WEBHOOK_SECRET = "s"
    _request(data_scientist, fraud_model, 4, Stage.CANDIDATE)
    notification = Notification.objects.get(channel=Notification.Channel.WEBHOOK)
    with pytest.raises(Exception, match="Connection"):
        services.notification_deliver(notification=notification)
    notification.refresh_from_db()
    assert notification.sent_at is None
    assert notification.attempts == 1
    assert "ConnectionError" in notification.last_error
