"""Celery on the real broker: tasks go through Redis to a worker process; beat schedules from the database."""

import uuid

import pytest
from django_celery_beat.models import PeriodicTask

from hafnium_portal import health
from hafnium_portal.celery import app

pytestmark = pytest.mark.django_db(transaction=True)


def _heartbeat() -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in health._redis_client().hgetall(health.HEARTBEAT_KEY).items()}


def test_task_enqueued_through_redis_runs_in_a_worker_process(start_celery):
    health._redis_client().delete(health.HEARTBEAT_KEY)
    worker = start_celery("worker")
    marker = f"sent-through-redis-{uuid.uuid4().hex}"
    health.record_worker_heartbeat.delay(hostname=marker)
    worker.wait_for(lambda: _heartbeat().get("hostname") == marker)


def test_beat_schedules_the_heartbeat_from_the_database_and_a_worker_records_it(start_celery, client):
    health._redis_client().delete(health.HEARTBEAT_KEY)
    fast = {"WORKER_HEARTBEAT_INTERVAL": "1"}
    worker = start_celery("worker", env=fast)
    # A worker records a heartbeat as it starts; beat's are the ones after it.
    started_at = worker.wait_for(lambda: _heartbeat().get("at"))
    beat = start_celery("beat", env=fast)
    beat.wait_for(
        lambda: PeriodicTask.objects.filter(task="hafnium_portal.health.record_worker_heartbeat").exists()
    )
    beat.wait_for(lambda: _heartbeat()["at"] > started_at)
    assert _heartbeat()["hostname"] == worker.name
    checks = client.get("/healthz").json()["checks"]
    assert checks["worker"]["ok"] is True
    assert checks["worker"]["hostname"] == worker.name


def test_celery_is_configured_for_json_late_acks_time_limits_and_the_database_scheduler():
    conf = app.conf
    assert conf.task_serializer == "json"
    assert conf.accept_content == ["json"]
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert 0 < conf.task_soft_time_limit < conf.task_time_limit
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit
    assert conf.beat_scheduler == "django_celery_beat.schedulers:DatabaseScheduler"
    assert conf.broker_url.startswith("redis://")


def test_the_visibility_timeout_is_longer_than_every_tasks_time_limit():
    """A late-acked task still running when the timeout passes is handed to a second worker."""
    app.loader.import_default_modules()  # every app's tasks, as a worker loads them
    limits = {
        name: task.time_limit or app.conf.task_time_limit
        for name, task in app.tasks.items()
        if not name.startswith("celery.")
    }
    assert "apps.training.tasks.train_model" in limits
    longest = max(limits.values())
    assert app.conf.broker_transport_options["visibility_timeout"] > longest, limits


def test_a_heartbeat_is_recorded_while_the_default_queue_is_backed_up(start_celery):
    """Only a heartbeat worker runs and the default queue holds work nobody takes (a pool busy with
    MLflow calls): the heartbeat still goes through, on its own queue."""
    from apps.registry import tasks as registry_tasks

    health._redis_client().delete(health.HEARTBEAT_KEY)
    for _ in range(5):
        registry_tasks.sync_registry.delay()  # waiting in the default queue, behind which nothing may wait
    worker = start_celery("worker", args=["--queues", "heartbeat"])
    marker = f"heartbeat-{uuid.uuid4().hex}"
    health.record_worker_heartbeat.delay(hostname=marker)
    worker.wait_for(lambda: _heartbeat().get("hostname") == marker)
