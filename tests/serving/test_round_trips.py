"""What one scoring request costs in Redis: one round trip before scoring, one write after."""

import pytest
import redis

from apps.serving import hotpath
from apps.serving.breaker import Breaker, breaker_key
from apps.serving.routing import routes_publish

pytestmark = pytest.mark.django_db


class CountingRedis(redis.Redis):
    """A redis-py client that records each round trip: a single command, or a pipeline's execute."""

    trips: list

    def execute_command(self, *args, **options):
        self.trips.append(str(args[0]))
        return super().execute_command(*args, **options)

    def pipeline(self, transaction=True, shard_hint=None):
        pipe = super().pipeline(transaction, shard_hint)
        execute, trips = pipe.execute, self.trips

        def counted(raise_on_error=True):
            trips.append("pipeline " + " ".join(str(args[0]) for args, _ in pipe.command_stack))
            return execute(raise_on_error)

        pipe.execute = counted
        return pipe


@pytest.fixture
def trips(serving, settings, monkeypatch):
    """The round trips of the hot path's Redis client; "score" marks when the model was called."""
    client = CountingRedis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    client.trips = []
    monkeypatch.setattr(hotpath, "redis_client", lambda: client)
    real_pool = hotpath.pool

    class Scorer:
        def __init__(self, scorer):
            self.scorer = scorer

        def predict_proba(self, rows):
            client.trips.append("score")
            return self.scorer.predict_proba(rows)

    class Pool:
        def get(self, name, version):
            return Scorer(real_pool.get(name, version))

    monkeypatch.setattr(hotpath, "pool", Pool())
    return client.trips


def split(trips: list[str]) -> tuple[list[str], list[str]]:
    index = trips.index("score")
    return trips[:index], [trip for trip in trips[index:] if trip != "score"]


def test_a_warm_request_makes_one_round_trip_before_scoring_and_one_after(serving, scoring_client, trips):
    scoring_client(serving.item(0, transaction_id="warm"))  # the process loads its config and the model
    trips.clear()

    answer = scoring_client(serving.item(1, transaction_id="counted")).json()

    assert answer["fallback"] is False
    before, after = split(trips)
    assert before == ["pipeline GET HGETALL TIME HMGET MGET"], trips
    assert after == ["pipeline SET XADD XLEN"], trips


def test_a_batch_across_two_routed_versions_still_reads_once(serving, scoring_client, trips, ml_engineer):
    serving.add_version(2, stage="candidate")
    routes_publish(serving.name, "production", 1, {1: 5000, 2: 5000})
    items = [dict(serving.item(i, transaction_id=f"w-{i}"), entity_id=f"e-{i}") for i in range(20)]
    scoring_client({"items": items})  # warm: both versions loaded, the table seen
    trips.clear()

    answers = scoring_client(
        {"items": [dict(item, transaction_id=f"b-{i}") for i, item in enumerate(items)]}
    ).json()["items"]

    assert {answer["version"] for answer in answers} == {1, 2}
    reads = [trip for trip in trips if trip.startswith("pipeline GET")]
    assert reads == ["pipeline GET HGETALL TIME HMGET HMGET MGET"], trips
    assert len([trip for trip in trips if trip != "score"]) == 2, trips


def test_an_open_breaker_is_read_in_the_same_round_trip_and_the_rules_answer(serving, scoring_client, trips):
    scoring_client(serving.item(0, transaction_id="warm"))
    breaker = Breaker(hotpath.redis_client(), breaker_key(serving.name, 1), failures=1, reset_after=3600)
    breaker.record_failure()
    trips.clear()

    answer = scoring_client(serving.item(1, transaction_id="open")).json()

    assert answer["fallback"] is True
    assert "score" not in trips
    assert trips == ["pipeline GET HGETALL TIME HMGET MGET", "pipeline SET XADD XLEN"], trips
