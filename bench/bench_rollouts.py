"""The rollout controller: what a tick costs with many rollouts, and how fast a failing canary is undone.

1. Tick cost. N models each get a canary rollout (v1 stable in Production, v2 candidate, the default
   policy); the bench times and counts the SQL queries of `controller_tick` in three situations:
   "start" (every rollout pending: set the 5 % weight, two moves each), "idle" (every rollout analysing,
   no measurement due: what most ticks are) and "measure" (every rollout's measurement due, on a window
   of 120 logged answers, then promoted: four moves' worth of work each). Side by side: the same with
   N/10 rollouts, so the ratio says whether the cost per rollout stays flat (queries per rollout are
   bounded: no query grows with the number of rollouts).
2. Time to stable. One canary analysing with a 2 s interval; at a random instant of its step the first
   bad answers are logged (model errors), and the controller ticks every 0.5 s as beat runs it. The
   bench measures from the first bad answer to the moment Redis (what the scoring processes read) routes
   everything to the stable version again. Target: one analysis interval + 5 s at most. The log writer's
   own delay (Redis stream to PostgreSQL, batches of milliseconds) is not included: the bad answers are
   written to the log table directly.

Runs on a throwaway portal (bench/_setup.py: SQLite) and the Redis of REDIS_URL (it must be running).
`--quick` takes N=30 and 3 repetitions.
"""

import argparse
import random
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _setup import machine, portal_setup


def _fleet(count: int, prefix: str):
    from django.utils import timezone

    from apps.deployments.models import Rollout
    from apps.deployments.selectors import policy_in_force
    from apps.registry.models import ModelVersion, RegisteredModel, Stage

    policy = policy_in_force(None)
    rollouts = []
    for index in range(count):
        model = RegisteredModel.objects.create(name=f"{prefix}-{index}")
        stable, candidate = (
            ModelVersion.objects.create(
                model=model, version=number, stage=stage, registered_at=timezone.now()
            )
            for number, stage in ((1, Stage.PRODUCTION), (2, Stage.STAGING))
        )
        rollouts.append(
            Rollout.objects.create(
                model=model, candidate=candidate, stable=stable, kind=Rollout.Kind.CANARY, policy=policy
            )
        )
    return rollouts


def _log(model, version: int, count: int, at, *, errors: int = 0) -> None:
    from apps.serving.models import PredictionLog

    PredictionLog.objects.bulk_create(
        PredictionLog(
            request_id=uuid.uuid4().hex, transaction_id=f"t{i}", entity_id=f"c{i}", model=model,
            version=version,
            numeric_features=[1.0], categorical_features=["pos"], score=0.2, decision="approve",
            fallback=i < errors, latency_ms=4.0, status="error" if i < errors else "ok",
            created_at=at + timedelta(milliseconds=i),
        )
        for i in range(count)
    )  # fmt: skip


def _tick(now) -> tuple[float, int, dict]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apps.deployments.services import controller_tick

    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        report = controller_tick(now=now)
        elapsed = time.perf_counter() - started
    return elapsed, len(queries), report


def tick_costs(count: int) -> dict[str, tuple[float, int]]:
    from django.utils import timezone

    from apps.deployments.models import Rollout

    prefix = f"bench-{uuid.uuid4().hex[:6]}"
    rollouts = _fleet(count, prefix)
    now = timezone.now()
    costs = {}
    elapsed, queries, report = _tick(now)
    assert report["moves"] == 2 * count, report
    costs["start"] = (elapsed, queries)
    for rollout in rollouts:
        _log(rollout.model, 1, 100, now)
        _log(rollout.model, 2, 20, now)
    elapsed, queries, report = _tick(now + timedelta(seconds=1))
    assert report["moves"] == 0, report
    costs["idle"] = (elapsed, queries)
    elapsed, queries, report = _tick(now + timedelta(seconds=12))
    costs["measure"] = (elapsed, queries)
    done = Rollout.objects.filter(model__name__startswith=prefix, state=Rollout.State.SUCCEEDED).count()
    assert done == count, f"{done} of {count} promoted"
    return costs


def time_to_stable(repeats: int, interval: float = 2.0, tick: float = 0.5) -> list[float]:
    import redis
    from django.conf import settings
    from django.utils import timezone

    from apps.deployments.models import Rollout, RolloutPolicy
    from apps.deployments.services import controller_tick
    from apps.serving.routing import routes_key

    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2)
    figures = []
    for repeat in range(repeats):
        (rollout,) = _fleet(1, f"fail-{uuid.uuid4().hex[:6]}")
        rollout.policy = RolloutPolicy.objects.create(
            model=rollout.model,
            version=1,
            analysis_interval_s=interval,
            min_samples=10,
            progress_deadline_s=600,
        )
        rollout.save(update_fields=["policy"])
        controller_tick()
        rollout.refresh_from_db()
        assert rollout.state == Rollout.State.ANALYSING
        key = routes_key(rollout.model.name, "production")
        # The first bad answer arrives somewhere in the step, not just after a measurement.
        time.sleep(random.Random(repeat).uniform(0, interval))
        first_bad = time.monotonic()
        _log(rollout.model, 2, 40, timezone.now(), errors=40)
        _log(rollout.model, 1, 200, timezone.now())
        while True:
            controller_tick()
            routes = {int(k): int(v) for k, v in client.hgetall(key).items() if k != b"revision"}
            if routes == {1: 10_000}:
                figures.append(time.monotonic() - first_bad)
                break
            if time.monotonic() - first_bad > 60:
                raise SystemExit(f"not rolled back after 60 s: {routes}")
            time.sleep(tick)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rollouts", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    options = parser.parse_args()
    count, repeats = (30, 3) if options.quick else (options.rollouts, options.repeats)
    portal_setup()
    print(f"# bench_rollouts — {machine()}, SQLite")
    small = tick_costs(max(count // 10, 1))
    large = tick_costs(count)
    print(f"\n## controller tick, {count} rollouts (and {max(count // 10, 1)} alongside)\n")
    print("| tick | rollouts | time (ms) | queries | queries / rollout | ms / rollout | ratio / rollout |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in ("start", "idle", "measure"):
        for size, costs in ((max(count // 10, 1), small), (count, large)):
            elapsed, queries = costs[name]
            ratio = (large[name][0] / count) / (small[name][0] / max(count // 10, 1))
            print(
                f"| {name} | {size} | {elapsed * 1000:.1f} | {queries} | {queries / size:.1f} | "
                f"{elapsed * 1000 / size:.2f} | {ratio:.2f} |"
            )
    figures = time_to_stable(repeats)
    print("\n## failing canary: first bad answer -> production routed to stable only (Redis)\n")
    print("analysis interval 2 s, tick every 0.5 s; target <= interval + 5 s = 7 s")
    print(
        f"\nseconds over {len(figures)} runs: min {min(figures):.2f}, "
        f"median {statistics.median(figures):.2f}, max {max(figures):.2f}"
    )
    return 0 if max(figures) <= 7.0 else 1


if __name__ == "__main__":
    sys.exit(main())
