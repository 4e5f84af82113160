"""The inference process's /healthz: 200 while it can answer, "degraded" with the reason without Redis."""

import pytest

from apps.serving import hotpath
from hafnium_portal import embedded_redis

pytestmark = pytest.mark.django_db


@pytest.fixture
def inference_urls(settings):
    settings.ROOT_URLCONF = "hafnium_portal.inference_urls"


def test_inference_healthz_is_ok_when_every_part_is_up(client, inference_urls):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["down"]) == ("ok", [])
    assert "reason" not in response.json()


def test_inference_healthz_is_degraded_with_the_reason_when_redis_is_down(
    client, inference_urls, settings, serving, scoring_client
):
    shared_redis = settings.REDIS_URL
    settings.REDIS_URL = f"redis://127.0.0.1:{embedded_redis.free_port()}/0"
    hotpath.reset_redis()
    try:
        response = client.get("/healthz")
        body = response.json()
        assert response.status_code == 200
        assert body["status"] == "degraded"
        assert body["down"] == ["redis"]
        assert body["reason"].startswith("Redis is down: scoring goes on")
        # And it does: the scoring API answers without Redis.
        assert scoring_client(serving.item(0, transaction_id="no-redis")).json()["fallback"] is False
    finally:
        settings.REDIS_URL = shared_redis
        hotpath.reset_redis()
        hotpath._pending_logs.clear()
