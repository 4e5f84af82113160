"""Raising, deduplicating, acknowledging and resolving alerts; each move audited and told to on-call once."""

import threading

import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied
from django.db import connection

from apps.alerts import services
from apps.alerts.models import Alert, AlertNotification
from apps.alerts.selectors import alerts_open
from apps.audit.models import AuditEvent
from hafnium_portal.errors import Conflict, DomainError

pytestmark = pytest.mark.django_db

BREAKER = {"source": "serving.breaker", "key": "fraud-scorer:1", "severity": "page"}


def _raise(**fields):
    return services.alert_raise(**{**BREAKER, "title": "Circuit breaker open: fraud-scorer v1", **fields})


def test_an_alert_goes_firing_acknowledged_resolved_and_each_move_is_audited(fraud_model, ml_engineer):
    alert = _raise(detail="5 failures in a row", model=fraud_model, link="/models/fraud-scorer/")
    assert (alert.state, alert.count, alert.model) == ("firing", 1, fraud_model)
    assert list(alerts_open()) == [alert]

    acknowledged = services.alert_acknowledge(alert=alert, actor=ml_engineer, note="looking")
    assert (acknowledged.state, acknowledged.acknowledged_by, acknowledged.note) == (
        "acknowledged", ml_engineer, "looking"
    )  # fmt: skip
    assert acknowledged.acknowledged_at is not None

    resolved = services.alert_resolve(source="serving.breaker", key="fraud-scorer:1", note="probe succeeded")
    assert (resolved.pk, resolved.state, resolved.resolved_by) == (alert.pk, "resolved", None)
    assert list(alerts_open()) == []

    events = AuditEvent.objects.filter(object_type="alerts.alert", object_id=str(alert.pk)).order_by("pk")
    assert [(e.action, e.actor) for e in events] == [
        ("alerts.raised", "system"),
        ("alerts.acknowledged", ml_engineer.username),
        ("alerts.resolved", "system"),
    ]
    assert events[1].before == {"state": "firing"}
    assert events[2].after["note"] == "probe succeeded"


def test_a_repeat_counts_on_the_open_alert_and_mails_nobody_again(
    fraud_model, oncall, celery_eager, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        first = _raise(model=fraud_model)
    with django_capture_on_commit_callbacks(execute=True):
        again = _raise(model=fraud_model)
        third = _raise(model=fraud_model)
    assert first.pk == again.pk == third.pk
    third.refresh_from_db()
    assert third.count == 3
    assert third.last_seen > first.first_seen
    assert len(mail.outbox) == 1
    assert AuditEvent.objects.filter(action="alerts.raised").count() == 1


def test_a_resolved_alert_raised_again_is_a_new_alert(fraud_model):
    first = _raise()
    services.alert_resolve(source=first.source, key=first.key)
    second = _raise()
    assert second.pk != first.pk
    assert second.count == 1
    assert Alert.objects.filter(source=first.source, key=first.key).count() == 2


def test_the_system_actor_resolves_what_a_program_raised(db):
    from apps.accounts.services import system_actor

    alert = _raise()
    resolved = services.alert_resolve(source=alert.source, key=alert.key, actor=system_actor())
    assert (resolved.state, resolved.resolved_by.username) == ("resolved", "hafnium-system")


def test_resolving_what_is_not_open_is_nothing(db):
    assert services.alert_resolve(source="serving.breaker", key="nothing:1") is None


def test_an_acknowledged_alert_cannot_be_acknowledged_again(ml_engineer, manager):
    alert = _raise()
    services.alert_acknowledge(alert=alert, actor=ml_engineer)
    with pytest.raises(Conflict, match="acknowledged already"):
        services.alert_acknowledge(alert=alert, actor=manager)
    resolved = services.alert_resolve_one(alert=alert, actor=manager, note="fixed")
    assert (resolved.state, resolved.resolved_by) == ("resolved", manager)
    with pytest.raises(Conflict, match="resolved already"):
        services.alert_resolve_one(alert=alert, actor=manager)
    with pytest.raises(Conflict):
        services.alert_acknowledge(alert=alert, actor=manager)


def test_resolving_one_alert_by_its_id_leaves_a_newer_one_with_the_same_key_open(manager):
    old = _raise()
    services.alert_resolve(source=old.source, key=old.key)
    newer = _raise()
    with pytest.raises(Conflict):
        services.alert_resolve_one(alert=old, actor=manager)
    newer.refresh_from_db()
    assert newer.state == "firing"


@pytest.mark.parametrize("person", ["data_scientist", "compliance", "outsider"])
def test_only_responders_acknowledge_or_resolve(request, person):
    alert = _raise()
    actor = request.getfixturevalue(person)
    with pytest.raises(PermissionDenied):
        services.alert_acknowledge(alert=alert, actor=actor)
    with pytest.raises(PermissionDenied):
        services.alert_resolve_one(alert=alert, actor=actor)
    with pytest.raises(PermissionDenied):
        services.alert_resolve(source=alert.source, key=alert.key, actor=actor)
    alert.refresh_from_db()
    assert alert.state == "firing"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"severity": "urgent"}, "severity"),
        ({"source": ""}, "source"),
        ({"key": "a\x00b"}, "key"),
        ({"title": "t" * 301}, "title"),
        ({"link": "javascript:alert(1)"}, "link"),
        ({"link": "//evil.example/x"}, "link"),
        ({"link": "/\\evil.example/x"}, "link"),
        ({"detail": "\x00"}, "detail"),
    ],
)
def test_a_malformed_alert_is_refused_naming_the_field(db, fields, message):
    with pytest.raises(DomainError, match=message):
        _raise(**fields)
    assert not Alert.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_racing_raises_of_one_alert_make_one_alert_counted_four_times_and_one_mail(oncall, celery_eager):
    """Two processes raising the same alert at once: the partial unique constraint lets one create it,
    the other counts as its repeat (PostgreSQL, real threads, each with its own connection)."""
    if connection.vendor != "postgresql":
        pytest.skip("the race is decided by PostgreSQL's partial unique index")
    barrier, outcomes = threading.Barrier(4), []

    def raise_it():
        try:
            barrier.wait()
            outcomes.append(_raise().pk)
        except Exception as exc:  # collected and asserted on
            outcomes.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=raise_it) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    (alert,) = Alert.objects.all()
    assert outcomes == [alert.pk] * 4
    assert alert.count == 4
    assert AuditEvent.objects.filter(action="alerts.raised").count() == 1
    assert AlertNotification.objects.filter(channel="email").count() == 1
    assert len(mail.outbox) == 1
