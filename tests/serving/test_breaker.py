"""The circuit breaker against a real Redis (the test run's), racing threads, and Redis down."""

import os
import threading
import time
import uuid

import pytest
import redis

from apps.serving.breaker import Breaker, breaker_key, queue_state_read
from hafnium_portal.embedded_redis import free_port


def _client():
    return redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=2, socket_connect_timeout=2)


@pytest.fixture
def key():
    return breaker_key(f"model-{uuid.uuid4().hex[:8]}", 3)


def _poll(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.01)
    pytest.fail("condition not reached in time")


class Transitions(list):
    def __call__(self, key, old, new):
        self.append((old, new))


def test_opens_after_five_consecutive_failures_and_answers_open(key):
    transitions = Transitions()
    breaker = Breaker(_client(), key, on_transition=transitions)
    for _ in range(4):
        assert breaker.allow() == "closed"
        assert breaker.record_failure() is False
    assert breaker.state() == "closed"
    assert breaker.status().failures == 4
    assert breaker.record_failure() is True
    assert transitions == [("closed", "open")]
    assert breaker.allow() == "open"
    status = breaker.status()
    assert status.state == "open"
    assert status.shared
    assert status.opened_seconds_ago >= 0


def test_a_success_resets_the_consecutive_count(key):
    breaker = Breaker(_client(), key)
    for _ in range(4):
        breaker.allow()
        breaker.record_failure()
    breaker.allow()
    breaker.record_success()
    for _ in range(4):
        breaker.allow()
        assert breaker.record_failure() is False
    assert breaker.state() == "closed"


def test_processes_share_the_state_through_redis(key):
    first, second = Breaker(_client(), key, failures=4), Breaker(_client(), key, failures=4)
    opened = [
        first.record_failure(),
        second.record_failure(),
        first.record_failure(),
        second.record_failure(),
    ]
    assert opened == [False, False, False, True]
    assert first.allow() == "open"
    assert first.status().state == "open"


def test_one_probe_after_the_reset_success_closes(key):
    transitions = Transitions()
    breaker = Breaker(_client(), key, failures=2, reset_after=0.2, on_transition=transitions)
    other = Breaker(_client(), key, failures=2, reset_after=0.2)
    breaker.record_failure(), breaker.record_failure()
    assert breaker.allow() == "open"
    assert _poll(lambda: breaker.state() == "half_open")
    assert breaker.allow() == "probe"
    assert other.allow() == "open"  # one probe at a time
    assert other.record_success() is False  # a success that was not the probe's closes nothing
    assert breaker.state() == "half_open"
    assert breaker.record_success() is True
    assert transitions == [("closed", "open"), ("half_open", "closed")]
    assert other.allow() == "closed"
    assert breaker.status().failures == 0


def test_a_failed_probe_reopens_for_another_reset_period(key):
    transitions = Transitions()
    breaker = Breaker(_client(), key, failures=1, reset_after=0.2, on_transition=transitions)
    breaker.record_failure()
    _poll(lambda: breaker.allow() == "probe")
    assert breaker.record_failure() is True
    assert transitions == [("closed", "open"), ("half_open", "open")]
    assert breaker.allow() == "open"
    assert breaker.state() == "open"
    assert _poll(lambda: breaker.allow() == "probe")


def test_a_probe_that_never_reports_loses_its_lease(key):
    breaker = Breaker(_client(), key, failures=1, reset_after=0.1, probe_timeout=0.3)
    breaker.record_failure()
    _poll(lambda: breaker.allow() == "probe")
    other = Breaker(_client(), key, failures=1, reset_after=0.1, probe_timeout=0.3)
    assert other.allow() == "open"
    assert _poll(lambda: other.allow() == "probe")
    assert other.record_success() is True


def test_racing_failures_open_the_breaker_exactly_once(key):
    threads, barrier, results = 12, threading.Barrier(12), []

    def fail():
        breaker = Breaker(_client(), key, failures=5)
        barrier.wait()
        results.append(breaker.record_failure())

    workers = [threading.Thread(target=fail) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert results.count(True) == 1
    assert len(results) == threads


def test_racing_callers_after_the_reset_get_exactly_one_probe(key):
    Breaker(_client(), key, failures=1, reset_after=0.2).record_failure()
    _poll(lambda: Breaker(_client(), key, failures=1, reset_after=0.2).state() == "half_open")
    threads, barrier, answers = 16, threading.Barrier(16), []

    def ask():
        breaker = Breaker(_client(), key, failures=1, reset_after=0.2)
        barrier.wait()
        answers.append(breaker.allow())

    workers = [threading.Thread(target=ask) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sorted(answers) == ["open"] * (threads - 1) + ["probe"]


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_redis_down_falls_back_to_a_per_process_breaker(key):
    dead = redis.Redis(port=free_port(), socket_timeout=0.5, socket_connect_timeout=0.5)
    clock, transitions = FakeClock(), Transitions()
    breaker = Breaker(dead, key, failures=5, reset_after=30, clock=clock, on_transition=transitions)
    started = time.monotonic()
    for _ in range(4):
        assert breaker.allow() == "closed"
        assert breaker.record_failure() is False
    assert breaker.record_failure() is True
    assert time.monotonic() - started < 15  # a dead Redis costs no hang (generous bound)
    # Another Breaker object of the same key in this process sees the same per-process state.
    again = Breaker(dead, key, failures=5, reset_after=30, clock=clock)
    assert again.allow() == "open"
    assert again.status().state == "open"
    assert again.status().shared is False
    clock.now += 30
    assert breaker.allow() == "probe"
    assert again.allow() == "open"
    assert breaker.record_success() is True
    assert transitions == [("closed", "open"), ("half_open", "closed")]
    assert again.allow() == "closed"


def test_without_redis_the_breaker_is_per_process(key):
    clock = FakeClock()
    breaker = Breaker(None, key, failures=1, reset_after=5, clock=clock)
    breaker.record_failure()
    assert breaker.allow() == "open"
    clock.now += 5
    assert breaker.allow() == "probe"
    assert breaker.record_failure() is True
    assert breaker.allow() == "open"


def test_a_failing_transition_callback_does_not_fail_the_caller(key):
    def broken(*args):
        raise RuntimeError("mail server down")

    breaker = Breaker(_client(), key, failures=1, on_transition=broken)
    assert breaker.record_failure() is True
    assert breaker.allow() == "open"


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="failures must be >= 1"):
        Breaker(None, "k", failures=0)
    with pytest.raises(ValueError, match="must be > 0"):
        Breaker(None, "k", reset_after=0)


def test_redis_killed_and_restarted_the_breaker_goes_local_then_shared_again(key):
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from hafnium_portal import embedded_redis

    port = free_port()
    server = embedded_redis.start_background(port)
    try:
        client = redis.Redis(
            port=port, socket_timeout=0.5, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
        )
        breaker = Breaker(client, key, failures=2, redis_retry_after=0.05)
        assert breaker.record_failure() is False
        assert breaker.status().shared is True
        assert breaker.status().failures == 1

        server.kill()
        server.wait(10)
        # Redis gone: this process counts on its own (its count starts afresh), and still opens.
        assert breaker.allow() == "closed"
        assert breaker.status().shared is False
        assert breaker.record_failure() is False
        assert breaker.record_failure() is True
        assert breaker.allow() == "open"

        server = embedded_redis.start_background(port)  # an empty Redis: the shared state is closed
        assert _poll(lambda: breaker.status().shared)
        assert breaker.allow() == "closed"
        assert breaker.status().failures == 0
    finally:
        server.kill()
        server.wait(10)


def _pipelined_read(client, key):
    """What the hot path does: the breaker's state and Redis' clock in one pipeline."""
    pipe = client.pipeline(transaction=False)
    pipe.time()
    queue_state_read(pipe, key)
    (seconds, micros), fields = pipe.execute()
    return fields, int(seconds) * 1000 + int(micros) // 1000


def test_allow_read_from_a_pipelined_read_keeps_the_breakers_rules(key):
    client = _client()
    breaker = Breaker(client, key, failures=2, reset_after=0.2, on_transition=Transitions())
    other = Breaker(_client(), key, failures=2, reset_after=0.2)
    assert breaker.allow_read(*_pipelined_read(client, key)) == "closed"
    assert breaker.record_success() is False
    breaker.record_failure()
    assert breaker.allow_read(*_pipelined_read(client, key)) == "closed"
    assert breaker.record_failure() is True
    assert breaker.allow_read(*_pipelined_read(client, key)) == "open"

    _poll(lambda: breaker.state() == "half_open")
    # Two callers read the same due state; the lease gives the probe to one of them only.
    first, second = _pipelined_read(client, key), _pipelined_read(client, key)
    assert sorted([breaker.allow_read(*first), other.allow_read(*second)]) == ["open", "probe"]
    prober = breaker if breaker._thread.token else other
    assert prober.record_success() is True
    assert breaker.allow_read(*_pipelined_read(client, key)) == "closed"


def test_allow_read_without_a_read_is_allow_and_goes_local_when_redis_is_down(key):
    dead = redis.Redis(port=free_port(), socket_timeout=0.5, socket_connect_timeout=0.5)
    clock = FakeClock()
    breaker = Breaker(dead, key, failures=1, reset_after=30, clock=clock)
    assert breaker.allow_read(None, None) == "closed"
    assert breaker.record_failure() is True
    assert breaker.allow_read([b"closed", b"0", None], 0) == "open", "Redis failed: the process's own state"
    clock.now += 30
    assert breaker.allow_read(None, None) == "probe"
