"""Prediction log rows for the SLO tests, written straight to PostgreSQL (serving tests the log writer)."""

import uuid
from datetime import UTC, datetime, timedelta

from apps.serving.models import PredictionLog

try:  # serving's daily partitions of the log (branch wt-serving-logs): a day needs its partition first
    from apps.serving.partitions import partitioned, partitions_ensure
except ImportError:  # a plain table: nothing to prepare (the integrator drops this once both are in)
    partitioned = partitions_ensure = None


def days_ensure(*moments: datetime) -> None:
    """The log partitions of these moments' days, where the log is partitioned."""
    if partitioned is not None and partitioned():
        partitions_ensure({moment.astimezone(UTC).date() for moment in moments})


# "Now" of the SLO tests: half a minute into 12:00, so the minute of 12:00 is the last (still filling) bucket.
NOW = datetime(2026, 12, 3, 12, 0, 30, tzinfo=UTC)
MINUTE = NOW.replace(second=0)


def logs(model, *, at: datetime, requests: int, errors: int = 0, slow: int = 0, latency: float = 10.0,
         slow_latency: float = 250.0, version: int = 1, environment: str = "production") -> None:  # fmt: skip
    """`requests` rows at `at`: the first `errors` failed (status "error", answered by the rules), the next
    `slow` answered in `slow_latency` ms, the rest in `latency` ms."""
    days_ensure(at)
    rows = []
    for index in range(requests):
        failed = index < errors
        rows.append(
            PredictionLog(
                request_id=uuid.uuid4().hex,
                transaction_id=uuid.uuid4().hex,
                model=model,
                version=version,
                numeric_features=[1.0],
                categorical_features=["grocery"],
                score=0.1,
                decision="approve",
                fallback=failed,
                latency_ms=slow_latency if errors <= index < errors + slow else latency,
                status=PredictionLog.Status.ERROR if failed else PredictionLog.Status.OK,
                created_at=at,
                environment=environment,
            )
        )
    PredictionLog.objects.bulk_create(rows, batch_size=5000)


def every_minute(model, *, minutes: int, end: datetime = MINUTE, **kwargs) -> None:
    """The same traffic in each of the `minutes` minutes ending with the minute of `end` (10 s into each)."""
    for back in range(minutes):
        logs(model, at=end - timedelta(minutes=back) + timedelta(seconds=10), **kwargs)
