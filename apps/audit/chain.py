"""The hash chain of the audit trail, as plain functions (no Django): canonical form, hash, verification."""

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime

GENESIS = "0" * 64
FIELDS = ("at", "actor_id", "actor", "action", "object_type", "object_id", "object_repr", "before", "after")
# What an export holds of each event: everything its hash covers, and the hashes, to re-verify it.
EXPORTED = ("id", *FIELDS, "prev_hash", "hash")


def canonical(event: dict) -> bytes:
    """The event's fields as canonical JSON: sorted keys, no spaces, times in UTC ISO 8601."""
    body = {name: event[name] for name in FIELDS}
    at = body["at"]
    if isinstance(at, datetime):
        body["at"] = at.astimezone(UTC).isoformat(timespec="microseconds")
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_hash(prev_hash: str, event: dict) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical(event)).hexdigest()


def first_break(events: Iterable[dict]) -> tuple[int | None, int]:
    """Walk events in chain order; return (id of the first broken event or None, events checked)."""
    previous, checked = GENESIS, 0
    for event in events:
        checked += 1
        if event["prev_hash"] != previous or event_hash(previous, event) != event["hash"]:
            return event["id"], checked
        previous = event["hash"]
    return None, checked
