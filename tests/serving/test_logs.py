"""Prediction logs: Redis stream -> database in batches; a writer killed mid-batch loses and repeats none."""

import os
import signal
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest

from apps.registry.models import RegisteredModel
from apps.serving import hotpath
from apps.serving.logwriter import GROUP, LogWriter
from apps.serving.models import PredictionLog
from apps.training import synthetic
from tests.conftest import ROOT, database_url_for_subprocess

from .conftest import serving_reset


def drain(writer: LogWriter) -> None:
    while writer.step(wait=False):
        pass


@pytest.mark.django_db
def test_scored_items_are_written_with_typed_features_in_signature_order(serving, scoring_client):
    items = [serving.item(index) for index in range(30)]
    answers = scoring_client({"items": items}).json()["items"]
    drain(LogWriter(hotpath.redis_client(), consumer="test", claim_idle_ms=60_000))

    logs = {log.request_id: log for log in PredictionLog.objects.all()}
    assert set(logs) == {answer["request_id"] for answer in answers}
    first = logs[answers[0]["request_id"]]
    assert first.transaction_id == "t-0"
    assert first.entity_id == "c-0"
    assert first.version == 1
    assert first.score == pytest.approx(answers[0]["score"])
    numeric = [name for name in synthetic.FEATURES if name not in synthetic.CATEGORICAL_FEATURES]
    signature_numeric = [n for n in (f for f in serving.rows[0]) if n in numeric]
    assert first.numeric_features == pytest.approx([float(serving.rows[0][n]) for n in signature_numeric])
    assert first.categorical_features == [serving.rows[0][n] for n in synthetic.CATEGORICAL_FEATURES]
    matrix = np.array(PredictionLog.objects.order_by("id").values_list("numeric_features", flat=True))
    assert matrix.shape == (30, len(signature_numeric))
    assert hotpath.redis_client().xlen(hotpath.LOG_STREAM) == 0, "written entries leave the stream"


def _entry(model_id: int, index: int) -> dict:
    return {
        "request_id": uuid.uuid4().hex,
        "transaction_id": f"kill-{index}",
        "entity_id": f"c-{index % 50}",
        "model_id": model_id,
        "version": 1,
        "numeric": f"[{index}.0, 1.5, 2.5]",
        "categorical": '["grocery", "pos"]',
        "score": "0.25",
        "decision": "approve",
        "fallback": "0",
        "latency_ms": "1.5",
        "status": "ok",
        "created_at": str(int(time.time() * 1000)),
    }


def _writer(consumer: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "serving_log_writer", "--batch", "500", "--consumer", consumer, *extra],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url_for_subprocess()},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _poll(predicate, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail("timed out")


@pytest.mark.django_db(transaction=True)
def test_a_writer_killed_mid_batch_loses_and_doubles_nothing():
    serving_reset()
    model = RegisteredModel.objects.create(name=f"logs-{uuid.uuid4().hex[:6]}")
    client = hotpath.redis_client()
    sent = 20_000
    pipe = client.pipeline(transaction=False)
    for index in range(sent):
        pipe.xadd(hotpath.LOG_STREAM, _entry(model.pk, index))
    pipe.execute()

    first = _writer("writer-a")
    try:
        _poll(lambda: PredictionLog.objects.filter(model=model).exists())
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    written_before = PredictionLog.objects.filter(model=model).count()
    pending_at_kill = client.xpending(hotpath.LOG_STREAM, GROUP)["pending"]
    assert written_before < sent, "killed before the end"

    second = _writer("writer-b", "--claim-idle-ms", "500")
    try:
        _poll(lambda: PredictionLog.objects.filter(model=model).count() == sent and not
              client.xpending(hotpath.LOG_STREAM, GROUP)["pending"])  # fmt: skip
    finally:
        second.terminate()
        second.wait(timeout=30)

    logs = PredictionLog.objects.filter(model=model)
    assert logs.count() == sent
    assert logs.values("transaction_id").distinct().count() == sent
    assert client.xlen(hotpath.LOG_STREAM) == 0
    print(f"written before the kill: {written_before}, pending at the kill: {pending_at_kill}")
    serving_reset()
