"""Writing the audit trail. Every app calls `audit_record` inside the transaction of its action."""

import json
from collections.abc import Callable, Iterator
from datetime import UTC, timedelta
from typing import NamedTuple

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import F, Func, Q, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from hafnium_portal.enqueue import enqueue_on_commit
from hafnium_portal.errors import Conflict

from . import chain, checkpoints
from .models import AuditEvent, VerificationRun

# The canonical form's time (UTC, ISO 8601, microseconds) as PostgreSQL writes it.
PG_UTC_ISO = """to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')"""
# Any constant: the key of the PostgreSQL advisory lock that serialises appends to the chain.
CHAIN_LOCK_KEY = 7_405_126_311


def _plain(value):
    """JSON as it will read back from the database (datetimes, decimals, UUIDs as strings)."""
    return None if value is None else json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def audit_record(
    *,
    actor,
    action: str,
    obj=None,
    before=None,
    after=None,
    object_type: str = "",
    object_id="",
    object_repr="",
) -> AuditEvent:
    """Append an event to the chain, in the caller's transaction (so it commits or rolls back with it)."""
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or obj.pk
        object_repr = object_repr or str(obj)
    authenticated = actor is not None and getattr(actor, "is_authenticated", False)
    event = {
        "at": timezone.now(),
        "actor_id": actor.pk if authenticated else None,
        "actor": actor.get_username() if authenticated else (actor if isinstance(actor, str) else "system"),
        "action": action,
        "object_type": object_type,
        "object_id": str(object_id) if object_id != "" else "",
        "object_repr": str(object_repr)[:300],
        "before": _plain(before),
        "after": _plain(after),
    }
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK_KEY])
        # SQLite runs one writing transaction at a time (IMMEDIATE mode), which serialises appends.
        prev_hash = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first() or chain.GENESIS
        return AuditEvent.objects.create(
            **event, prev_hash=prev_hash, hash=chain.event_hash(prev_hash, event)
        )


def chain_rows(*, after_id: int | None = None, batch_size: int = 10_000) -> Iterator[tuple]:
    """The events in chain order as `chain.ROW` tuples, fetched in chunks (a server-side cursor on
    PostgreSQL). The query is the ORM's; the rows come from the cursor as they are (times and JSON as
    text), without the ORM's per-row conversion, which would cost more than the hashing."""
    events = AuditEvent.objects.order_by("id")
    if after_id is not None:
        events = events.filter(id__gt=after_id)
    if connection.vendor == "postgresql":
        at = Func(F("at"), template=PG_UTC_ISO, output_field=TextField())  # canonical text, 6 digits
    else:
        at = Cast("at", TextField())
    text = {name: Cast(name, TextField()) for name in ("before", "after")}
    query = events.annotate(at_text=at, before_text=text["before"], after_text=text["after"]).values_list(
        "id", "at_text", "actor_id", "actor", "action", "object_type", "object_id", "object_repr",
        "before_text", "after_text", "prev_hash", "hash",
    )  # fmt: skip
    sql, params = query.query.sql_with_params()
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(batch_size):
            yield from rows


class Verification(NamedTuple):
    """The outcome of checking the trail: its chain, and its head against the latest checkpoint."""

    broken: int | None  # the first event whose hash or link is wrong
    checked: int
    head_id: int | None = None
    checkpoint: dict | None = None  # the latest checkpoint (None: none written yet, or unreadable)
    problem: str = ""  # what the checkpoint comparison found wrong ("" when nothing)

    @property
    def intact(self) -> bool:
        return self.broken is None and not self.problem


def _against_checkpoint(walk: chain.Walk, checkpoint: dict) -> str:
    event_id, written_at = checkpoint["event_id"], checkpoint["written_at"]
    if walk.head_id is None or walk.head_id < event_id:
        head = f"#{walk.head_id}" if walk.head_id is not None else "nothing (no events at all)"
        return (
            f"audit trail truncated: the checkpoint written at {written_at} covers events up to "
            f"#{event_id}, but the trail now ends at {head}; the newest events were deleted"
        )
    if walk.mark_hash is None:
        return (
            f"audit trail truncated: event #{event_id}, the head signed in the checkpoint written at "
            f"{written_at}, is missing; events up to it were deleted and later ones chained on after the cut"
        )
    if walk.mark_hash != checkpoint["hash"]:
        return (
            f"audit trail rewritten: event #{event_id} no longer has the hash signed in the checkpoint "
            f"written at {written_at}; the trail was rewritten (and re-hashed) up to there"
        )
    return ""


def audit_verify(
    *,
    batch_size: int = 10_000,
    progress: Callable[[int], None] | None = None,
    progress_every: int = 50_000,
    checkpoint: dict | None = None,
) -> Verification:
    """Check the whole chain, then its head against the latest checkpoint (or the one given).

    `progress(checked)` is called as the walk goes. A chain break is reported by event id; a cut tail,
    a rewrite past the checkpoint or a checkpoint with a bad signature as `problem`.
    """
    problem = ""
    if checkpoint is None:
        try:
            checkpoint = checkpoints.latest()
        except checkpoints.CheckpointError as exc:
            problem = f"latest audit checkpoint refused: {exc}"
    else:
        try:
            checkpoints.check_signature(checkpoint)
        except checkpoints.CheckpointError as exc:
            problem, checkpoint = f"audit checkpoint refused: {exc}", None
    mark = checkpoint["event_id"] if checkpoint else None
    walk = chain.walk(chain_rows(batch_size=batch_size), mark=mark, progress=progress, every=progress_every)
    if walk.broken is None and checkpoint is not None:
        problem = _against_checkpoint(walk, checkpoint)
    return Verification(walk.broken, walk.checked, walk.head_id, checkpoint, problem)


def audit_checkpoint() -> dict | None:
    """Sign the chain's head and append it to the sinks; None when the trail is empty.

    The events since the previous checkpoint are verified first (they must extend it, intact): a
    checkpoint never signs a trail that was cut or rewritten. Conflict otherwise.
    """
    previous = checkpoints.latest()  # CheckpointError (bad signature) stops here too
    after_id, start = None, chain.GENESIS
    if previous is not None:
        at_mark = AuditEvent.objects.filter(pk=previous["event_id"]).values_list("hash", flat=True).first()
        if at_mark != previous["hash"]:
            walk = chain.Walk(
                None, 0, AuditEvent.objects.order_by("-id").values_list("id", flat=True).first(), "", at_mark
            )
            raise Conflict(
                _against_checkpoint(walk, previous) or "the trail does not extend the last checkpoint"
            )
        after_id, start = previous["event_id"], previous["hash"]
    walk = chain.walk(chain_rows(after_id=after_id), start=start)
    if walk.broken is not None:
        raise Conflict(f"audit chain broken at event #{walk.broken}: no checkpoint written")
    if walk.head_id is None:
        return previous  # nothing new since the last checkpoint (or no events at all)
    checkpoint = checkpoints.sign(
        {
            "event_id": walk.head_id,
            "hash": walk.head_hash,
            "written_at": timezone.now().astimezone(UTC).isoformat(timespec="seconds"),
        }
    )
    for sink in checkpoints.sinks():
        sink.append(checkpoint)
    return checkpoint


# --- "Verify chain": a run with its progress, done by a task -------------------------------------

# A running verification writes its progress every PROGRESS_EVERY events (a second or so); one silent
# for this long lost its worker and may be claimed again.
PROGRESS_EVERY = 50_000
VERIFICATION_STALE_AFTER = timedelta(minutes=10)


def _stale_before():
    return timezone.now() - VERIFICATION_STALE_AFTER


def verification_request(*, actor) -> VerificationRun:
    """Start a verification of the whole trail (a task does it), or give the one already under way."""
    with transaction.atomic():
        active = (
            VerificationRun.objects.select_for_update()
            .filter(Q(status=VerificationRun.Status.QUEUED) | Q(status=VerificationRun.Status.RUNNING))
            .exclude(status=VerificationRun.Status.RUNNING, progressed_at__lt=_stale_before())
            .order_by("-id")
            .first()
        )
        if active is not None:
            return active
        run = VerificationRun.objects.create(requested_by=actor)
        audit_record(actor=actor, action="audit.verification_requested", obj=run)
        enqueue_on_commit("apps.audit.tasks.verify_trail", run.pk, task_id=f"audit-verification-{run.pk}")
    return run


def verification_run(*, run_id: int) -> bool:
    """Claim the run (compare-and-set) and verify the trail, keeping progress on the run.

    False when another task has it (queued -> running lost, or running and not stalled): a redelivered
    task does not run the same verification twice at once.
    """
    now = timezone.now()
    Status = VerificationRun.Status
    claimed = (
        VerificationRun.objects.filter(pk=run_id)
        .filter(Q(status=Status.QUEUED) | Q(status=Status.RUNNING, progressed_at__lt=_stale_before()))
        .update(status=Status.RUNNING, started_at=now, progressed_at=now, claims=F("claims") + 1, checked=0)
    )
    if not claimed:
        return False
    runs = VerificationRun.objects.filter(pk=run_id, status=Status.RUNNING)
    runs.update(total=AuditEvent.objects.count())

    def progress(checked: int) -> None:
        runs.update(checked=checked, progressed_at=timezone.now())

    try:
        result = audit_verify(progress=progress, progress_every=PROGRESS_EVERY)
    except Exception as exc:
        runs.update(status=Status.FAILED, finished_at=timezone.now(), message=f"{type(exc).__name__}: {exc}")
        raise
    runs.update(
        status=Status.INTACT if result.intact else Status.BROKEN,
        finished_at=timezone.now(),
        progressed_at=timezone.now(),
        checked=result.checked,
        broken_event_id=result.broken,
        head_id=result.head_id,
        checkpoint_event_id=result.checkpoint["event_id"] if result.checkpoint else None,
        message=result.problem,
    )
    return True
