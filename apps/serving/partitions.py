"""Daily partitions of the prediction log on PostgreSQL: created ahead, created on demand, dropped whole.

One partition per UTC day, named `serving_predictionlog_pYYYYMMDD`. The `serving.logs_maintain` beat
task creates today's and the next SERVING_LOG_PARTITIONS_AHEAD days' partitions and drops the ones
wholly older than the retention (dropping a table is instant and leaves no dead rows to vacuum,
where a DELETE of a day's millions of rows is neither).

An entry whose day has no partition (the beat stopped for longer than the days created ahead, a
clock far off, an old entry replayed) is not lost: the insert fails with "no partition found", the
writer creates the partitions of the batch's days (`partitions_ensure`) and inserts again. This was
chosen over a DEFAULT partition: rows caught by a default partition would have to be moved out
before their day's partition could be created (PostgreSQL refuses to create a partition whose range
holds rows of the default one), which is a copy under a lock on the busiest table; creating a small
empty table when a day is first seen costs one statement, and the beat makes it rare.

All DDL is serialized by one transaction-level advisory lock, so two writers or a writer and the beat
creating the same day do not collide.
"""

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta

from django.db import connection, transaction

PARENT = "serving_predictionlog"
_NAME = re.compile(rf"^{PARENT}_p(\d{{8}})$")
# Any constant shared by the processes that change the partitions (pg_advisory_xact_lock's key).
_LOCK = 0x5E71_0106


def name_of(day: date) -> str:
    return f"{PARENT}_p{day:%Y%m%d}"


def _start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def partitioned() -> bool:
    return connection.vendor == "postgresql"


def partitions_list() -> list[date]:
    """The days that have a partition, oldest first."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT child.relname FROM pg_inherits
            JOIN pg_class parent ON parent.oid = pg_inherits.inhparent
            JOIN pg_class child ON child.oid = pg_inherits.inhrelid
            WHERE parent.relname = %s
            """,
            [PARENT],
        )
        names = [row[0] for row in cursor.fetchall()]
    days = [datetime.strptime(match.group(1), "%Y%m%d").date() for match in map(_NAME.match, names) if match]
    return sorted(days)


@transaction.atomic
def partitions_ensure(days: Iterable[date]) -> list[date]:
    """Create the partitions of these days that do not exist yet; returns the days created."""
    wanted = set(days)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK])
        created = sorted(wanted - set(partitions_list()))
        for day in created:
            cursor.execute(
                f"CREATE TABLE {name_of(day)} PARTITION OF {PARENT} FOR VALUES FROM (%s) TO (%s)",
                [_start(day), _start(day + timedelta(days=1))],
            )
    return created


@transaction.atomic
def partitions_drop_before(day: date) -> list[date]:
    """Drop the partitions of the days before `day` (their rows go with them); returns the days dropped."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK])
        dropped = [old for old in partitions_list() if old < day]
        for old in dropped:
            cursor.execute(f"DROP TABLE {name_of(old)}")
    return dropped


def is_missing_partition(error: Exception) -> bool:
    """Whether an insert failed because a row's day has no partition (SQLSTATE 23514, "no partition")."""
    cause = getattr(error, "__cause__", None) or error
    return getattr(cause, "sqlstate", None) == "23514" and "no partition" in str(cause)
