"""What an SLO evaluation tick costs: 30 days of one model's prediction logs aggregated per minute every
minute, against the per-minute roll-up the tick keeps (apps/monitoring/services/slo.py).

    DATABASE_URL=postgres://... python bench/bench_slo.py [--rows 1000000] [--quick]

Fills serving_predictionlog with `rows` synthetic requests spread over 30 days (0.05% errors, 0.5%
slower than 100 ms) for a throwaway model on a database you name (it must be migrated; what the bench
adds is deleted at the end). Then, side by side:
  - direct: the per-minute GROUP BY over the whole 30 days of logs, and the SLO report from it;
  - roll-up: the tick in its steady state, after one minute of new traffic: re-aggregate the new
    minutes, read the 43,200 minutes of the roll-up, the SLO report.
The bench fails (exit 1) if the two reports disagree; the one-off backfill of the roll-up is shown too.
"""

import argparse
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hafnium_portal.settings")
os.environ.setdefault("DJANGO_DEBUG", "true")

import django

django.setup()

import numpy as np  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from apps.monitoring import slo  # noqa: E402
from apps.monitoring.models import SLOMinute, SLOStatus, SLOTick  # noqa: E402
from apps.monitoring.selectors_slo import floor_minute, log_minutes, slo_buckets  # noqa: E402
from apps.monitoring.services.slo import slo_rollup  # noqa: E402
from apps.registry.models import RegisteredModel  # noqa: E402
from apps.serving.models import PredictionLog  # noqa: E402
from tests.monitoring.slo_fixtures import days_ensure  # noqa: E402

INSERT = """
INSERT INTO serving_predictionlog (request_id, transaction_id, entity_id, model_id, version, numeric_features,
    categorical_features, score, decision, fallback, latency_ms, status, created_at, environment)
SELECT 'bench-slo-' || %s || '-' || i, 't-' || i, 'c', %s, 1, ARRAY[1.0], ARRAY['pos'], 0.1, 'approve',
       (i %% 2000 = 0), CASE WHEN i %% 200 = 1 THEN 250.0 ELSE 12.0 END,
       CASE WHEN i %% 2000 = 0 THEN 'error' ELSE 'ok' END,
       %s - (i::float8 / %s * %s || ' seconds')::interval, 'production'
FROM generate_series(1, %s) AS i
"""


def fill(model, *, rows: int, end, seconds: float, tag: str) -> None:
    days_ensure(*(end - timedelta(days=day) for day in range(int(seconds // 86400) + 2)))
    with connection.cursor() as cursor:
        cursor.execute(INSERT, [tag, model.pk, end, rows, seconds, rows])


def direct_report(model, now) -> slo.SLOReport:
    """Without the roll-up: aggregate the 30 days of logs per minute, then the same arithmetic."""
    end = floor_minute(now) + timedelta(minutes=1)
    start = end - timedelta(minutes=slo.SLO_WINDOW_MINUTES)
    total, errors, slow = (np.zeros(slo.SLO_WINDOW_MINUTES, dtype=np.int64) for _ in range(3))
    for row in log_minutes(model, since=start, until=end, slow_ms=100.0):
        index = int((row["at"] - start).total_seconds() // 60)
        total[index], errors[index], slow[index] = row["requests"], row["errors"], row["slow"]
    return slo.slo_report(total, errors, slow)


def rollup_report(model, now) -> slo.SLOReport:
    slo_rollup(now=now)
    buckets = slo_buckets(model, now=now)
    return slo.slo_report(buckets.total, buckets.errors, buckets.slow)


def timed(action):
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="200,000 rows")
    args = parser.parse_args()
    rows = 200_000 if args.quick else args.rows
    if connection.vendor != "postgresql":
        print("bench_slo: set DATABASE_URL to a migrated PostgreSQL database; skipped")
        return 0
    model, _ = RegisteredModel.objects.get_or_create(name="bench-slo")
    now = timezone.now()
    month = slo.SLO_WINDOW_MINUTES * 60.0
    tick = SLOTick.objects.filter(pk=1).first()
    try:
        seconds, _ = timed(lambda: fill(model, rows=rows, end=now - timedelta(minutes=1), seconds=month - 120,
                                        tag="month"))  # fmt: skip
        print(f"{rows:,} requests over 30 days inserted in {seconds:.1f} s")
        backfill, _ = timed(lambda: rollup_report(model, now))
        minutes = SLOMinute.objects.filter(model=model).count()
        print(f"roll-up, one-off backfill of 30 days: {backfill:.2f} s ({minutes:,} minutes)")
        # One more minute of traffic at the month's rate, then a tick.
        per_minute = max(1, rows // slo.SLO_WINDOW_MINUTES)
        fill(model, rows=per_minute, end=now + timedelta(seconds=50), seconds=40, tag="minute")
        later = now + timedelta(minutes=1)
        direct_seconds, direct = timed(lambda: direct_report(model, later))
        rollup_seconds, rolled = timed(lambda: rollup_report(model, later))
        print(f"direct, 30 days of logs per minute:   {direct_seconds:.3f} s")
        print(f"roll-up, steady-state tick:            {rollup_seconds:.3f} s")
        print(f"ratio direct / roll-up: {direct_seconds / rollup_seconds:.1f}x")
        same = (direct.requests, direct.errors, direct.slow) == (rolled.requests, rolled.errors, rolled.slow)
        counts = f"{rolled.requests:,} requests, {rolled.errors:,} errors, {rolled.slow:,} slow"
        print(f"reports agree: {same} ({counts})")
        return 0 if same else 1
    finally:
        PredictionLog.objects.filter(model=model).delete()
        SLOMinute.objects.filter(model=model).delete()
        SLOStatus.objects.filter(model=model).delete()
        if tick is None:
            SLOTick.objects.filter(pk=1).delete()
        else:  # leave the watermark as the portal had it
            SLOTick.objects.filter(pk=1).update(minute=tick.minute, last_log_id=tick.last_log_id)
        model.delete()


if __name__ == "__main__":
    sys.exit(main())
