"""On-call hears of alerts through the outbox: a mail for a new page or ticket alert, a signed webhook
call for every move, each delivered once (claimed first) and resumed by the sweep after an outage."""

import hashlib
import hmac
import json
import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from apps.alerts import services, tasks
from apps.alerts.models import AlertNotification
from apps.outbox import delivery

from .conftest import SECRET

pytestmark = pytest.mark.django_db


def _breaker(model=None, **fields):
    return services.alert_raise(
        source="serving.breaker",
        key="fraud-scorer:1",
        severity=fields.pop("severity", "page"),
        title="Circuit breaker open: fraud-scorer v1",
        detail="5 consecutive failures: the model cannot be loaded",
        model=model,
        link="/models/fraud-scorer/",
        **fields,
    )


def test_a_new_page_alert_mails_oncall_what_happened_and_where_to_act(
    fraud_model, oncall, settings, celery_eager, django_capture_on_commit_callbacks
):
    settings.PORTAL_BASE_URL = "https://portal.example.com/"
    with django_capture_on_commit_callbacks(execute=True):
        alert = _breaker(fraud_model)
    (sent,) = mail.outbox
    assert sent.to == oncall
    assert sent.subject == "[Hafnium] Page: Circuit breaker open: fraud-scorer v1"
    assert "5 consecutive failures: the model cannot be loaded" in sent.body
    assert "Model: fraud-scorer" in sent.body
    assert "Look at: https://portal.example.com/models/fraud-scorer/" in sent.body
    assert f"Acknowledge it: https://portal.example.com/alerts/{alert.pk}/" in sent.body
    notification = AlertNotification.objects.get(alert=alert, channel="email")
    assert notification.sent_at is not None
    assert sent.extra_headers["Message-ID"] == f"<{notification.key}@hafnium-portal>"


def test_an_info_alert_mails_nobody(oncall, celery_eager, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        _breaker(severity="info")
    assert mail.outbox == []
    assert not AlertNotification.objects.exists()  # no webhook configured either


def test_each_move_is_posted_to_the_oncall_webhook_signed_and_keyed(
    fraud_model, manager, receiver, celery_eager, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        alert = _breaker(fraud_model)
    with django_capture_on_commit_callbacks(execute=True):
        _breaker(fraud_model)  # a repeat: nothing new is posted
    with django_capture_on_commit_callbacks(execute=True):
        services.alert_acknowledge(alert=alert, actor=manager, note="on it")
    with django_capture_on_commit_callbacks(execute=True):
        services.alert_resolve(source=alert.source, key=alert.key, note="probe succeeded")

    events = [json.loads(call["body"]) for call in receiver.calls]
    assert [(e["event"], e["state"], e["by"]) for e in events] == [
        ("alert.raised", "firing", "system"),
        ("alert.acknowledged", "acknowledged", manager.username),
        ("alert.resolved", "resolved", "system"),
    ]
    assert events[0]["severity"] == "page"
    assert events[0]["model"] == "fraud-scorer"
    assert events[0]["alert"] == alert.pk
    assert events[1]["count"] == 2
    assert events[2]["note"] == "probe succeeded"
    for call in receiver.calls:
        expected = hmac.new(SECRET.encode(), call["body"], hashlib.sha256).hexdigest()
        assert call["headers"]["X-Hafnium-Signature"] == f"sha256={expected}"
    keys = [call["headers"]["Idempotency-Key"] for call in receiver.calls]
    assert keys == [str(n.key) for n in AlertNotification.objects.filter(channel="webhook").order_by("pk")]
    assert len(set(keys)) == 3


def test_a_notification_lost_to_a_broker_outage_is_delivered_by_the_sweep(
    oncall, celery_eager, django_capture_on_commit_callbacks, monkeypatch
):
    def broker_down(*args, **kwargs):
        raise ConnectionRefusedError("Redis is down")

    monkeypatch.setattr(tasks.deliver_alert_notification, "apply_async", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        alert = _breaker()  # raising still succeeds
    (pending,) = AlertNotification.objects.filter(sent_at__isnull=True)
    assert mail.outbox == []
    AlertNotification.objects.filter(pk=pending.pk).update(created_at=timezone.now() - timedelta(minutes=2))
    assert tasks.deliver_pending_alert_notifications.apply().get() == []  # the broker is still down
    monkeypatch.undo()

    assert tasks.deliver_pending_alert_notifications.apply().get() == [pending.pk]
    (sent,) = mail.outbox
    assert alert.title in sent.subject
    assert tasks.deliver_alert_notification.apply(args=[pending.pk]).get() is False  # never twice
    assert len(mail.outbox) == 1


def test_a_failing_webhook_is_recorded_and_left_to_the_retry(settings, mlflow_unreachable):
    settings.ALERTS_WEBHOOK_URL = mlflow_unreachable + "/hook"  # nobody answers there
    settings.ALERTS_WEBHOOK_SECRET = "s"
    alert = _breaker()
    notification = AlertNotification.objects.get(alert=alert)
    with pytest.raises(delivery.DeliveryFailed, match="Connection"):
        delivery.message_deliver(AlertNotification, notification.pk)
    notification.refresh_from_db()
    assert (notification.sent_at, notification.claimed_until, notification.attempts) == (None, None, 1)
    assert "ConnectionError" in notification.last_error


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("channel", ["webhook", "email"])
def test_two_deliveries_of_one_alert_notification_racing_send_it_once(oncall, receiver, channel):
    alert = _breaker()
    notification = AlertNotification.objects.get(alert=alert, channel=channel)
    receiver.hold = threading.Event()  # the first webhook call stays in flight while the other races
    barrier, outcomes, finished = threading.Barrier(2), [], threading.Event()

    def deliver():
        try:
            barrier.wait()
            outcomes.append(tasks.deliver_alert_notification.apply(args=[notification.pk]).get())
        except Exception as exc:  # collected and asserted on
            outcomes.append(exc)
        finally:
            connection.close()
            finished.set()

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    assert finished.wait(30)  # one of them is done: the one that lost the claim
    receiver.hold.set()
    for thread in threads:
        thread.join(30)

    assert sorted(outcomes, key=str) == [False, True]
    notification.refresh_from_db()
    assert notification.sent_at is not None
    assert notification.attempts == 1
    if channel == "webhook":
        assert len(receiver.calls) == 1
    else:
        assert len(mail.outbox) == 1
