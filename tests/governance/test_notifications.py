"""Mail to the people concerned and a signed webhook for every governance event, delivered once.

Deliveries claim their notification before sending and send with its idempotency key; retries run
with backoff; the sweep resumes what an outage left without piling up tasks.
"""

import hashlib
import hmac
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from apps.governance import services, tasks
from apps.governance.models import Notification
from apps.governance.services import delivery
from apps.outbox import delivery as outbox_delivery
from apps.registry.models import ModelVersion, Stage

pytestmark = pytest.mark.django_db


class Receiver:
    """A real HTTP server on localhost recording the webhook calls it receives.

    `fail_first`: answer 500 to that many calls first. `hold`: an event each call waits for (at most
    `hold_timeout` seconds) before answering, to keep a delivery in flight while another one races it.
    """

    def __init__(self):
        self.calls, self.fail_first, self.hold, self.hold_timeout = [], 0, None, 10.0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    receiver.calls.append({"headers": dict(self.headers), "body": body})
                    failing = len(receiver.calls) <= receiver.fail_first
                if receiver.hold is not None:
                    receiver.hold.wait(receiver.hold_timeout)
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"


@pytest.fixture
def receiver(settings):
    receiver = Receiver()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    settings.GOVERNANCE_WEBHOOK_URL = receiver.url
    settings.GOVERNANCE_WEBHOOK_SECRET = "shared-secret-for-the-test"
    yield receiver
    if receiver.hold is not None:
        receiver.hold.set()
    receiver.server.shutdown()


@pytest.fixture
def webhook_receiver(receiver):
    return receiver.calls


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
    key = str(Notification.objects.get(event="promotion.requested").key)
    assert new.extra_headers["Message-ID"] == f"<{key}@hafnium-portal>"  # receivers drop copies by it
    assert new.message()["Message-ID"] == f"<{key}@hafnium-portal>"

    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.promotion_reject(actor=compliance, request=request, comment="fairness review missing")
    (decision,) = mail.outbox
    assert decision.to == [data_scientist.email]
    assert "fairness review missing" in decision.body


def test_each_governance_event_is_posted_to_the_webhook_signed_with_hmac_and_keyed(
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
    keys = [call["headers"]["Idempotency-Key"] for call in webhook_receiver]
    webhooks = Notification.objects.filter(channel=Notification.Channel.WEBHOOK).order_by("pk")
    assert keys == [str(n.key) for n in webhooks]
    assert len(set(keys)) == 2


def test_a_notification_lost_to_a_broker_outage_is_delivered_by_the_sweep(
    fraud_model, data_scientist, model_risk, compliance, django_capture_on_commit_callbacks, monkeypatch,
    celery_eager,
):  # fmt: skip
    def broker_down(*args, **kwargs):
        raise ConnectionRefusedError("Redis is down")

    monkeypatch.setattr(tasks.deliver_notification, "apply_async", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        request = _request(data_scientist, fraud_model, 2, Stage.PRODUCTION)  # the action still succeeds
    (pending,) = Notification.objects.filter(sent_at__isnull=True)
    assert pending.event == "promotion.requested"
    assert mail.outbox == []

    assert tasks.deliver_pending_notifications.apply().get() == []  # a minute's grace for the first try
    Notification.objects.filter(pk=pending.pk).update(created_at=timezone.now() - timedelta(minutes=2))
    assert tasks.deliver_pending_notifications.apply().get() == []  # the broker is still down...
    pending.refresh_from_db()
    assert pending.next_attempt_at <= timezone.now()  # ...so it stays due for the next sweep
    monkeypatch.undo()

    assert tasks.deliver_pending_notifications.apply().get() == [pending.pk]  # delivered (eagerly)
    (sent,) = mail.outbox
    assert set(sent.to) == {model_risk.email, compliance.email}
    assert f"/governance/requests/{request.pk}/" in sent.body
    assert tasks.deliver_pending_notifications.apply().get() == []
    assert tasks.deliver_notification.apply(args=[pending.pk]).get() is False  # never twice
    assert len(mail.outbox) == 1


def test_the_sweep_enqueues_a_notification_once_while_its_delivery_is_scheduled(
    fraud_model, data_scientist, model_risk, monkeypatch
):
    """A worker outage (broker up, nobody consuming): each sweep would enqueue another copy without the
    schedule marker."""
    enqueued = []
    monkeypatch.setattr(outbox_delivery, "enqueue", lambda name, *args, **kw: enqueued.append(args) or True)
    _request(data_scientist, fraud_model, 2, Stage.PRODUCTION)
    (notification,) = Notification.objects.all()
    later = timezone.now() + timedelta(minutes=2)

    assert services.notifications_schedule_due(now=later) == [notification.pk]
    for minute in range(1, 9):  # the beat runs the sweep every minute
        assert services.notifications_schedule_due(now=later + timedelta(minutes=minute)) == []
    assert enqueued == [(notification.pk,)]
    # Still not delivered once the schedule lease has passed: enqueued again, once.
    after_lease = later + delivery.SCHEDULE_LEASE + timedelta(seconds=1)
    assert services.notifications_schedule_due(now=after_lease) == [notification.pk]
    assert services.notifications_schedule_due(now=after_lease) == []
    assert enqueued == [(notification.pk,), (notification.pk,)]


def test_a_failing_webhook_is_recorded_and_the_retry_is_left_to_the_task(
    fraud_model, data_scientist, settings, mlflow_unreachable
):
    settings.GOVERNANCE_WEBHOOK_URL = mlflow_unreachable + "/hook"  # nobody answers there
    settings.GOVERNANCE_WEBHOOK_SECRET = "s"
    _request(data_scientist, fraud_model, 4, Stage.CANDIDATE)
    notification = Notification.objects.get(channel=Notification.Channel.WEBHOOK)
    with pytest.raises(services.DeliveryFailed, match="Connection") as failure:
        services.notification_deliver(notification_id=notification.pk)
    notification.refresh_from_db()
    assert notification.sent_at is None
    assert notification.claimed_until is None  # released for the retry
    assert notification.attempts == 1
    assert "ConnectionError" in notification.last_error
    assert failure.value.retry_in == settings.OUTBOX_RETRY_SECONDS
    # The sweep leaves it to the task's retry, and picks it up once that time has passed.
    assert services.notifications_schedule_due() == []
    assert notification.next_attempt_at > timezone.now() + timedelta(seconds=failure.value.retry_in)
    beyond = notification.next_attempt_at + timedelta(seconds=1)
    assert services.notifications_schedule_due(now=beyond) == [notification.pk]


def test_retries_back_off_and_stop(settings):
    settings.OUTBOX_RETRY_SECONDS = 10
    assert [services.notification_retry_in(n) for n in (1, 2, 3, 4)] == [10, 20, 40, 80]
    assert services.notification_retry_in(30) == 600


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("channel", ["webhook", "email"])
def test_two_deliveries_of_one_notification_racing_send_it_once(
    fraud_model, data_scientist, model_risk, receiver, channel
):
    _request(data_scientist, fraud_model, 2, Stage.PRODUCTION)
    notification = Notification.objects.get(channel=channel)
    receiver.hold = threading.Event()  # the first webhook call stays in flight while the other races
    barrier, outcomes, finished = threading.Barrier(2), [], threading.Event()

    def deliver():
        try:
            barrier.wait()
            outcomes.append(services.notification_deliver(notification_id=notification.pk))
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


@pytest.mark.django_db(transaction=True)
def test_a_worker_retries_a_failing_webhook_with_backoff_until_it_is_taken(
    fraud_model, data_scientist, receiver, start_celery
):
    receiver.fail_first = 2  # the receiver answers 500 twice, then takes it
    worker = start_celery(
        "worker",
        env={
            "GOVERNANCE_WEBHOOK_URL": receiver.url,
            "GOVERNANCE_WEBHOOK_SECRET": "shared-secret-for-the-test",
            "OUTBOX_RETRY_SECONDS": "0.2",
        },
    )
    _request(data_scientist, fraud_model, 4, Stage.CANDIDATE)  # committed: enqueued through Redis
    notification = Notification.objects.get(channel=Notification.Channel.WEBHOOK)

    worker.wait_for(lambda: Notification.objects.filter(pk=notification.pk, sent_at__isnull=False).exists())

    notification.refresh_from_db()
    assert notification.attempts == 3
    assert notification.last_error.startswith("HTTPError: 500")  # the last failure stays on record
    assert len(receiver.calls) == 3
    assert {call["headers"]["Idempotency-Key"] for call in receiver.calls} == {str(notification.key)}
    # The sweep finds nothing left to do.
    assert services.notifications_schedule_due(now=timezone.now() + timedelta(hours=1)) == []
