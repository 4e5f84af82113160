"""Writing the audit trail. Every app calls `audit_record` inside the transaction of its action."""

import json

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from . import chain
from .models import AuditEvent

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


def audit_verify(*, batch_size: int = 10_000) -> tuple[int | None, int]:
    """Check the whole chain; return (id of the first broken event or None, events checked)."""
    values = AuditEvent.objects.order_by("id").values("id", "prev_hash", "hash", *chain.FIELDS)
    return chain.first_break(values.iterator(chunk_size=batch_size))
