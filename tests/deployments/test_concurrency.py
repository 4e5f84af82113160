"""Ticks that race: two workers advancing the same rollouts at once make each move once."""

import threading

import pytest
from django.db import connection

from apps.audit.models import AuditEvent
from apps.deployments.models import Rollout
from apps.deployments.services import controller_tick, rollout_advance
from apps.serving.models import RoutingTable

from .conftest import make_rollout, traffic

pytestmark = pytest.mark.django_db(transaction=True)


def at_once(count: int, work) -> list:
    """Run `work()` in `count` threads released together; each thread has its own connection."""
    barrier, results, errors = threading.Barrier(count), [], []

    def run():
        try:
            barrier.wait(timeout=30)
            results.append(work())
        except Exception as exc:  # reported below, with the thread's exception
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results


def test_two_ticks_at_once_make_one_transition_each(canary_model, fast_policy, clock):
    rollout = make_rollout(canary_model, policy=fast_policy)
    at_once(2, lambda: controller_tick(now=clock.now))
    rollout.refresh_from_db()
    assert rollout.state == Rollout.State.ANALYSING
    assert list(rollout.events.order_by("revision").values_list("from_state", "to_state")) == [
        ("pending", "canary"),
        ("canary", "analysing"),
    ]
    assert RoutingTable.objects.filter(model=canary_model, environment="production").count() == 1
    assert AuditEvent.objects.filter(object_id=str(rollout.pk), action__startswith="deployment.").count() == 2

    traffic(canary_model, 2, 40, at=clock.now)
    traffic(canary_model, 1, 100, at=clock.now)
    later = clock.advance(2.1)
    moves = at_once(4, lambda: rollout_advance(rollout_id=rollout.pk, now=later))
    rollout.refresh_from_db()
    assert rollout.state == Rollout.State.SUCCEEDED
    assert sum(moves) == 2  # analysing -> promoting -> succeeded, by whichever thread held the lock
    assert rollout.measurements.count() == 4  # one measurement of each metric, not one per thread
    assert rollout.events.filter(action="finish_promotion").count() == 1
    assert canary_model.versions.get(version=2).transitions.filter(to_stage="production").count() == 1
