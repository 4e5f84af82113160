"""The circuit breaker on the scoring path, with the rules-only fallback; Redis down; MLflow down."""

import time
import uuid

import pytest
from django.core import mail

from apps.alerts.models import Alert
from apps.audit.models import AuditEvent
from apps.registry.models import ModelVersion
from apps.serving import hotpath
from apps.serving.logwriter import LogWriter
from apps.serving.models import BreakerTransition, FallbackRule
from apps.serving.services import policy_publish, rule_save
from hafnium_portal import embedded_redis

from .conftest import config_refresh

pytestmark = pytest.mark.django_db


def drain_events() -> None:
    writer = LogWriter(hotpath.redis_client(), consumer="test")
    while writer.step(wait=False):
        pass


def test_breaker_opens_after_five_failures_rules_answer_and_one_probe_closes_it(
    serving, scoring_client, ml_engineer, settings, celery_eager, django_capture_on_commit_callbacks
):
    settings.ALERTS_ONCALL_EMAILS = ["oncall@hafnium.example"]
    settings.SERVING_LOAD_RETRY = 0.0
    version = ModelVersion.objects.get(model=serving.model, version=1)
    good_source, good_run = version.source_uri, version.run_id
    ModelVersion.objects.filter(pk=version.pk).update(run_id="", source_uri="models:/m-gone")
    policy_publish(actor=ml_engineer, model=serving.model, review_at=0.5, decline_at=0.9,
                   breaker_failures=5, breaker_reset_after=1.0, latency_budget_ms=60_000)  # fmt: skip
    rule_save(
        actor=ml_engineer,
        rule=FallbackRule(model=serving.model, feature="amount", operator=">", threshold=-1.0, score=0.42,
                          decision="review"),
    )  # fmt: skip
    config_refresh()

    failing = [scoring_client(serving.item(i, transaction_id=f"f-{i}")).json() for i in range(5)]
    assert all(answer["fallback"] for answer in failing)
    assert {(a["score"], a["decision"]) for a in failing} == {(0.42, "review")}
    with django_capture_on_commit_callbacks(execute=True):  # the page to on-call goes after the commit
        drain_events()
    opened = BreakerTransition.objects.get(model=serving.model, to_state="open")
    assert opened.from_state == "closed"
    assert "cannot be loaded" in opened.reason
    assert AuditEvent.objects.filter(action="serving.breaker_open").exists()
    alert = Alert.objects.get(source="serving.breaker", key=f"{serving.model.name}:1")
    assert (alert.state, alert.severity, alert.model) == ("firing", "page", serving.model)
    assert alert.notifications.get(channel="email").sent_at is not None
    assert mail.outbox[-1].to == ["oncall@hafnium.example"]
    assert "breaker open" in mail.outbox[-1].subject

    # While open, the model is not tried: the answer is the rules' at once.
    assert scoring_client(serving.item(6, transaction_id="open-1")).json()["fallback"] is True

    # The version is fixed; after the reset time one probe tries it and closes the breaker.
    ModelVersion.objects.filter(pk=version.pk).update(run_id=good_run, source_uri=good_source)
    config_refresh()
    deadline = time.monotonic() + 30
    while True:
        answer = scoring_client(serving.item(7, transaction_id=f"p-{uuid.uuid4().hex}")).json()
        if not answer["fallback"] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert answer["fallback"] is False
    drain_events()
    assert BreakerTransition.objects.filter(model=serving.model, to_state="closed").exists()
    alert.refresh_from_db()
    assert alert.state == "resolved"  # the breaker closing resolves its alert
    assert scoring_client(serving.item(8, transaction_id="after")).json()["fallback"] is False


def test_scoring_goes_on_when_redis_stops(serving, scoring_client, settings):
    port = embedded_redis.free_port()
    server = embedded_redis.start_background(port)
    shared_redis = settings.REDIS_URL
    try:
        settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
        hotpath.reset_redis()
        config_refresh()
        before = scoring_client(serving.item(0, transaction_id="r-1"))
        assert before.status_code == 200
        server.terminate()
        server.wait(timeout=10)
        after = scoring_client(serving.item(1, transaction_id="r-2"))
        assert after.status_code == 200
        assert after.json()["fallback"] is False
        assert after.json()["score"] == pytest.approx(
            scoring_client(serving.item(1, transaction_id="r-3")).json()["score"]
        )
        assert len(hotpath._pending_logs) >= 2, "the logs wait in the process for Redis"
    finally:
        if server.poll() is None:
            server.kill()
        settings.REDIS_URL = shared_redis
        hotpath.reset_redis()
        hotpath._pending_logs.clear()


@pytest.mark.pyfunc  # the compiled scorer may well answer one row in under 1 ms
def test_an_answer_over_the_latency_budget_counts_as_a_failure(serving, scoring_client, ml_engineer):
    # 1 ms: far below what the MLflow pipeline takes on one row (about 12 ms here).
    policy_publish(actor=ml_engineer, model=serving.model, review_at=0.5, decline_at=0.9,
                   breaker_failures=1, breaker_reset_after=3600, latency_budget_ms=1.0)  # fmt: skip
    config_refresh()
    slow = scoring_client(serving.item(0, transaction_id="slow-1")).json()
    after = scoring_client(serving.item(1, transaction_id="slow-2")).json()

    assert slow["fallback"] is False, "the slow answer itself is the model's"
    assert after["fallback"] is True, "then the breaker is open"
    drain_events()
    assert "over the budget" in BreakerTransition.objects.get(model=serving.model, to_state="open").reason
