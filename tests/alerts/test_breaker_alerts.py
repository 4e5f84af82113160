"""A breaker opening pages on-call through an alert, and its closing resolves it: a real breaker on the
test run's Redis, its transitions recorded as the log writer records them from the event stream."""

import os
import time
import uuid

import pytest
import redis
from django.core import mail

from apps.alerts.models import Alert
from apps.serving import services
from apps.serving.breaker import Breaker, breaker_key

pytestmark = pytest.mark.django_db


class Recorder:
    """The breaker's transition callback, writing each transition as the writer does (one event id each)."""

    def __init__(self, model_name: str, version: int):
        self.model_name, self.version, self.recorded = model_name, version, []

    def __call__(self, key, old, new):
        fields = {
            "model": self.model_name,
            "version": str(self.version),
            "from_state": old,
            "to_state": new,
            "reason": "5 consecutive failures" if new == "open" else "",
            "at": str(int(time.time() * 1000)),
            "host": "test",
        }
        event_id = f"{uuid.uuid4().int % 10**12}-0"
        self.recorded.append((event_id, fields))
        services.breaker_event_record(event_id=event_id, fields=fields)


@pytest.fixture
def breaker(fraud_model):
    recorder = Recorder(fraud_model.name, 1)
    client = redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=2, socket_connect_timeout=2)
    key = breaker_key(f"{fraud_model.name}-{uuid.uuid4().hex[:8]}", 1)
    breaker = Breaker(client, key, failures=5, reset_after=0.05, on_transition=recorder)
    breaker.recorder = recorder
    yield breaker
    client.delete(key)


def _fail(breaker, times=5):
    for _ in range(times):
        breaker.allow()
        breaker.record_failure()


def _probe(breaker):
    deadline = time.monotonic() + 10
    while breaker.allow() != "probe":
        assert time.monotonic() < deadline, "no probe was allowed after the reset time"
        time.sleep(0.01)


def test_a_breaker_opening_raises_a_page_alert_and_its_closing_resolves_it(
    breaker, fraud_model, oncall, celery_eager, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        _fail(breaker)
    alert = Alert.objects.get(source="serving.breaker", key="fraud-scorer:1")
    assert (alert.state, alert.severity, alert.model) == ("firing", "page", fraud_model)
    assert "5 consecutive failures" in alert.detail
    assert alert.link == "/models/fraud-scorer/"
    assert len(mail.outbox) == 1

    _probe(breaker)
    breaker.record_success()
    alert.refresh_from_db()
    assert alert.state == "resolved"
    assert alert.resolved_by is None  # the system: the condition cleared
    assert "probe succeeded" in alert.note


def test_a_failed_probe_reopens_on_the_same_alert_and_pages_nobody_again(
    breaker, oncall, celery_eager, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        _fail(breaker)
        _probe(breaker)
        breaker.record_failure()  # the probe fails: open again
    assert [(f["from_state"], f["to_state"]) for _, f in breaker.recorder.recorded] == [
        ("closed", "open"),
        ("half_open", "open"),
    ]
    (alert,) = Alert.objects.all()
    assert (alert.state, alert.count) == ("firing", 2)
    assert len(mail.outbox) == 1


def test_a_replayed_breaker_event_raises_nothing_twice(breaker):
    _fail(breaker)
    event_id, fields = breaker.recorder.recorded[0]
    assert services.breaker_event_record(event_id=event_id, fields=fields) is None
    assert Alert.objects.get().count == 1
