"""python manage.py simulate_traffic --model fraud-scorer --rps 20 --duration 60: play the Java backend.

Open loop: request i leaves at start + i / rps whatever the answers before it, as card transactions do,
and its latency counts from that scheduled time (a slow server is not hidden by sending less). The
transactions come from the synthetic generator (apps/training/synthetic.py), optionally shifted
(`--drift`, 0..1: the whole world shifts, as `synthetic.Shift.of_severity`), or drifted in named features
only (`--drift-features amount,ip_risk_score --drift 1`, see `synthetic.inject_drift`; "merchant_embedding"
drifts the embedding). Each item carries its merchant embedding (`"embedding"`, 16 numbers; logged, not
a model input) unless `--no-embedding`. `--fail-rate` sends that share of requests with a bad feature
(one missing, or a string for a number) that the service must refuse with a 4xx. Bounded: at most
MAX_REQUESTS requests and MAX_DURATION seconds, and only to a loopback address unless --allow-remote.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

MAX_RPS = 2_000
MAX_DURATION = 3_600
MAX_REQUESTS = 200_000
# The transactions are a random sample of a period at least this large, so that a short run holds many
# customers (as production does), not a few customers' whole histories: customer-level features such
# as the account's age would otherwise look drifted in a small window.
POOL_ROWS = 40_000


@dataclass
class Outcome:
    """What came back for the requests of one run."""

    scheduled: int = 0
    sent: int = 0
    ok: int = 0
    rejected: int = 0  # 4xx
    errors: int = 0  # 5xx, timeouts, refused connections
    bad_sent: int = 0
    bad_rejected: int = 0
    fallback: int = 0
    decisions: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def summary(self) -> dict:
        latencies = np.asarray(self.latencies_ms) if self.latencies_ms else None
        return {
            "scheduled": self.scheduled,
            "sent": self.sent,
            "not_sent": self.scheduled - self.sent,
            "ok": self.ok,
            "rejected": self.rejected,
            "errors": self.errors,
            "bad_sent": self.bad_sent,
            "bad_rejected": self.bad_rejected,
            "fallback": self.fallback,
            "decisions": dict(sorted(self.decisions.items())),
            "statuses": dict(sorted(self.statuses.items())),
            "p50_ms": round(float(np.percentile(latencies, 50)), 2) if latencies is not None else None,
            "p99_ms": round(float(np.percentile(latencies, 99)), 2) if latencies is not None else None,
            "achieved_rps": round(self.sent / self.elapsed, 1) if self.elapsed else 0.0,
            "elapsed_s": round(self.elapsed, 2),
        }


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name other than localhost is not resolved: refused


def build_requests(
    count: int,
    *,
    seed: int,
    drift: float,
    fail_rate: float,
    run: str,
    drift_features: list[str] | None = None,
    embedding: bool = True,
) -> list[tuple[bytes, bool]]:
    """(JSON body, deliberately bad?) of each request, in sending order."""
    from apps.training.synthetic import (
        CATEGORICAL_FEATURES,
        FEATURES,
        embedding_of,
        generate_transactions,
        inject_drift,
    )

    pool = max(count, POOL_ROWS)
    frame = generate_transactions(pool, seed=seed, shift=None if drift_features else (drift or None))
    if pool > count:
        picked = np.sort(np.random.default_rng(seed + 2).choice(pool, size=count, replace=False))
        frame = frame.iloc[picked].reset_index(drop=True)
    if drift_features:
        frame = inject_drift(frame, drift_features, drift, seed=seed + 3)
    vectors = embedding_of(frame).tolist() if embedding else None
    rng = np.random.default_rng(seed + 1)
    bad = rng.random(count) < fail_rate
    spoil = rng.integers(0, 2, count)
    columns = {name: frame[name].tolist() for name in FEATURES}
    for name in CATEGORICAL_FEATURES:
        columns[name] = [str(value) for value in columns[name]]
    customers = frame["customer_id"].tolist()
    bodies = []
    for i in range(count):
        features = {name: columns[name][i] for name in FEATURES}
        if bad[i]:
            if spoil[i] == 0:
                del features["amount"]
            else:
                features["amount"] = "a lot"
        body = {"transaction_id": f"sim-{run}-{i}", "entity_id": f"c-{customers[i]}", "features": features}
        if vectors is not None:
            body["embedding"] = vectors[i]
        bodies.append((json.dumps(body).encode(), bool(bad[i])))
    return bodies


class Command(BaseCommand):
    help = "Send synthetic card transactions to the scoring API at a fixed rate (open loop) and summarise."

    def add_arguments(self, parser):
        parser.add_argument("--model", required=True)
        parser.add_argument("--rps", type=float, required=True, help=f"requests per second (<= {MAX_RPS})")
        parser.add_argument("--duration", type=float, required=True, help=f"seconds (<= {MAX_DURATION})")
        parser.add_argument("--fail-rate", type=float, default=0.0, help="share of deliberately bad requests")
        parser.add_argument(
            "--drift", type=float, default=0.0, help="shift severity of the transactions, 0..1"
        )
        parser.add_argument(
            "--drift-features",
            default="",
            help="comma-separated features (or merchant_embedding) to drift by --drift, the others untouched",
        )
        parser.add_argument(
            "--no-embedding", action="store_true", help="send no merchant embedding with the transactions"
        )
        parser.add_argument(
            "--url", default=f"http://127.0.0.1:{os.environ.get('HAFNIUM_INFERENCE_PORT', '8001')}"
        )
        parser.add_argument("--token-file", default=str(Path(settings.VAR_DIR) / "scoring-token.txt"))
        parser.add_argument(
            "--token", default=None, help="the scoring client's token (instead of --token-file)"
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--concurrency", type=int, default=32, help="requests in flight at most")
        parser.add_argument("--timeout", type=float, default=5.0, help="seconds per request")
        parser.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --url")

    def handle(self, *args, **options):
        count, target, token, drift_features = self._validated(options)
        run = uuid.uuid4().hex[:8]
        self.stdout.write(
            f"Preparing {count} transactions for {options['model']} at {options['rps']:g} rps for "
            f"{options['duration']:g} s (fail rate {options['fail_rate']:g}, drift {options['drift']:g}"
            f"{' on ' + ', '.join(drift_features) if drift_features else ''})..."
        )
        bodies = build_requests(
            count,
            seed=options["seed"],
            drift=options["drift"],
            fail_rate=options["fail_rate"],
            run=run,
            drift_features=drift_features,
            embedding=not options["no_embedding"],
        )
        outcome = self._play(bodies, target, token, options)
        summary = outcome.summary()
        self.stdout.write(
            "sent {sent} of {scheduled}  ok {ok}  rejected {rejected}  errors {errors}  "
            "(bad sent {bad_sent}, rejected {bad_rejected})  fallback {fallback}  "
            "p50 {p50_ms} ms  p99 {p99_ms} ms  achieved {achieved_rps} rps".format(**summary)
        )
        self.stdout.write(f"decisions {summary['decisions']}  statuses {summary['statuses']}")
        self.stdout.write(json.dumps(summary))
        return None

    def _validated(self, options):
        if "\x00" in options["model"] or not options["model"]:
            raise CommandError("--model must be a model name")
        rps, duration = options["rps"], options["duration"]
        if not 0 < rps <= MAX_RPS:
            raise CommandError(f"--rps must be in (0, {MAX_RPS}], got {rps:g}")
        if not 0 < duration <= MAX_DURATION:
            raise CommandError(f"--duration must be in (0, {MAX_DURATION}] seconds, got {duration:g}")
        count = int(rps * duration)
        if count < 1:
            raise CommandError("--rps x --duration must give at least one request")
        if count > MAX_REQUESTS:
            raise CommandError(f"--rps x --duration is {count} requests; at most {MAX_REQUESTS}")
        for name in ("fail_rate", "drift"):
            if not 0.0 <= options[name] <= 1.0:
                raise CommandError(f"--{name.replace('_', '-')} must be in [0, 1], got {options[name]:g}")
        drift_features = [name.strip() for name in options["drift_features"].split(",") if name.strip()]
        from apps.training.synthetic import DRIFTABLE

        unknown = [name for name in drift_features if name not in DRIFTABLE]
        if unknown:
            raise CommandError(
                f"--drift-features: no feature {', '.join(unknown)}; choose among {', '.join(DRIFTABLE)}"
            )
        if drift_features and not options["drift"]:
            raise CommandError("--drift-features needs --drift (the severity, 0..1)")
        if options["concurrency"] < 1 or options["timeout"] <= 0:
            raise CommandError("--concurrency must be >= 1 and --timeout > 0")
        url = urlsplit(options["url"])
        if url.scheme not in ("http", "https") or not url.hostname:
            raise CommandError(f"--url must be an http(s) URL, got {options['url']!r}")
        if not options["allow_remote"] and not is_loopback(url.hostname):
            raise CommandError(
                f"--url {options['url']} is not a loopback address; pass --allow-remote to insist"
            )
        token = options["token"]
        if token is None:
            path = Path(options["token_file"])
            if not path.is_file():
                raise CommandError(
                    f"token file {path} does not exist (run `python manage.py create_scoring_client`)"
                )
            token = path.read_text().strip()
        if not token:
            raise CommandError("the scoring token is empty")
        target = (url, f"{url.path.rstrip('/')}/api/v1/models/{quote(options['model'], safe='')}/score")
        return count, target, token, drift_features

    def _play(self, bodies, target, token, options) -> Outcome:
        url, path = target
        timeout = options["timeout"]
        connection_class = (
            http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        )
        local = threading.local()
        outcome = Outcome()
        headers = {"Content-Type": "application/json", "Authorization": f"Token {token}"}

        def send(body: bytes, bad: bool, scheduled: float) -> None:
            with outcome.lock:
                outcome.sent += 1
            status, payload = None, None
            for attempt in range(2):  # a kept-alive connection the server closed: reconnect once
                connection = getattr(local, "connection", None)
                if connection is None:
                    connection = local.connection = connection_class(url.hostname, url.port, timeout=timeout)
                try:
                    connection.request("POST", path, body=body, headers=headers)
                    response = connection.getresponse()
                    payload = response.read()
                    status = response.status
                    break
                except (OSError, http.client.HTTPException):
                    connection.close()
                    local.connection = None
                    if attempt == 1 or time.monotonic() - scheduled > timeout:
                        break
            latency = (time.monotonic() - scheduled) * 1000
            with outcome.lock:
                key = str(status) if status is not None else "no answer"
                outcome.statuses[key] = outcome.statuses.get(key, 0) + 1
                outcome.bad_sent += bad
                if status is not None:
                    outcome.latencies_ms.append(latency)
                if status is not None and 200 <= status < 300:
                    outcome.ok += 1
                    _count_answer(outcome, payload)
                elif status is not None and 400 <= status < 500:
                    outcome.rejected += 1
                    outcome.bad_rejected += bad
                else:
                    outcome.errors += 1

        interval = 1.0 / options["rps"]
        pool = ThreadPoolExecutor(max_workers=options["concurrency"], thread_name_prefix="simulate")
        futures = []
        start = time.monotonic()
        for i, (body, bad) in enumerate(bodies):
            scheduled = start + i * interval
            delay = scheduled - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(send, body, bad, scheduled))
            outcome.scheduled += 1
        # The last requests get their timeout, no more; those still queued then (the server fell
        # behind by more than the concurrency allows) never leave, and are counted as not sent.
        wait(futures, timeout=timeout + 1.0)
        pool.shutdown(wait=True, cancel_futures=True)
        outcome.elapsed = time.monotonic() - start
        return outcome


def _count_answer(outcome: Outcome, payload: bytes) -> None:
    try:
        answer = json.loads(payload)
    except ValueError:
        return
    items = answer.get("items", [answer]) if isinstance(answer, dict) else []
    for item in items:
        if not isinstance(item, dict):
            continue
        outcome.fallback += bool(item.get("fallback"))
        decision = str(item.get("decision"))
        outcome.decisions[decision] = outcome.decisions.get(decision, 0) + 1
