"""The prediction log's days: daily partitions on PostgreSQL (made ahead, on demand, dropped whole),
rows deleted past the retention on SQLite, and a replayed entry never written twice."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.registry.models import RegisteredModel
from apps.serving import hotpath, partitions, services, tasks
from apps.serving.logwriter import GROUP, LogWriter
from apps.serving.models import PredictionLog

from .conftest import serving_reset
from .test_log_reads import entry

postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="partitions are PostgreSQL's; SQLite keeps a plain table"
)


def today():
    return timezone.now().astimezone(UTC).date()


def noon(day) -> datetime:
    return datetime(day.year, day.month, day.day, 12, tzinfo=UTC)


def commit_like() -> None:
    """The test's rows are written in its own transaction: check their deferred foreign keys now, as a
    commit would (PostgreSQL refuses to drop a table with pending checks)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


@pytest.fixture
def model(db):
    return RegisteredModel.objects.create(name="partitioned")


@postgresql_only
@pytest.mark.django_db
def test_the_log_is_a_partitioned_table_with_days_made_ahead():
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE relname = 'serving_predictionlog'")
        assert cursor.fetchone() == ("p",)
    days = partitions.partitions_list()
    assert {today() + timedelta(days=ahead) for ahead in range(8)} <= set(days), "made by the migration"

    done = services.logs_maintain(days_ahead=10, retention_days=90)
    assert done["created"] == [today() + timedelta(days=ahead) for ahead in (8, 9, 10)]
    assert services.logs_maintain(days_ahead=10, retention_days=90) == {"created": [], "dropped": []}


@postgresql_only
def test_an_entry_of_a_day_without_a_partition_is_not_lost(model):
    far = today() + timedelta(days=40)
    assert far not in partitions.partitions_list()
    batch = [
        entry(model, at=noon(far), transaction="far"),
        entry(model, at=timezone.now(), transaction="now"),
    ]
    assert services.logs_write(batch) == 2
    assert far in partitions.partitions_list()
    assert set(PredictionLog.objects.values_list("transaction_id", flat=True)) == {"far", "now"}
    with connection.cursor() as cursor:  # the row is in its day's partition
        cursor.execute("SELECT transaction_id FROM " + partitions.name_of(far))  # noqa: S608 (a date's name)
        assert cursor.fetchall() == [("far",)]


@postgresql_only
def test_old_days_are_dropped_as_partitions_recent_ones_kept(model):
    old, recent = today() - timedelta(days=95), today() - timedelta(days=89)
    services.logs_write(
        [entry(model, at=noon(old), transaction="old"), entry(model, at=noon(recent), transaction="recent")]
    )
    commit_like()
    done = services.logs_maintain(days_ahead=0, retention_days=90)
    assert old in done["dropped"]
    assert recent not in done["dropped"]
    days = partitions.partitions_list()
    assert old not in days
    assert recent in days
    assert list(PredictionLog.objects.values_list("transaction_id", flat=True)) == ["recent"]


@pytest.mark.django_db
def test_the_beat_task_keeps_the_retention_on_any_database(model, settings):
    settings.SERVING_LOG_RETENTION_DAYS = 30
    settings.SERVING_LOG_PARTITIONS_AHEAD = 2
    services.logs_write(
        [
            entry(model, at=timezone.now() - timedelta(days=40), transaction="old"),
            entry(model, at=timezone.now() - timedelta(days=2), transaction="kept"),
        ]
    )
    commit_like()
    done = tasks.logs_maintain()
    assert list(PredictionLog.objects.values_list("transaction_id", flat=True)) == ["kept"]
    if connection.vendor == "postgresql":
        assert str(today() - timedelta(days=40)) in done["dropped"]
    else:
        assert done == {"deleted": 1}


@pytest.mark.django_db
def test_the_same_entries_written_twice_are_one_row_each(model):
    batch = [entry(model, at=noon(today() - timedelta(days=day)), transaction=f"t-{day}") for day in range(3)]
    assert services.logs_write(batch) == 3
    services.logs_write([*batch, entry(model, at=timezone.now(), transaction="new")])
    written = sorted(PredictionLog.objects.values_list("transaction_id", flat=True))
    assert written == ["new", "t-0", "t-1", "t-2"]


@pytest.mark.django_db(transaction=True)
def test_a_batch_written_but_not_acknowledged_is_replayed_without_duplicates():
    """The crash between the commit and the XACK: the next writer claims the entries and writes them again."""
    serving_reset()
    model = RegisteredModel.objects.create(name="replayed")
    client = hotpath.redis_client()
    sent = [
        entry(model, at=timezone.now() - timedelta(days=index % 2, seconds=index), transaction=f"r-{index}")
        for index in range(50)
    ]
    for fields in sent:
        client.xadd(hotpath.LOG_STREAM, fields)
    crashed = LogWriter(client, consumer="crashed", batch=100)
    held = crashed._read(hotpath.LOG_STREAM, None)
    assert services.logs_write([fields for _, fields in held]) == 50  # committed, never acknowledged
    assert client.xpending(hotpath.LOG_STREAM, GROUP)["pending"] == 50

    LogWriter(client, consumer="next", batch=100, claim_idle_ms=0).step(wait=False)

    logs = PredictionLog.objects.filter(model=model)
    assert logs.count() == 50
    assert logs.values("request_id").distinct().count() == 50
    assert client.xpending(hotpath.LOG_STREAM, GROUP)["pending"] == 0
    PredictionLog.objects.filter(model=model).delete()
    serving_reset()
