"""The audit trail: hash-chained, append-only, verified end to end; logins and role changes recorded."""

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.urls import reverse

from apps.audit import chain
from apps.audit.models import AuditEvent
from apps.audit.services import audit_record, audit_verify
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def _events(actor, count):
    return [
        audit_record(actor=actor, action="test.event", object_repr=f"thing {n}", after={"n": n})
        for n in range(count)
    ]


def test_each_event_chains_to_the_previous_one(data_scientist):
    first, second, third = _events(data_scientist, 3)
    assert second.prev_hash == first.hash
    assert third.prev_hash == second.hash
    stored = AuditEvent.objects.filter(pk=second.pk).values("id", "prev_hash", "hash", *chain.FIELDS).get()
    assert chain.event_hash(first.hash, stored) == second.hash
    assert audit_verify()[:2] == (None, AuditEvent.objects.count())


def test_verify_audit_names_the_first_broken_event(data_scientist, capsys):
    events = _events(data_scientist, 5)
    call_command("verify_audit")
    assert "audit chain intact" in capsys.readouterr().out
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:  # as a superuser could, bypassing the trigger
            cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_append_only")
    AuditEvent.objects.filter(pk=events[2].pk).update(object_repr="something else")
    with pytest.raises(CommandError, match=f"broken at event #{events[2].pk}"):
        call_command("verify_audit")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_event_append_only")


def test_a_deleted_event_breaks_the_chain_at_its_successor(data_scientist):
    events = _events(data_scientist, 4)
    with connection.cursor() as cursor:  # as a superuser could, around the trigger on PostgreSQL
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_append_only")
        cursor.execute("DELETE FROM audit_auditevent WHERE id = %s", [events[1].pk])
    assert audit_verify()[0] == events[2].pk


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the append-only trigger exists on PostgreSQL only"
)
def test_postgresql_refuses_update_and_delete_of_audit_events(data_scientist):
    (event,) = _events(data_scientist, 1)
    for statement in (
        AuditEvent.objects.filter(pk=event.pk).update,
        AuditEvent.objects.filter(pk=event.pk).delete,
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            statement(**({"action": "forged"} if statement.__name__ == "update" else {}))
    event.refresh_from_db()
    assert event.action == "test.event"


def test_an_event_rolls_back_with_the_action_that_wrote_it(data_scientist):
    before = AuditEvent.objects.count()

    def failing_action():
        with transaction.atomic():
            audit_record(actor=data_scientist, action="test.event")
            raise RuntimeError("the action failed")

    with pytest.raises(RuntimeError):
        failing_action()
    assert AuditEvent.objects.count() == before


def test_logins_and_failed_logins_are_recorded(client, data_scientist):
    client.post(reverse("accounts:login"), {"username": "dana", "password": "wrong"})
    client.post(reverse("accounts:login"), {"username": "dana", "password": PASSWORD})
    actions = list(AuditEvent.objects.order_by("id").values_list("action", "actor"))
    assert ("auth.login_failed", "dana") in actions
    assert ("auth.login", "dana") in actions


def test_role_changes_are_recorded_with_who_made_them(client, admin_user, outsider):
    client.force_login(admin_user)
    group = Group.objects.get(name="Compliance")
    response = client.post(
        reverse("admin:auth_user_change", args=[outsider.pk]),
        {
            "username": outsider.username,
            "email": outsider.email,
            "is_active": "on",
            "groups": [group.pk],
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
            "initial-date_joined_0": "2026-01-01",
            "initial-date_joined_1": "00:00:00",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    event = AuditEvent.objects.get(action="accounts.membership_added", object_id=str(outsider.pk))
    assert event.after == {"group": "Compliance"}
    assert event.actor == admin_user.username
