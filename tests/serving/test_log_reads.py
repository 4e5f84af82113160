"""The log reads that rollouts and monitoring use, on rows whose answers are worked out by hand.

The window: model "reads" v1 answers once a minute from T0 with latencies 1..10 ms and scores
0.1..1.0 (the 9th answered by the rules, the 10th a model error), v2 twice (20 and 40 ms); rows just
outside the window, in staging and of another model must not count.
"""

import json
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.db import connection
from django.utils import timezone

from apps.registry.models import ModelVersion, RegisteredModel
from apps.serving import selectors, services
from apps.serving.models import Feedback, PredictionLog

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
UNTIL = T0 + timedelta(minutes=10)
SIGNATURE = {
    "inputs": json.dumps(
        [
            {"type": "double", "name": "amount", "required": True},
            {"type": "string", "name": "merchant", "required": True},
            {"type": "long", "name": "hour", "required": True},
        ]
    )
}


def entry(model, *, at: datetime, version: int = 1, latency: float = 1.0, score: float = 0.1,
          decision: str = "approve", status: str = "ok", transaction: str | None = None,
          environment: str | None = None, embedding=None, numeric=(10.0, 3.0),
          merchant: str = "grocery") -> dict:  # fmt: skip
    fields = {
        "request_id": uuid.uuid4().hex,
        "transaction_id": transaction or uuid.uuid4().hex,
        "entity_id": "c-1",
        "model_id": str(model.pk),
        "version": str(version),
        "numeric": json.dumps(list(numeric)),
        "categorical": json.dumps([merchant]),
        "score": repr(score),
        "decision": decision,
        "fallback": "0" if status == "ok" else "1",
        "latency_ms": str(latency),
        "status": status,
        "created_at": str(int(at.timestamp() * 1000)),
    }
    if environment is not None:
        fields["environment"] = environment
    if embedding is not None:
        fields["embedding"] = json.dumps(embedding) if embedding != "" else ""
    return fields


@pytest.fixture
def reads(db):
    model = RegisteredModel.objects.create(name="reads")
    other = RegisteredModel.objects.create(name="reads-other")
    for number in (1, 2):
        ModelVersion.objects.create(
            model=model, version=number, signature=SIGNATURE, registered_at=timezone.now()
        )
    entries = []
    for index in range(10):
        status = {8: "fallback", 9: "error"}.get(index, "ok")
        entries.append(
            entry(
                model, at=T0 + timedelta(minutes=index), latency=index + 1.0, score=(index + 1) / 10,
                decision="decline" if index >= 8 else "approve", status=status, transaction=f"t-{index}",
                embedding=[float(index), 1.0] if index % 2 == 0 else None,
                numeric=(float(index), 20.0 + index), merchant=f"m{index}",
            )
        )  # fmt: skip
    entries += [
        entry(model, at=T0 + timedelta(minutes=1, seconds=30), version=2, latency=20.0, score=0.2,
              environment="production", transaction="v2-a"),
        entry(model, at=T0 + timedelta(minutes=2, seconds=30), version=2, latency=40.0, score=0.4,
              decision="review", transaction="v2-b"),
        entry(model, at=UNTIL, latency=500.0, transaction="after"),  # until is excluded
        entry(model, at=T0 - timedelta(seconds=1), latency=500.0, transaction="before"),
        entry(model, at=T0 + timedelta(minutes=3), latency=7.0, environment="staging", transaction="staged"),
        entry(other, at=T0 + timedelta(minutes=3), latency=900.0, transaction="other"),
    ]  # fmt: skip
    assert services.logs_write(entries) == len(entries)
    return model


def test_entries_without_an_environment_are_production_and_embeddings_are_kept(reads):
    assert PredictionLog.objects.get(transaction_id="t-0").environment == "production"
    assert PredictionLog.objects.get(transaction_id="staged").environment == "staging"
    assert PredictionLog.objects.get(transaction_id="t-2").embedding == [2.0, 1.0]
    assert PredictionLog.objects.get(transaction_id="t-1").embedding is None


def test_a_malformed_embedding_drops_the_entry_not_the_batch(reads):
    bad = entry(reads, at=T0, transaction="bad", embedding=["x"])
    good = entry(reads, at=T0, transaction="good", embedding="")
    assert services.logs_write([bad, good]) == 1
    assert PredictionLog.objects.get(transaction_id="good").embedding is None
    assert not PredictionLog.objects.filter(transaction_id="bad").exists()


def test_version_stats_in_the_window(reads):
    stats = selectors.version_stats(reads, since=T0, until=UNTIL)
    assert set(stats) == {1, 2}
    one = stats[1]
    assert (one.requests, one.errors, one.fallbacks) == (10, 1, 2)
    assert one.p50_ms == pytest.approx(5.5)
    assert one.p99_ms == pytest.approx(9.91)  # 9 + 0.91 * (10 - 9), linear interpolation
    assert one.mean_score == pytest.approx(0.55)
    assert one.decline_rate == pytest.approx(0.2)
    two = stats[2]
    assert (two.requests, two.errors, two.fallbacks) == (2, 0, 0)
    assert (two.p50_ms, two.p99_ms) == (pytest.approx(30.0), pytest.approx(39.8))
    assert (two.mean_score, two.decline_rate) == (pytest.approx(0.3), 0.0)


def test_version_stats_of_staging_and_of_a_silent_version(reads):
    staging = selectors.version_stats(reads, since=T0, until=UNTIL, environment="staging", versions=[1, 3])
    assert staging[1].requests == 1
    assert staging[1].p99_ms == pytest.approx(7.0)
    assert staging[3] == selectors.VersionStats(0, 0, 0, None, None, None, None)
    assert set(selectors.version_stats(reads, since=T0, until=UNTIL, versions=[2])) == {2}


def test_timeseries_buckets_per_version_empty_ones_included(reads):
    series = selectors.timeseries(reads, since=T0, until=UNTIL, step_seconds=300)
    one, two = series[1], series[2]
    assert [bucket.start for bucket in one] == [T0, T0 + timedelta(minutes=5)]
    assert [(b.requests, b.errors, b.fallbacks) for b in one] == [(5, 0, 0), (5, 1, 2)]
    assert [b.p99_ms for b in one] == [pytest.approx(4.96), pytest.approx(9.96)]
    assert [(b.requests, b.p99_ms) for b in two] == [(2, pytest.approx(39.8)), (0, None)]
    with pytest.raises(ValueError, match="step_seconds"):
        selectors.timeseries(reads, since=T0, until=UNTIL, step_seconds=0)


def test_log_window_columns_in_answer_order(reads):
    window = selectors.log_window(reads, since=T0, until=UNTIL)
    assert window.n == 12
    order = ["t-0", "t-1", "v2-a", "t-2", "v2-b", "t-3", "t-4", "t-5", "t-6", "t-7", "t-8", "t-9"]
    assert list(window.transaction_id) == order
    assert list(window.numeric) == ["amount", "hour"]
    assert list(window.categorical) == ["merchant"]
    assert window.numeric["amount"].dtype == np.float64
    np.testing.assert_array_equal(window.numeric["amount"], [0, 1, 10, 2, 10, 3, 4, 5, 6, 7, 8, 9])
    np.testing.assert_array_equal(window.numeric["hour"], [20, 21, 3, 22, 3, 23, 24, 25, 26, 27, 28, 29])
    assert list(window.categorical["merchant"][:3]) == ["m0", "m1", "grocery"]
    np.testing.assert_array_equal(window.version, [1, 1, 2, 1, 2, 1, 1, 1, 1, 1, 1, 1])
    np.testing.assert_allclose(window.latency_ms[:3], [1.0, 2.0, 20.0])
    np.testing.assert_allclose(window.score[-2:], [0.9, 1.0])
    assert list(window.status[-3:]) == ["ok", "fallback", "error"]
    assert list(window.fallback[-3:]) == [False, True, True]
    assert window.created_at.dtype == np.dtype("datetime64[us]")
    assert window.created_at[2] == np.datetime64("2026-12-01T10:01:30")
    assert window.embedding.shape == (12, 2)
    np.testing.assert_array_equal(window.embedding[3], [2.0, 1.0])
    assert np.isnan(window.embedding[1]).all()


def test_log_window_of_one_version_latest_rows_and_an_empty_window(reads):
    window = selectors.log_window(reads, since=T0, until=UNTIL, version=1, limit=3)
    assert list(window.transaction_id) == ["t-7", "t-8", "t-9"]
    staged = selectors.log_window(reads, since=T0, until=UNTIL, environment="staging")
    assert list(staged.transaction_id) == ["staged"]
    assert staged.embedding is None
    empty = selectors.log_window(reads, since=UNTIL + timedelta(days=1), until=UNTIL + timedelta(days=2))
    assert empty.n == 0
    assert empty.numeric == {}
    assert empty.embedding is None


def test_labelled_window_joins_the_labels(reads):
    for transaction, label in (("t-0", True), ("t-1", False), ("t-8", True), ("v2-a", False)):
        Feedback.objects.create(model=reads, transaction_id=transaction, label=label)
    scores, labels = selectors.labelled_window(reads, since=T0, until=UNTIL, version=1)
    np.testing.assert_allclose(scores, [0.1, 0.2])
    assert labels.tolist() == [True, False]
    scores, labels = selectors.labelled_window(reads, since=T0, until=UNTIL, include_fallback=True)
    np.testing.assert_allclose(scores, [0.1, 0.2, 0.2, 0.9])
    assert labels.tolist() == [True, False, False, True]


def assert_same_window(one: selectors.LogWindow, other: selectors.LogWindow) -> None:
    assert one.n == other.n
    for name in ("score", "latency_ms", "fallback", "status", "version", "created_at", "transaction_id"):
        np.testing.assert_array_equal(getattr(one, name), getattr(other, name), err_msg=name)
    assert list(one.numeric) == list(other.numeric)
    for name in one.numeric:
        np.testing.assert_array_equal(one.numeric[name], other.numeric[name], err_msg=name)
    assert list(one.categorical) == list(other.categorical)
    for name in one.categorical:
        assert list(one.categorical[name]) == list(other.categorical[name]), name
    if one.embedding is None:
        assert other.embedding is None
    else:
        np.testing.assert_array_equal(one.embedding, other.embedding)


AWKWARD = {
    "plain": [{"merchant": "tab\there, back\\slash\nnew line", "transaction": "awkward"}],
    "missing values": [
        {"merchant": None, "transaction": "no merchant"},
        {"merchant": "\\N", "numeric": (None, 1.0), "transaction": "no amount"},
    ],
    "control characters": [
        {"merchant": "a\x1eb", "transaction": "t\x1e1"},
        {"merchant": "\x1a", "transaction": "sub"},
        {"merchant": "x\x1fy", "transaction": "unit"},
    ],
}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the COPY reads are PostgreSQL's")
@pytest.mark.parametrize("limit", [None, 5])
@pytest.mark.parametrize("awkward", list(AWKWARD))
def test_the_copy_read_gives_what_the_row_read_gives(reads, limit, awkward, monkeypatch):
    tried = []
    query = selectors._window_query
    monkeypatch.setattr(
        selectors, "_window_query", lambda *a, **options: tried.append(options) or query(*a, **options)
    )
    services.logs_write(
        [entry(reads, at=T0 + timedelta(minutes=4, seconds=5 + index), **fields)
         for index, fields in enumerate(AWKWARD[awkward])]
    )  # fmt: skip
    arguments = {"since": T0, "until": UNTIL, "version": None, "environment": "production", "limit": limit}
    fast = selectors._log_window_copy(reads, **arguments)
    assert fast is not None, "the window's rows are of one width per version"
    assert_same_window(fast, selectors._log_window_rows(reads, **arguments))
    assert tried[0] == {"nulls_to_nan": False, "texts_as_json": False}, "the cheapest read first"
    if limit is None:
        expected = {
            "plain": (False, False),
            "missing values": (True, False),
            "control characters": (False, True),
        }
        assert (tried[-1]["nulls_to_nan"], tried[-1]["texts_as_json"]) == expected[awkward]
        assert fast.n == 12 + len(AWKWARD[awkward])
        merchants = dict(zip(fast.transaction_id, fast.categorical["merchant"], strict=True))
        for fields in AWKWARD[awkward]:
            assert merchants[fields["transaction"]] == fields["merchant"]
        if awkward == "missing values":
            assert np.isnan(fast.numeric["amount"][list(fast.transaction_id).index("no amount")])


@pytest.mark.django_db
def test_rows_of_uneven_width_are_still_read(reads):
    services.logs_write(
        [entry(reads, at=T0 + timedelta(seconds=1), numeric=(1.0, 2.0, 3.0), transaction="wide")]
    )
    window = selectors.log_window(reads, since=T0, until=UNTIL, version=1)
    assert window.n == 11
    assert window.transaction_id[1] == "wide"
    assert window.numeric["amount"][1] == 1.0


def test_version_scores_are_the_models_own_answers_latest_first_limited(reads):
    scores = selectors.version_scores(reads, since=T0, until=UNTIL, versions=[1, 2, 3])
    # v1's 9th answer is the rules' and its 10th an error: neither is the model's score.
    np.testing.assert_allclose(np.sort(scores[1]), [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    np.testing.assert_allclose(np.sort(scores[2]), [0.2, 0.4])
    assert scores[3].size == 0
    latest = selectors.version_scores(reads, since=T0, until=UNTIL, versions=[1], limit=3)
    np.testing.assert_allclose(np.sort(latest[1]), [0.6, 0.7, 0.8])
    staged = selectors.version_scores(reads, since=T0, until=UNTIL, versions=[1], environment="staging")
    np.testing.assert_allclose(staged[1], [0.1])


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the COPY reads are PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_a_window_read_shared_over_two_connections_is_the_one_connection_read(reads, settings, monkeypatch):
    # Rows in two blocks of ids, so that each connection aggregates a share of the window.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('serving_predictionlog', 'id'), "
            "(SELECT max(id) FROM serving_predictionlog) + %s)",
            [1 << selectors.CHUNK_BITS],  # the next block: the other connection
        )
    services.logs_write(
        [entry(reads, at=T0 + timedelta(minutes=5, seconds=index), score=0.5, transaction=f"late-{index}")
         for index in range(3)]
    )  # fmt: skip
    parts = []
    read_part = selectors._read_part

    def counted(db, *args):
        groups = read_part(db, *args)
        parts.append(len(groups))
        return groups

    monkeypatch.setattr(selectors, "_read_part", counted)
    arguments = {"since": T0, "until": UNTIL, "version": None, "environment": "production", "limit": None}
    settings.SERVING_LOG_READ_CONNECTIONS = 2
    shared = selectors._log_window_copy(reads, **arguments)
    assert len(parts) == 2
    assert min(parts) > 0, f"each connection read a share of the groups: {parts}"
    with connection.cursor() as cursor:  # the read's own connection is closed again
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        assert cursor.fetchone()[0] == 1
    assert shared.n == 15
    assert_same_window(shared, selectors._log_window_rows(reads, **arguments))
    settings.SERVING_LOG_READ_CONNECTIONS = 1
    parts.clear()
    assert_same_window(selectors._log_window_copy(reads, **arguments), shared)
    assert len(parts) == 1
