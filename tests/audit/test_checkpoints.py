"""Signed checkpoints of the chain's head: a cut tail, a rewrite past a checkpoint and a forged checkpoint
are reported by verify_audit; checkpoints go to a JSON-lines file outside the database (and a webhook)."""

import hashlib
import hmac
import json
import stat
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.db import connection

from apps.audit import chain, checkpoints
from apps.audit.models import AuditEvent
from apps.audit.services import audit_checkpoint, audit_record, audit_verify, chain_rows

pytestmark = pytest.mark.django_db


def record(count: int) -> list[AuditEvent]:
    return [
        audit_record(actor="system", action="test.event", object_repr=f"thing {n}", after={"n": n})
        for n in range(count)
    ]


def as_superuser(sql: str, params: list) -> None:
    """What a database superuser can do: on PostgreSQL, around the append-only trigger."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_append_only")
        cursor.execute(sql, params)
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_event_append_only")


def lines(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / "checkpoints.jsonl").read_text().splitlines()]


def test_a_checkpoint_signs_the_head_into_a_json_lines_file(checkpoint_folder, capsys):
    events = record(3)

    call_command("audit_checkpoint")

    (written,) = lines(checkpoint_folder)
    assert (written["event_id"], written["hash"]) == (events[-1].pk, events[-1].hash)
    body = json.dumps(
        {"event_id": written["event_id"], "hash": written["hash"], "written_at": written["written_at"]},
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    key = django_settings.AUDIT_CHECKPOINT_KEY_FILE.read_text().strip().encode()
    assert written["signature"] == hmac.new(key, body, hashlib.sha256).hexdigest()
    assert stat.S_IMODE(django_settings.AUDIT_CHECKPOINT_KEY_FILE.stat().st_mode) == 0o600
    assert f"audit checkpoint: event #{events[-1].pk}" in capsys.readouterr().out


def test_checkpoints_are_appended_and_none_is_written_without_new_events(checkpoint_folder):
    record(2)
    first = audit_checkpoint()
    assert audit_checkpoint() == first  # nothing new: nothing written
    (newer,) = record(1)

    second = audit_checkpoint()

    assert [line["event_id"] for line in lines(checkpoint_folder)] == [first["event_id"], newer.pk]
    assert second["event_id"] == newer.pk


def test_verify_audit_compares_the_head_with_the_latest_checkpoint(capsys):
    events = record(4)
    call_command("audit_checkpoint")
    record(2)  # events after the checkpoint are fine

    call_command("verify_audit")

    out = capsys.readouterr().out
    assert f"audit chain intact: {AuditEvent.objects.count()} events verified" in out
    assert f"head matches the checkpoint of event #{events[-1].pk}" in out


def test_verify_audit_says_when_no_checkpoint_was_written_yet(capsys):
    record(2)
    call_command("verify_audit")
    assert "no checkpoint written yet" in capsys.readouterr().out


@pytest.mark.parametrize("deleted", [1, 3])
def test_deleting_the_newest_events_is_reported_as_truncation(deleted):
    events = record(6)
    call_command("audit_checkpoint")
    kept = events[-deleted - 1]
    as_superuser("DELETE FROM audit_auditevent WHERE id > %s", [kept.pk])
    assert chain.first_break(
        AuditEvent.objects.order_by("id").values("id", "prev_hash", "hash", *chain.FIELDS)
    ) == (None, AuditEvent.objects.count())  # the chain alone still verifies: that was the hole

    with pytest.raises(CommandError) as failure:
        call_command("verify_audit")

    assert str(failure.value) == (
        f"audit trail truncated: the checkpoint written at {checkpoints.latest()['written_at']} covers "
        f"events up to #{events[-1].pk}, but the trail now ends at #{kept.pk}; the newest events were deleted"
    )


def test_deleting_every_event_is_reported_as_truncation():
    record(2)
    call_command("audit_checkpoint")
    as_superuser("DELETE FROM audit_auditevent", [])

    with pytest.raises(
        CommandError, match=r"truncated: .* but the trail now ends at nothing \(no events at all\)"
    ):
        call_command("verify_audit")


def test_a_cut_tail_with_new_events_chained_after_it_is_reported():
    events = record(5)
    call_command("audit_checkpoint")
    as_superuser("DELETE FROM audit_auditevent WHERE id > %s", [events[1].pk])
    record(4)  # the trail goes on past the checkpoint's id, chained to the cut head

    with pytest.raises(
        CommandError, match=f"truncated: event #{events[-1].pk}, the head signed .* is missing"
    ):
        call_command("verify_audit")


def test_rewriting_and_re_hashing_past_a_checkpoint_is_reported():
    """A superuser edits an event and re-computes every hash after it: the chain verifies, the
    checkpoint does not."""
    events = record(5)
    call_command("audit_checkpoint")
    previous = events[1].hash
    for event in events[2:]:
        fields = {name: getattr(event, name) for name in chain.FIELDS}
        if event.pk == events[2].pk:
            fields["object_repr"] = "nothing to see"
        digest = chain.event_hash(previous, fields)
        as_superuser(
            "UPDATE audit_auditevent SET object_repr = %s, prev_hash = %s, hash = %s WHERE id = %s",
            [fields["object_repr"], previous, digest, event.pk],
        )
        previous = digest
    assert audit_verify().broken is None

    with pytest.raises(
        CommandError, match=f"rewritten: event #{events[-1].pk} no longer has the hash signed"
    ):
        call_command("verify_audit")


def test_a_checkpoint_with_a_bad_signature_is_reported(checkpoint_folder):
    events = record(3)
    call_command("audit_checkpoint")
    forged = {**lines(checkpoint_folder)[-1], "event_id": events[0].pk, "hash": events[0].hash}
    with (checkpoint_folder / "checkpoints.jsonl").open("a") as out:
        out.write(json.dumps(forged) + "\n")

    with pytest.raises(CommandError, match=f"checkpoint of event #{events[0].pk} .* has a bad signature"):
        call_command("verify_audit")
    with pytest.raises(CommandError, match="bad signature"):
        call_command("audit_checkpoint")  # nor is a new one written on top of it


def test_a_checkpoint_signed_with_another_key_is_refused(settings):
    record(2)
    settings.AUDIT_CHECKPOINT_KEY = "the key of another portal"
    call_command("audit_checkpoint")
    settings.AUDIT_CHECKPOINT_KEY = "the key of this portal"

    with pytest.raises(CommandError, match="bad signature"):
        call_command("verify_audit")


def test_a_garbled_checkpoint_line_is_reported(checkpoint_folder):
    record(1)
    checkpoint_folder.mkdir(parents=True)
    (checkpoint_folder / "checkpoints.jsonl").write_text('{"event_id": 1, "hash"\n')

    with pytest.raises(CommandError, match="latest audit checkpoint refused: the checkpoint is not JSON"):
        call_command("verify_audit")


def test_verify_audit_takes_a_checkpoint_kept_elsewhere(checkpoint_folder, capsys):
    """E.g. the webhook receiver's copy, when the folder itself was tampered with."""
    events = record(4)
    kept = audit_checkpoint()
    (checkpoint_folder / "checkpoints.jsonl").unlink()
    as_superuser("DELETE FROM audit_auditevent WHERE id > %s", [events[1].pk])

    with pytest.raises(CommandError, match="truncated"):
        call_command("verify_audit", checkpoint=json.dumps(kept))
    with pytest.raises(CommandError, match=r"audit checkpoint refused: .* bad signature"):
        call_command("verify_audit", checkpoint=json.dumps({**kept, "event_id": events[1].pk}))


def test_no_checkpoint_is_signed_over_a_cut_trail(checkpoint_folder):
    events = record(4)
    call_command("audit_checkpoint")
    as_superuser("DELETE FROM audit_auditevent WHERE id > %s", [events[1].pk])
    record(3)

    with pytest.raises(CommandError, match="no checkpoint written: audit trail truncated"):
        call_command("audit_checkpoint")
    assert len(lines(checkpoint_folder)) == 1


def test_no_checkpoint_is_signed_over_a_broken_chain(checkpoint_folder):
    events = record(4)
    call_command("audit_checkpoint")
    (newer,) = record(1)
    as_superuser("UPDATE audit_auditevent SET object_repr = %s WHERE id = %s", ["edited", newer.pk])

    with pytest.raises(CommandError, match=f"chain broken at event #{newer.pk}"):
        call_command("audit_checkpoint")
    assert [line["event_id"] for line in lines(checkpoint_folder)] == [events[-1].pk]


def test_an_empty_trail_has_nothing_to_checkpoint(checkpoint_folder, capsys):
    as_superuser("DELETE FROM audit_auditevent", [])

    call_command("audit_checkpoint")
    assert "nothing to checkpoint" in capsys.readouterr().out
    assert not (checkpoint_folder / "checkpoints.jsonl").exists()


class _Receiver(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.headers["X-Hafnium-Signature"], body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_checkpoints_are_also_posted_to_the_webhook_signed(settings, checkpoint_folder):
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Receiver.received = []
    settings.AUDIT_CHECKPOINT_KEY = "a key from the secret store"
    settings.AUDIT_CHECKPOINT_WEBHOOK_URL = f"http://127.0.0.1:{server.server_port}/checkpoints"
    try:
        (event,) = record(1)
        checkpoint = audit_checkpoint()
    finally:
        server.shutdown()

    ((signature, body),) = _Receiver.received
    assert signature == "sha256=" + hmac.new(b"a key from the secret store", body, hashlib.sha256).hexdigest()
    assert json.loads(body) == {"event": "audit.checkpoint", "checkpoint": checkpoint}
    assert checkpoint["event_id"] == event.pk
    assert lines(checkpoint_folder) == [checkpoint]  # the folder has it too: verification reads it


def test_the_beat_schedule_writes_a_checkpoint_every_ten_minutes():
    entry = django_settings.CELERY_BEAT_SCHEDULE["audit-checkpoint"]
    assert entry["task"] == "apps.audit.tasks.write_checkpoint"
    assert entry["schedule"] == 600


# --- the fast walk reads exactly what was hashed ------------------------------------------------


@pytest.mark.parametrize(
    "at",
    [
        datetime(2025, 3, 1, 10, 0, 0, tzinfo=UTC),
        datetime(2025, 3, 1, 10, 0, 0, 100_000, tzinfo=UTC),
        datetime(2025, 3, 1, 10, 0, 0, 123_456, tzinfo=UTC),
        datetime(2025, 3, 1, 10, 0, 0, 7, tzinfo=UTC),
    ],
)
def test_rows_read_for_the_walk_give_the_canonical_form_that_was_hashed(at):
    awkward = {
        "note": 'ünïcode "quotes", \\ back\nslash \u2028 tab\t',
        "nested": {"b": [1, 2.5, None, True], "a": {"z": 1, "y": -0.0001}},
        "big": 12345678901234567,
    }
    specs = [
        {"actor": "ruth", "actor_id": 7, "before": None, "after": awkward, "object_repr": "été ✓"},
        {"actor": "", "actor_id": None, "before": {"status": "pending"}, "after": [], "object_repr": ""},
        {"actor": "=cmd", "actor_id": None, "before": "text", "after": 0, "object_repr": "'x"},
    ]
    previous = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first() or chain.GENESIS
    for spec in specs:
        event = {"at": at + timedelta(), "action": "test.x", "object_type": "t", "object_id": "1", **spec}
        event = {name: event[name] for name in chain.FIELDS}
        digest = chain.event_hash(previous, event)
        AuditEvent.objects.create(**event, prev_hash=previous, hash=digest)
        previous = digest

    stored = AuditEvent.objects.order_by("id").values("id", "prev_hash", "hash", *chain.FIELDS)
    rows = list(chain_rows())

    assert [chain.canonical_row(row) for row in rows] == [chain.canonical(event) for event in stored]
    assert chain.walk(rows).broken is None
    assert audit_verify()[:2] == (None, len(rows))
