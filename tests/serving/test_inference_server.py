"""The inference process as it runs: gunicorn on the lean entry point, over real HTTP; the Java client."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from apps.serving import hotpath
from tests.conftest import inference_process

pytestmark = pytest.mark.django_db(transaction=True)
JAVA_SOURCE = Path(__file__).parent / "java" / "ScoringContract.java"
LOGS: list[Path] = []


def server_log() -> str:
    return LOGS[-1].read_text()[-5000:] if LOGS else ""


@pytest.fixture
def inference_server(serving, settings, tmp_path, request):
    """gunicorn serving hafnium_portal.inference_wsgi on a free port (one worker unless marked)."""
    marker = request.node.get_closest_marker("workers")
    workers = marker.args[0] if marker else 1
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    log = tmp_path / "gunicorn.log"
    LOGS.append(log)
    env = {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    with inference_process(settings, log, env=env, workers=workers, ready=lambda h: not h["warming"]) as base:
        yield base


def score(base, serving, body, token=None):
    return requests.post(
        f"{base}/api/v1/models/{serving.name}/score",
        json=body,
        headers={"Authorization": f"Token {token or serving.token}"},
        timeout=60,
    )


def test_gunicorn_scores_one_and_a_batch_over_http(inference_server, serving):
    one = score(inference_server, serving, serving.item(0, transaction_id="http-1"))
    batch = score(
        inference_server, serving, {"items": [serving.item(i, transaction_id=f"hb-{i}") for i in range(50)]}
    )
    retry = score(inference_server, serving, serving.item(0, transaction_id="http-1"))

    assert one.status_code == 200, server_log()
    assert one.json()["fallback"] is False
    assert [a["transaction_id"] for a in batch.json()["items"]] == [f"hb-{i}" for i in range(50)]
    assert retry.json() == one.json()
    refused = score(inference_server, serving, serving.item(1, amount="x"))
    assert (refused.status_code, list(refused.json())) == (400, ["features.amount"])
    assert score(inference_server, serving, serving.item(1), token="0" * 40).status_code == 401


@pytest.mark.workers(2)
def test_lean_entry_point_and_its_metrics_merged_across_workers(inference_server, serving):
    assert requests.get(f"{inference_server}/admin/", timeout=10).status_code == 404
    assert requests.get(f"{inference_server}/models/", timeout=10).status_code == 404
    assert requests.get(f"{inference_server}/healthz", timeout=10).json()["status"] == "ok"
    for index in range(6):
        assert score(inference_server, serving, serving.item(index, transaction_id=f"m-{index}")).ok

    text = requests.get(f"{inference_server}/metrics", timeout=10).text
    counted = [
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
        if line.startswith("hafnium_serving_requests_total") and f'model="{serving.name}"' in line
    ]  # fmt: skip
    assert sum(counted) == 6.0, text
    assert "hafnium_serving_request_seconds_bucket" in text
    assert 'le="0.005"' in text
    assert 'le="0.1"' in text
    assert "hafnium_serving_log_backlog" in text


@pytest.mark.skipif(
    shutil.which("javac") is None and os.environ.get("CI") != "true", reason="no javac on this machine"
)
def test_java_client_scores_one_and_a_batch(inference_server, serving, tmp_path):
    subprocess.run(["javac", "-d", str(tmp_path), str(JAVA_SOURCE)], check=True, timeout=120)
    one = tmp_path / "one.json"
    one.write_text(json.dumps(serving.item(0, transaction_id="java-1")))
    batch = tmp_path / "batch.json"
    batch.write_text(
        json.dumps({"items": [serving.item(i, transaction_id=f"java-batch-{i}") for i in range(10)]})
    )
    result = subprocess.run(
        ["java", "-cp", str(tmp_path), "ScoringContract", inference_server, serving.token, serving.name,
         str(one), str(batch), "10"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    assert result.stdout.startswith("OK one score=")
    assert hotpath.redis_client().xlen(hotpath.LOG_STREAM) >= 11
