"""Signed checkpoints of the audit chain's head, kept outside the portal's database.

The hash chain shows an edited or deleted event, but not the newest events deleted all together: the
chain that is left still verifies. A checkpoint records the head (event id and hash) signed with
HMAC-SHA256 under a key the database does not hold (AUDIT_CHECKPOINT_KEY, or a key file under var/ in
the embedded default). It is appended as one JSON line to `checkpoints.jsonl` in AUDIT_CHECKPOINT_DIR
(var/audit-checkpoints by default; in production a volume the database's administrators cannot write)
and, when AUDIT_CHECKPOINT_WEBHOOK_URL is set, also POSTed there (body signed in X-Hafnium-Signature).
Verification then compares the trail with the latest checkpoint: a head below it means the tail was
cut; a different hash at its event means the trail was rewritten up to there.
"""

import hashlib
import hmac
import json
import logging
import os
import secrets
from pathlib import Path

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

log = logging.getLogger(__name__)

FILE_NAME = "checkpoints.jsonl"
SIGNED = ("event_id", "hash", "written_at")
WEBHOOK_TIMEOUT_SECONDS = 10


class CheckpointError(Exception):
    """A checkpoint cannot be read, or its signature is wrong."""


def _key() -> bytes:
    key = settings.AUDIT_CHECKPOINT_KEY
    if key:
        return key.encode()
    # Embedded default: a random key kept under var/, created on first use (like the dev secret key).
    path = Path(settings.AUDIT_CHECKPOINT_KEY_FILE)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first
            pass
        else:
            with os.fdopen(descriptor, "w") as out:
                out.write(secrets.token_urlsafe(48))
    key = path.read_text().strip()
    if not key:
        raise ImproperlyConfigured(f"{path} is empty: set AUDIT_CHECKPOINT_KEY or remove the file")
    return key.encode()


def _signed_body(checkpoint: dict) -> bytes:
    return json.dumps(
        {name: checkpoint[name] for name in SIGNED}, sort_keys=True, separators=(",", ":")
    ).encode()


def sign(checkpoint: dict) -> dict:
    """The checkpoint with its `signature` (hex HMAC-SHA256 of its signed fields as canonical JSON)."""
    signature = hmac.new(_key(), _signed_body(checkpoint), hashlib.sha256).hexdigest()
    return {**{name: checkpoint[name] for name in SIGNED}, "signature": signature}


def check_signature(checkpoint: dict) -> None:
    """Raise CheckpointError unless the checkpoint is well formed and signed with our key."""
    try:
        if not isinstance(checkpoint["event_id"], int) or not isinstance(checkpoint["hash"], str):
            raise TypeError("event_id must be an integer and hash a string")
        expected = hmac.new(_key(), _signed_body(checkpoint), hashlib.sha256).hexdigest()
        given = checkpoint["signature"]
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f"the checkpoint is malformed ({exc})") from exc
    if not isinstance(given, str) or not hmac.compare_digest(expected, given):
        raise CheckpointError(
            f"the checkpoint of event #{checkpoint['event_id']} written at {checkpoint['written_at']} "
            "has a bad signature: it was not written with the portal's checkpoint key (forged or altered)"
        )


def parse(line: str) -> dict:
    try:
        checkpoint = json.loads(line)
    except ValueError as exc:
        raise CheckpointError(f"the checkpoint is not JSON ({exc})") from exc
    if not isinstance(checkpoint, dict):
        raise CheckpointError("the checkpoint is not a JSON object")
    check_signature(checkpoint)
    return checkpoint


# --- sinks -------------------------------------------------------------------------------------


class DirectorySink:
    """`checkpoints.jsonl` in a folder: one JSON line per checkpoint, only ever appended to."""

    def __init__(self, folder: str | Path):
        self.path = Path(folder) / FILE_NAME

    def __str__(self) -> str:
        return str(self.path)

    def append(self, checkpoint: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(checkpoint, sort_keys=True) + "\n").encode()
        # O_APPEND: one write per line, so two writers never interleave within a line.
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(descriptor, line)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def latest_line(self) -> str | None:
        """The last line written (read from the end: the file grows by a line every few minutes)."""
        if not self.path.exists():
            return None
        with self.path.open("rb") as stream:
            stream.seek(0, os.SEEK_END)
            size = stream.tell()
            block = min(size, 64 * 1024)
            stream.seek(size - block)
            lines = [
                line for line in stream.read(block).decode(errors="replace").splitlines() if line.strip()
            ]
        return lines[-1] if lines else None


class WebhookSink:
    """A POST of each checkpoint to a system of record outside the portal, signed like governance's."""

    def __init__(self, url: str):
        self.url = url

    def __str__(self) -> str:
        return self.url

    def append(self, checkpoint: dict) -> None:
        body = json.dumps({"event": "audit.checkpoint", "checkpoint": checkpoint}, sort_keys=True).encode()
        signature = "sha256=" + hmac.new(_key(), body, hashlib.sha256).hexdigest()
        response = requests.post(
            self.url,
            data=body,
            headers={"Content-Type": "application/json", "X-Hafnium-Signature": signature},
            timeout=WEBHOOK_TIMEOUT_SECONDS,
        )
        response.raise_for_status()


def sinks() -> list:
    """Where checkpoints go, by settings: the folder always (verification reads it), the webhook if set."""
    chosen = [DirectorySink(settings.AUDIT_CHECKPOINT_DIR)]
    if settings.AUDIT_CHECKPOINT_WEBHOOK_URL:
        chosen.append(WebhookSink(settings.AUDIT_CHECKPOINT_WEBHOOK_URL))
    return chosen


def latest() -> dict | None:
    """The latest checkpoint of the folder, its signature checked (CheckpointError otherwise)."""
    line = DirectorySink(settings.AUDIT_CHECKPOINT_DIR).latest_line()
    return None if line is None else parse(line)
