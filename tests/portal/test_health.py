"""/healthz names what is down; /metrics answers; both without login. Pages render with Redis down."""

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from hafnium_portal import embedded_redis, health
from tests.conftest import ROOT

pytestmark = pytest.mark.django_db


@pytest.fixture
def all_up(mlflow_store):
    health.record_worker_heartbeat("worker@test")


def test_healthz_is_200_when_every_part_is_up(client, all_up):
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert body["down"] == []
    assert set(body["checks"]) == {"database", "redis", "mlflow", "worker"}
    assert body["checks"]["worker"]["hostname"] == "worker@test"


def test_healthz_is_degraded_not_unavailable_when_redis_is_down(client, all_up, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{embedded_redis.free_port()}/0"
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "degraded"
    assert body["reason"].startswith("Redis is down")
    assert body["down"] == ["redis", "worker"]
    assert "ConnectionError" in body["checks"]["redis"]["error"]


def test_healthz_is_unavailable_when_redis_and_another_part_are_down(client, all_up, settings, tmp_path):
    settings.REDIS_URL = f"redis://127.0.0.1:{embedded_redis.free_port()}/0"
    settings.MLFLOW_TRACKING_URI = f"sqlite:///{tmp_path / 'absent.sqlite3'}"
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["down"] == ["redis", "mlflow", "worker"]


def test_healthz_names_a_stale_worker(client, all_up, settings):
    old = (datetime.now(UTC) - timedelta(seconds=settings.WORKER_HEARTBEAT_STALE_AFTER + 5)).isoformat()
    health._redis_client().hset(health.HEARTBEAT_KEY, "at", old)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["down"] == ["worker"]
    assert "old" in response.json()["checks"]["worker"]["error"]


def test_healthz_names_a_missing_mlflow_store(client, all_up, settings, tmp_path):
    settings.MLFLOW_TRACKING_URI = f"sqlite:///{tmp_path / 'absent.sqlite3'}"
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["down"] == ["mlflow"]


def test_healthz_names_an_unreachable_mlflow_server(client, all_up, mlflow_unreachable):
    assert client.get("/healthz").json()["down"] == ["mlflow"]


def test_healthz_names_the_database_when_it_is_down():
    """In a process of its own, since the test database cannot be taken away from this one."""
    script = (
        "import django, json; django.setup(); from django.test import Client; "
        "r = Client().get('/healthz'); print(json.dumps({'http_status': r.status_code, **r.json()}))"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "hafnium_portal.settings",
        "DATABASE_URL": f"postgres://nobody@127.0.0.1:{embedded_redis.free_port()}/absent",
        "DJANGO_ALLOWED_HOSTS": "testserver",
    }
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    body = json.loads(result.stdout.strip().splitlines()[-1])
    assert body["http_status"] == 503
    assert "database" in body["down"]
    assert "OperationalError" in body["checks"]["database"]["error"]


def test_pages_still_render_when_redis_is_down(client, data_scientist, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{embedded_redis.free_port()}/0"
    client.force_login(data_scientist)
    assert client.get(reverse("home")).status_code == 200


def test_metrics_answers_prometheus_text_without_login(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert b"python_info" in response.content


def test_health_endpoints_refuse_other_methods(client):
    assert client.post("/healthz").status_code == 405
