"""The hash chain of the audit trail, as plain functions (no Django): canonical form, hash, verification."""

import hashlib
import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from json.encoder import c_make_encoder, encode_basestring
from typing import NamedTuple

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


def first_break(events: Iterable[dict], start: str = GENESIS) -> tuple[int | None, int]:
    """Walk events (dicts) in chain order from the hash `start`; return (id of the first broken event
    or None, events checked)."""
    previous, checked = start, 0
    for event in events:
        checked += 1
        if event["prev_hash"] != previous or event_hash(previous, event) != event["hash"]:
            return event["id"], checked
        previous = event["hash"]
    return None, checked


def event_from_export(cells: dict[str, str]) -> dict:
    """An event as `canonical` reads it, from the text cells of a CSV export (already un-escaped)."""
    return {
        **cells,
        "id": int(cells["id"]),
        "actor_id": int(cells["actor_id"]) if cells["actor_id"] else None,
        "before": json.loads(cells["before"]),
        "after": json.loads(cells["after"]),
    }


# --- the fast walk: rows as the database gives them, no per-row dict -------------------------------

# What `walk` reads of each event, in this order, as the database gives it: the time as text (see
# `utc_iso`), before/after as their stored JSON text (or None). No dict, datetime or JSON object is
# built per event beyond what the canonical form needs.
ROW = ("id", "at", "actor_id", "actor", "action", "object_type", "object_id", "object_repr")
ROW += ("before", "after", "prev_hash", "hash")

_encode = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
# The C encoder and scanner behind json.dumps/json.loads, built once instead of once per call (which
# is half their cost on small values). Same output: the equivalence is tested on awkward values.
_c_encoder = c_make_encoder and c_make_encoder(
    None, None, encode_basestring, None, ":", ",", True, False, True
)
_scan = json.JSONDecoder().scan_once


def utc_iso(text: str) -> str:
    """A stored time as `canonical` writes it, from the database's text of it.

    PostgreSQL's query gives the canonical text already; SQLite keeps naive UTC as
    "YYYY-MM-DD HH:MM:SS[.ffffff]" (Django writes it so); anything else goes through datetime parsing.
    """
    size = len(text)
    if size == 32 and text[10] == "T" and text[26:] == "+00:00":
        return text
    if size == 26 and text[19] == "." and text[10] == " ":
        return f"{text[:10]}T{text[11:]}+00:00"
    if size == 19 and text[10] == " ":
        return f"{text[:10]}T{text[11:]}.000000+00:00"
    at = datetime.fromisoformat(text)
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return at.isoformat(timespec="microseconds")


def _json_text(stored: str | None) -> str:
    """Stored JSON text in canonical form (sorted keys, no spaces, non-ASCII as is)."""
    if stored is None:
        return "null"
    try:
        value, end = _scan(stored, 0)
    except StopIteration:
        end = -1
    if end != len(stored):  # surrounding whitespace, or not JSON at all: the strict way (which raises)
        value = json.loads(stored)
    return "".join(_c_encoder(value, 0)) if _c_encoder else _encode(value)


def canonical_row(row: tuple) -> bytes:
    """`canonical` of a row in `ROW` order, built as text: equal byte for byte (tests compare them)."""
    _, at, actor_id, actor, action, object_type, object_id, object_repr, before, after = row[:10]
    # The keys in sorted order, as json.dumps(sort_keys=True) writes them.
    return (
        f'{{"action":{encode_basestring(action)},"actor":{encode_basestring(actor)},'
        f'"actor_id":{"null" if actor_id is None else int(actor_id)},"after":{_json_text(after)},'
        f'"at":"{utc_iso(at)}","before":{_json_text(before)},"object_id":{encode_basestring(object_id)},'
        f'"object_repr":{encode_basestring(object_repr)},"object_type":{encode_basestring(object_type)}}}'
    ).encode()


class Walk(NamedTuple):
    """What a walk along the chain found."""

    broken: int | None  # id of the first event whose hash or link is wrong
    checked: int  # events checked (up to and including the broken one)
    head_id: int | None  # the last event walked (None: no events)
    head_hash: str
    mark_hash: str | None  # the hash of the event with id `mark`, when it was walked


def walk(
    rows: Iterable[tuple],
    *,
    start: str = GENESIS,
    mark: int | None = None,
    progress: Callable[[int], None] | None = None,
    every: int = 50_000,
) -> Walk:
    """Walk rows (in `ROW` order, chain order) from the hash `start`; stop at the first broken event.

    `mark`: an event id whose hash to report (a checkpoint's); `progress(checked)` is called every
    `every` events.
    """
    previous, checked, head_id, mark_hash = start, 0, None, None
    sha256 = hashlib.sha256
    for row in rows:
        checked += 1
        stored_prev, stored = row[10], row[11]
        if (
            stored_prev != previous
            or sha256(f"{previous}\n".encode() + canonical_row(row)).hexdigest() != stored
        ):
            return Walk(row[0], checked, head_id, previous, mark_hash)
        previous, head_id = stored, row[0]
        if head_id == mark:
            mark_hash = stored
        if progress is not None and checked % every == 0:
            progress(checked)
    return Walk(None, checked, head_id, previous, mark_hash)
