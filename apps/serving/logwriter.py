"""The prediction log writer: Redis streams -> the database, in batches, acknowledged after the commit.

A consumer group keeps what each writer has read and not acknowledged; a writer killed mid-batch
leaves its entries pending, and the next writer claims them (XAUTOCLAIM) once they have been idle
for `claim_idle_ms`. The insert is idempotent on request_id, so an entry written but not yet
acknowledged when the writer died is not written twice (the replayed entry carries the same
request_id and created_at, the log's unique key). Breaker events go the same way (a transition row,
an audit event and the on-call alerts, idempotent on the entry id). Old logs are dropped by the
`logs_maintain` beat task, not here.
"""

import logging
import os
import socket

import redis

from . import services
from .hotpath import EVENT_STREAM, LOG_STREAM

log = logging.getLogger(__name__)

GROUP = "hafnium-log-writer"


class LogWriter:
    def __init__(self, client: redis.Redis, *, consumer: str | None = None, batch: int = 1000,
                 block_ms: int = 1000, claim_idle_ms: int = 60_000):  # fmt: skip
        self.client = client
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.batch, self.block_ms, self.claim_idle_ms = batch, block_ms, claim_idle_ms
        self.ensure_groups()

    def ensure_groups(self) -> None:
        for stream in (LOG_STREAM, EVENT_STREAM):
            try:
                self.client.xgroup_create(stream, GROUP, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def _claim(self, stream: str) -> list:
        """Entries a dead writer read and never acknowledged."""
        _, entries, *_ = self.client.xautoclaim(
            stream, GROUP, self.consumer, min_idle_time=self.claim_idle_ms, start_id="0-0", count=self.batch
        )
        return [(entry_id, fields) for entry_id, fields in entries if fields]

    def _read(self, stream: str, block_ms: int | None) -> list:
        # "0": what this consumer already holds (a restart under the same name); then new entries.
        for start in ("0", ">"):
            found = self.client.xreadgroup(
                GROUP, self.consumer, {stream: start}, count=self.batch,
                block=block_ms if start == ">" else None,
            )  # fmt: skip
            entries = [
                (entry_id, fields) for _, batch in (found or []) for entry_id, fields in batch if fields
            ]
            if entries:
                return entries
        return []

    def _ack(self, stream: str, ids: list) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.xack(stream, GROUP, *ids)
        pipe.xdel(stream, *ids)  # what is left in the stream is the backlog
        pipe.execute()

    def step(self, *, wait: bool = True) -> int:
        """One batch of each stream (waiting up to block_ms for new logs); returns how many were written."""
        written = 0
        events = self._claim(EVENT_STREAM) or self._read(EVENT_STREAM, None)
        if events:
            for entry_id, fields in events:
                event_id = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                services.breaker_event_record(event_id=event_id, fields=fields)
            self._ack(EVENT_STREAM, [entry_id for entry_id, _ in events])
        entries = self._claim(LOG_STREAM) or self._read(LOG_STREAM, self.block_ms if wait else None)
        if entries:
            written = services.logs_write([fields for _, fields in entries])
            self._ack(LOG_STREAM, [entry_id for entry_id, _ in entries])
        return written

    def backlog(self) -> int:
        return int(self.client.xlen(LOG_STREAM))
