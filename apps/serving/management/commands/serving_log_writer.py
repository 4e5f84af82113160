import signal
import time

import redis
from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections

from apps.serving.logwriter import LogWriter


class Command(BaseCommand):
    help = (
        "Write the prediction logs (and breaker events) from their Redis streams to the database, in "
        "batches acknowledged after the commit. Runs until stopped (SIGTERM finishes the batch)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch", type=int, default=1000, help="entries per insert")
        parser.add_argument("--consumer", default=None, help="consumer name (default: host-pid)")
        parser.add_argument(
            "--claim-idle-ms", type=int, default=60_000,
            help="take over entries another writer read and left unacknowledged this long",
        )  # fmt: skip
        parser.add_argument("--once", action="store_true", help="write what is there, then stop")
        parser.add_argument(
            "--linger-ms", type=int, default=200,
            help="after a batch smaller than --batch, wait this long for more entries (default 200)",
        )  # fmt: skip

    def handle(self, *args, batch, consumer, claim_idle_ms, once, linger_ms, **options):
        stopping = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=5, socket_timeout=10)
        writer = None
        self.stdout.write(f"serving_log_writer: batches of {batch} from {settings.REDIS_URL.split('@')[-1]}")
        total, reported = 0, time.monotonic()
        while not stopping:
            try:
                writer = writer or LogWriter(
                    client, consumer=consumer, batch=batch, claim_idle_ms=claim_idle_ms
                )
                written = writer.step(wait=not once)
                total += written
                if total and (once or time.monotonic() - reported >= 10):
                    self.stdout.write(f"wrote {total} prediction logs")
                    total, reported = 0, time.monotonic()
                if once and not written:
                    return
                if 0 < written < batch and not once:
                    # Each batch costs a transaction and a few Redis calls whatever its size: at a
                    # few hundred answers a second, a batch per answer took most of a core
                    # (bench_serving.py). Logs reach the database within about linger + one batch.
                    time.sleep(linger_ms / 1000)
            except redis.RedisError as exc:
                self.stderr.write(f"Redis unavailable ({exc}); retrying in 2 s")
                time.sleep(2)
            finally:
                close_old_connections()
