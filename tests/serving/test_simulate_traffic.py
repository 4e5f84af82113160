"""simulate_traffic against a small scoring server started by the test (real HTTP on loopback)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from apps.training.synthetic import FEATURES
from hafnium_portal.embedded_redis import free_port

TOKEN = "s3cret-scoring-token"


class ScoringServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), ScoringHandler)
        self.received: list[tuple[str, dict, dict]] = []
        self.lock = threading.Lock()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


class ScoringHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the simulator expects

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.received.append((self.path, dict(self.headers), body))
        if self.headers.get("Authorization") != f"Token {TOKEN}":
            return self._answer(401, {"detail": "bad token"})
        features = body["features"]
        missing = [name for name in FEATURES if name not in features]
        if missing:
            return self._answer(400, {"features": {missing[0]: ["This field is required."]}})
        if not isinstance(features["amount"], int | float):
            return self._answer(400, {"features": {"amount": ["A number is required."]}})
        decision = "review" if features["ip_risk_score"] > 0.5 else "approve"
        answer = {"transaction_id": body["transaction_id"], "score": 0.1, "decision": decision}
        return self._answer(200, {**answer, "fallback": features["channel"] == "atm"})

    def _answer(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    scoring = ScoringServer()
    thread = threading.Thread(target=scoring.serve_forever, daemon=True)
    thread.start()
    yield scoring
    scoring.shutdown()
    scoring.server_close()


@pytest.fixture
def token_file(tmp_path):
    path = tmp_path / "scoring-token.txt"
    path.write_text(TOKEN + "\n")
    return path


def _simulate(capsys, **options):
    call_command("simulate_traffic", model="fraud-scorer", **options)
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_plays_the_backend_with_valid_transactions_and_summarises(server, token_file, capsys):
    summary = _simulate(capsys, rps=40, duration=1, url=server.url, token_file=str(token_file))

    assert summary["scheduled"] == summary["sent"] == 40
    assert summary["ok"] == 40
    assert summary["errors"] == summary["rejected"] == 0
    assert summary["p50_ms"] is not None
    assert summary["p99_ms"] >= summary["p50_ms"]
    assert sum(summary["decisions"].values()) == 40
    assert len(server.received) == 40
    paths = {path for path, _, _ in server.received}
    assert paths == {"/api/v1/models/fraud-scorer/score"}
    _, headers, body = server.received[0]
    assert headers["Content-Type"] == "application/json"
    assert set(body) == {"transaction_id", "entity_id", "features", "embedding"}
    assert len(body["embedding"]) == 16
    assert all(isinstance(v, float) for v in body["embedding"])
    assert list(body["features"]) == FEATURES
    assert isinstance(body["features"]["hour"], int)
    assert isinstance(body["features"]["merchant_category"], str)
    assert len({b["transaction_id"] for _, _, b in server.received}) == 40


def test_fail_rate_sends_bad_requests_that_count_as_rejected(server, token_file, capsys):
    summary = _simulate(capsys, rps=50, duration=1, fail_rate=0.3, url=server.url, token_file=str(token_file))

    assert 5 <= summary["bad_sent"] <= 25
    assert summary["bad_rejected"] == summary["bad_sent"] == summary["rejected"]
    assert summary["ok"] == 50 - summary["bad_sent"]
    assert summary["statuses"]["400"] == summary["bad_sent"]


def test_drift_shifts_the_transactions(server, token_file, capsys):
    _simulate(capsys, rps=100, duration=1, url=server.url, token_file=str(token_file))
    reference = [body["features"]["ip_risk_score"] for _, _, body in server.received]
    server.received.clear()
    _simulate(capsys, rps=100, duration=1, drift=1.0, url=server.url, token_file=str(token_file))
    shifted = [body["features"]["ip_risk_score"] for _, _, body in server.received]
    assert sum(shifted) / len(shifted) > 1.5 * sum(reference) / len(reference)


def test_a_server_that_is_down_is_counted_as_errors_not_a_crash(token_file, capsys):
    summary = _simulate(
        capsys, rps=20, duration=0.5, url=f"http://127.0.0.1:{free_port()}", token_file=str(token_file)
    )
    assert summary["sent"] == 10
    assert summary["errors"] == 10
    assert summary["statuses"] == {"no answer": 10}
    assert summary["p50_ms"] is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"url": "http://10.1.2.3:8001"}, "not a loopback address"),
        ({"url": "http://scoring.example.com"}, "not a loopback address"),
        ({"url": "ftp://127.0.0.1/"}, "must be an http"),
        ({"rps": 0}, "--rps must be in"),
        ({"duration": 4000}, "--duration must be in"),
        ({"rps": 2000, "duration": 3600}, "at most 200000"),
        ({"fail_rate": 1.5}, "--fail-rate must be in"),
        ({"drift": -0.1}, "--drift must be in"),
        ({"token_file": "/nonexistent/token.txt"}, "token file /nonexistent/token.txt does not exist"),
    ],
)
def test_bad_options_are_clear_cli_errors(options, message, token_file):
    arguments = {
        "rps": 10,
        "duration": 1,
        "url": "http://127.0.0.1:8001",
        "token_file": str(token_file),
        **options,
    }
    with pytest.raises(CommandError, match=message):
        call_command("simulate_traffic", model="fraud-scorer", **arguments)


def test_ipv6_loopback_is_loopback_and_remote_needs_allow_remote(token_file, capsys):
    dead = free_port()
    summary = _simulate(capsys, rps=10, duration=0.2, url=f"http://[::1]:{dead}", token_file=str(token_file))
    assert summary["errors"] == summary["sent"] == 2
    # TEST-NET-1 (RFC 5737) is never routed: the request fails within its timeout, the run ends.
    remote = "http://192.0.2.1:8001"
    with pytest.raises(CommandError, match="not a loopback address"):
        call_command(
            "simulate_traffic", model="m", rps=5, duration=0.2, url=remote, token_file=str(token_file)
        )
    summary = _simulate(
        capsys, rps=5, duration=0.2, url=remote, token_file=str(token_file), allow_remote=True, timeout=0.5
    )
    assert summary["sent"] == 1
    assert summary["errors"] == 1


def test_drift_features_drift_exactly_the_named_features(server, token_file, capsys):
    from apps.monitoring import drift

    def features_sent(**options):
        server.received.clear()
        _simulate(capsys, rps=1000, duration=1, url=server.url, token_file=str(token_file), **options)
        bodies = [body for _, _, body in server.received]
        columns = {name: [body["features"][name] for body in bodies] for name in FEATURES}
        return columns, [body["embedding"] for body in bodies]

    reference, reference_embedding = features_sent(seed=1)
    current, current_embedding = features_sent(seed=2, drift=1.0, drift_features="amount,ip_risk_score")

    results = drift.compare_table(
        {name: np.asarray(values) for name, values in reference.items()},
        {name: np.asarray(values) for name, values in current.items()},
    )
    assert sorted(name for name, result in results.items() if result.verdict == drift.DRIFT) == [
        "amount",
        "ip_risk_score",
    ]
    embedding = drift.compare_embedding(np.asarray(reference_embedding), np.asarray(current_embedding))
    assert embedding.verdict != drift.DRIFT
    _, moved = features_sent(seed=2, drift=1.0, drift_features="merchant_embedding")
    assert drift.compare_embedding(np.asarray(reference_embedding), np.asarray(moved)).verdict == drift.DRIFT


def test_no_embedding_leaves_it_out(server, token_file, capsys):
    _simulate(capsys, rps=10, duration=1, no_embedding=True, url=server.url, token_file=str(token_file))
    assert all("embedding" not in body for _, _, body in server.received)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"drift_features": "amount,wingspan", "drift": 1.0}, "no feature wingspan"),
        ({"drift_features": "amount"}, "--drift-features needs --drift"),
    ],
)
def test_drift_features_are_checked(token_file, options, message):
    with pytest.raises(CommandError, match=message):
        call_command("simulate_traffic", model="fraud-scorer", rps=1, duration=1, token_file=str(token_file),
                     **options)  # fmt: skip
