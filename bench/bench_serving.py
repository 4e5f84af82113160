"""The scoring service under open-loop load, ours against `mlflow models serve`, on the same registered model.

One demo model (synthetic transactions, apps.training.services.model_train: registered, its fast scorer
compiled at registration) is served, one after the other in one run, by:

- ours: gunicorn on hafnium_portal.inference_wsgi (N workers), a throwaway Redis, prediction logging on
  and `serving_log_writer` running, the API as the Java backend calls it (token, one transaction);
- mlflow: `mlflow models serve --env-manager local -w N` on the version's logged model (`/invocations`,
  one `dataframe_records` row; MLflow's pyfunc answers the class, ours the probability).

Each is offered 50, 100, 200, 400, 600 and 800 requests per second for 30 s each (open loop: request i
leaves at start + i / rps whatever came back before, and its latency counts from then, so a server that
falls behind is not hidden by the client slowing down). Reported per load: p50 and p99 latency, the
error rate (anything but a 200, timeouts and requests the client could not send in time included) and
the rate achieved; then the highest load each sustained (p99 <= 100 ms, errors <= 0.1%: the service's
SLOs) and the ratio. Before the load, both answer the same 200 transactions: MLflow's class must be ours
thresholded at 0.5 (else the bench fails, exit 1: they would not be serving the same model).

    python bench/bench_serving.py [--duration 30] [--loads 50 100 200 400 600 800] [--workers 2]
                                  [--quick] [--ours-only]

Nothing leaves the machine: a temporary SQLite database, MLflow store and Redis, removed at exit.
"""

import argparse
import gc
import http.client
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # what the inference workers run with (issue 8)

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _setup import ROOT, machine, mlflow_store_setup, portal_setup

LOADS = [50, 100, 200, 400, 600, 800]
P99_SLO_MS = 100.0
ERROR_SLO = 0.001
MODEL = "fraud-scorer"
PARITY_ROWS = 200


@dataclass
class Run:
    offered: float
    duration: float
    statuses: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    sent: int = 0
    scheduled: int = 0
    elapsed: float = 0.0

    @property
    def ok(self) -> int:
        return self.statuses.get("200", 0)

    @property
    def error_rate(self) -> float:
        return 1.0 - self.ok / self.scheduled if self.scheduled else 1.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("inf")

    @property
    def sustained(self) -> bool:
        return self.percentile(99) <= P99_SLO_MS and self.error_rate <= ERROR_SLO


def open_loop(
    port: int, path: str, bodies: list[bytes], rps: float, headers: dict, timeout: float = 5.0
) -> Run:
    """Send bodies[i] at start + i / rps on keep-alive connections; latency from the scheduled time."""
    run = Run(offered=rps, duration=len(bodies) / rps)
    lock, local = threading.Lock(), threading.local()

    def send(body: bytes, scheduled: float) -> None:
        status = None
        for attempt in range(2):  # a kept-alive connection the server closed: reconnect once
            connection = getattr(local, "connection", None)
            if connection is None:
                connection = local.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
            try:
                connection.request("POST", path, body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                status = response.status
                break
            except (OSError, http.client.HTTPException):
                connection.close()
                local.connection = None
                if attempt == 1 or time.monotonic() - scheduled > timeout:
                    break
        latency = (time.monotonic() - scheduled) * 1000
        with lock:
            run.sent += 1
            key = str(status) if status is not None else "no answer"
            run.statuses[key] = run.statuses.get(key, 0) + 1
            if status is not None:
                run.latencies_ms.append(latency)

    pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="load")
    futures, start = [], time.monotonic()
    for i, body in enumerate(bodies):
        scheduled = start + i / rps
        delay = scheduled - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        futures.append(pool.submit(send, body, scheduled))
        run.scheduled += 1
    wait(futures, timeout=timeout + 1.0)
    pool.shutdown(wait=True, cancel_futures=True)  # still queued then: never sent, counted as errors
    run.elapsed = time.monotonic() - start
    return run


def post(
    port: int, path: str, body: dict, headers: dict | None = None, timeout: float = 60.0
) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(
            "POST",
            path,
            body=json.dumps(body),
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


def wait_until(ready, process: subprocess.Popen, log: Path, what: str, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"{what} exited:\n{log.read_text()[-3000:]}")
        try:
            if ready():
                return
        except (OSError, http.client.HTTPException, ValueError):
            pass
        time.sleep(0.5)
    sys.exit(f"{what} did not come up in {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def get_json(port: int, path: str):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        return response.status, (json.loads(body) if body.startswith((b"{", b"[")) else None)
    finally:
        connection.close()


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def start(command: list[str], env: dict, log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def transactions(count: int, seed: int) -> list[dict]:
    from apps.training.synthetic import CATEGORICAL_FEATURES, FEATURES, generate_transactions

    frame = generate_transactions(count, seed=seed)
    columns = {name: frame[name].tolist() for name in FEATURES}
    for name in CATEGORICAL_FEATURES:
        columns[name] = [str(value) for value in columns[name]]
    customers = frame["customer_id"].tolist()
    return [
        {"entity_id": f"c-{customers[i]}", "features": {name: columns[name][i] for name in FEATURES}}
        for i in range(count)
    ]


def ours_body(item: dict, transaction_id: str) -> dict:
    return {"transaction_id": transaction_id, **item}


def mlflow_body(item: dict) -> dict:
    return {"dataframe_records": [item["features"]]}


def measure(name, port, path, headers, make_body, loads, duration, seed) -> list[Run]:
    runs = []
    for rps in loads:
        count = max(1, int(rps * duration))
        bodies = [json.dumps(make_body(item, f"{name}-{rps}-{i}")).encode()
                  for i, item in enumerate(transactions(count, seed + int(rps)))]  # fmt: skip
        # The client's own garbage collector stays out of the timed run: a full collection of this
        # process (Django, MLflow, the training data) took 220-240 ms and landed on both servers' p99.
        gc.collect()
        gc.freeze()
        gc.disable()
        try:
            run = open_loop(port, path, bodies, rps, {"Content-Type": "application/json", **headers})
        finally:
            gc.enable()
            gc.unfreeze()
        runs.append(run)
        print(
            f"  {name:6} {rps:>5} rps: p50 {run.percentile(50):8.1f} ms  p99 {run.percentile(99):8.1f} ms  "
            f"errors {run.error_rate * 100:6.2f}%  achieved {run.sent / run.elapsed:6.1f} rps  "
            f"statuses {dict(sorted(run.statuses.items()))}",
            flush=True,
        )
    return runs


def highest_sustained(runs: list[Run]) -> float:
    return max((run.offered for run in runs if run.sustained), default=0.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per load (default 30)")
    parser.add_argument("--loads", type=float, nargs="+", default=LOADS, help="offered requests per second")
    parser.add_argument("--workers", type=int, default=2, help="worker processes of each server (default 2)")
    parser.add_argument("--rows", type=int, default=None, help="training rows of the model (default 40,000)")
    parser.add_argument("--quick", action="store_true", help="10 s per load, 20,000 training rows")
    parser.add_argument("--ours-only", action="store_true", help="only our service (profiling it; no ratio)")
    options = parser.parse_args()
    duration = 10.0 if options.quick and options.duration == 30.0 else options.duration
    rows = options.rows or (20_000 if options.quick else 40_000)

    from hafnium_portal import embedded_redis

    redis_port = embedded_redis.free_port()
    redis_server = embedded_redis.start_background(redis_port)
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
    folder = portal_setup()
    mlflow_store_setup()
    logging.getLogger("celery").setLevel(logging.WARNING)  # the compile task runs in process (eager)
    processes: list[subprocess.Popen] = []
    try:
        return run_bench(options, duration, rows, folder, processes)
    finally:
        for process in processes:
            stop(process)
        redis_server.terminate()
        redis_server.wait(timeout=10)


def run_bench(options, duration: float, rows: int, folder: Path, processes: list) -> int:
    from apps.audit.models import AuditEvent
    from apps.registry.models import ModelVersion, Stage
    from apps.serving.services import scoring_client_create
    from apps.training.services import model_train, synthetic_dataset_create
    from hafnium_portal.embedded_redis import free_port

    print(f"bench_serving: {machine()}, load average {os.getloadavg()[0]:.1f}", flush=True)
    started = time.perf_counter()
    dataset = synthetic_dataset_create(actor=None, rows=rows, seed=1)
    version = model_train(actor=None, model_name=MODEL, dataset=dataset, min_auc=0.5, seed=1).version
    ModelVersion.objects.filter(pk=version.pk).update(stage=Stage.PRODUCTION)
    _, token = scoring_client_create(actor=None, name="bench-java-backend")
    compiled = AuditEvent.objects.filter(
        action="serving.scorer_compiled", object_id=str(version.pk), after__passed=True
    ).exists()
    print(
        f"{MODEL} v{version.version}: trained on {rows:,} rows and registered in "
        f"{time.perf_counter() - started:.0f} s; fast scorer compiled at registration: "
        f"{'yes' if compiled else 'NO'}; {options.workers} workers each; {duration:g} s per load",
        flush=True,
    )

    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = str(ROOT)
    metrics = folder / "prometheus"
    metrics.mkdir()

    # --- ours ---------------------------------------------------------------------------------------
    ours_port = free_port()
    writer_log, ours_log = folder / "writer.log", folder / "gunicorn.log"
    writer_env = {**env, "DJANGO_SETTINGS_MODULE": "hafnium_portal.settings"}
    processes.append(start([sys.executable, "manage.py", "serving_log_writer"], writer_env, writer_log))
    gunicorn = start(
        [sys.executable, "-m", "gunicorn", "-c", "python:hafnium_portal.inference_gunicorn",
         "hafnium_portal.inference_wsgi:application", "--bind", f"127.0.0.1:{ours_port}",
         "--workers", str(options.workers), "--timeout", "120", "--no-control-socket"],
        {**env, "PROMETHEUS_MULTIPROC_DIR": str(metrics)}, ours_log,
    )  # fmt: skip
    processes.append(gunicorn)
    wait_until(lambda: (lambda s, b: s == 200 and not b["warming"])(*get_json(ours_port, "/healthz")),
               gunicorn, ours_log, "gunicorn")  # fmt: skip
    score_path = f"/api/v1/models/{MODEL}/score"
    auth = {"Authorization": f"Token {token}"}
    parity_items = transactions(PARITY_ROWS, seed=7)
    ours_scores = []
    for i, item in enumerate(parity_items):
        status, answer = post(ours_port, score_path, ours_body(item, f"parity-{i}"), auth)
        if status != 200 or answer["fallback"]:
            sys.exit(f"ours did not score the parity rows: {status} {answer}")
        ours_scores.append(answer["score"])
    print("ours (gunicorn inference_wsgi, logging on, log writer running):", flush=True)
    ours = measure("ours", ours_port, score_path, auth, ours_body, options.loads, duration, seed=100)
    stop(gunicorn)
    time.sleep(2)  # let the log writer drain what it can before counting
    backlog = redis_backlog()
    stop(processes[0])
    if options.ours_only:
        print(
            f"highest load sustained: ours {highest_sustained(ours):g} rps; prediction logs left: {backlog}"
        )
        return 0

    # --- mlflow models serve ------------------------------------------------------------------------
    mlflow_port = free_port()
    mlflow_log = folder / "mlflow-serve.log"
    mlflow_server = start(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", version.source_uri,
         "--env-manager", "local", "-w", str(options.workers), "-p", str(mlflow_port), "-h", "127.0.0.1"],
        # MLflow execs `uvicorn` by name: the venv's, as a process started from the venv would find it.
        {**env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"}, mlflow_log,
    )  # fmt: skip
    processes.append(mlflow_server)
    wait_until(
        lambda: get_json(mlflow_port, "/ping")[0] == 200, mlflow_server, mlflow_log, "mlflow models serve"
    )
    mlflow_labels = []
    for item in parity_items:
        status, answer = post(mlflow_port, "/invocations", mlflow_body(item))
        if status != 200:
            sys.exit(f"mlflow did not score the parity rows: {status} {answer}")
        mlflow_labels.append(int(answer["predictions"][0]))
    disagree = [
        i for i, (score, label) in enumerate(zip(ours_scores, mlflow_labels, strict=True))
        if int(score > 0.5) != label and abs(score - 0.5) > 1e-6
    ]  # fmt: skip
    print("mlflow (mlflow models serve --env-manager local):", flush=True)
    theirs = measure("mlflow", mlflow_port, "/invocations", {}, lambda item, _: mlflow_body(item),
                     options.loads, duration, seed=100)  # fmt: skip
    stop(mlflow_server)

    print()
    print("| offered rps | ours p50 ms | ours p99 ms | ours errors | mlflow p50 ms | mlflow p99 ms "
          "| mlflow errors | p99 mlflow / ours |")  # fmt: skip
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for mine, other in zip(ours, theirs, strict=True):
        ratio = other.percentile(99) / mine.percentile(99) if mine.latencies_ms else float("nan")
        print(
            f"| {mine.offered:g} | {mine.percentile(50):.1f} | {mine.percentile(99):.1f} | "
            f"{mine.error_rate * 100:.2f}% | {other.percentile(50):.1f} | {other.percentile(99):.1f} | "
            f"{other.error_rate * 100:.2f}% | {ratio:.2f} |"
        )
    best_ours, best_theirs = highest_sustained(ours), highest_sustained(theirs)
    ratio = f"{best_ours / best_theirs:.2f}" if best_theirs else "n/a (mlflow sustained none)"
    print(
        f"\nhighest load sustained (p99 <= {P99_SLO_MS:g} ms, errors <= {ERROR_SLO:.1%}): "
        f"ours {best_ours:g} rps, mlflow {best_theirs:g} rps; ours / mlflow {ratio}"
    )
    print(f"prediction logs left in the stream when ours stopped: {backlog}")
    print(
        f"parity: {PARITY_ROWS - len(disagree)} of {PARITY_ROWS} transactions agree "
        "(mlflow's class = ours > 0.5)"
    )
    if disagree:
        print(f"FAILED: the two servers disagree on rows {disagree[:10]}", file=sys.stderr)
        return 1
    return 0


def redis_backlog() -> int:
    import redis

    from apps.serving.hotpath import LOG_STREAM

    return int(redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=5).xlen(LOG_STREAM))


if __name__ == "__main__":
    sys.exit(main())
