"""The scoring hot path: one pipelined Redis read, no database query, the log written off the request.

A request reads, in one round trip, the config version, the routing table of its environment, the
cached answers of its transactions, Redis' clock and the breakers of the versions it may call (those
of the table it saw last, and the Production version). Each version's breaker decides from that read
whether the model or the rules answer (a probe due after the reset time costs one more trip: the
atomic lease); then one pipelined write caches the answers and appends the prediction logs (and
breaker events) to their Redis streams, where `serving_log_writer` takes them to the database.

Two environments: production (the routing table, else the Production version) and staging (the
staging table only; nothing answers without one), each with its own clients (`serving.score`,
`serving.score_staging`), response cache and routing table. With Redis down the
request is still answered: no cache, the breakers fall back to their per-process state, and the logs
wait in a bounded buffer of the process until Redis is back.
"""

import json
import logging
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field

import redis
from django.conf import settings

from . import config, metrics, router
from .config import ModelConfig, Snapshot, VersionConfig
from .models import decision_for
from .scorers import ScorerLoadFailed, ScorerLoading, pool
from .validation import InvalidRequest, parse_batch

log = logging.getLogger(__name__)

LOG_STREAM = "hafnium:serving:log"
EVENT_STREAM = "hafnium:serving:events"
ROUTES_KEY = "hafnium:serving:routes:{}"
STAGING_ROUTES_KEY = "hafnium:serving:staging-routes:{}"
RESPONSE_KEY = "hafnium:serving:response:{}:{}"
STAGING_RESPONSE_KEY = "hafnium:serving:staging-response:{}:{}"
PRODUCTION, STAGING = "production", "staging"
ENVIRONMENTS = (PRODUCTION, STAGING)
BREAKER_KEY = "hafnium:serving:breaker:{}:{}"


class NotFound(Exception):
    pass


class Unavailable(Exception):
    pass


class Unauthenticated(Exception):
    pass


class Forbidden(Exception):
    pass


# --- Redis, with a short memory of being down ----------------------------------------------------

_client: redis.Redis | None = None
_down_until = 0.0
_client_lock = threading.Lock()


def redis_client() -> redis.Redis:
    global _client
    if _client is None:
        with _client_lock:
            if _client is None:
                timeout = settings.SERVING_REDIS_TIMEOUT
                _client = redis.Redis.from_url(
                    settings.REDIS_URL,
                    socket_connect_timeout=timeout,
                    socket_timeout=timeout,
                    health_check_interval=30,
                )
    return _client


def reset_redis() -> None:
    """Forget the connection pool (tests that move Redis)."""
    global _client, _down_until
    with _client_lock:
        _client, _down_until = None, 0.0


def _redis_or_none() -> redis.Redis | None:
    return None if time.monotonic() < _down_until else redis_client()


def _redis_failed(exc: Exception) -> None:
    # A Redis that is down costs one failed attempt per second, not one per request.
    global _down_until
    _down_until = time.monotonic() + 1.0
    log.warning("Redis unavailable on the scoring path: %s", exc)


def redis_available() -> bool:
    return time.monotonic() >= _down_until


# --- breakers ------------------------------------------------------------------------------------


def breaker_for(model: ModelConfig, version: int, client: redis.Redis | None, events: list):
    """The version's breaker for this request; its transitions go to `events` (then to the stream)."""
    from .breaker import Breaker, breaker_key

    def on_transition(key, old, new):
        events.append({"from_state": old, "to_state": new, "version": version, "reason": ""})

    return Breaker(
        client,
        breaker_key(model.name, version),
        failures=int(model.policy["breaker_failures"]),
        reset_after=float(model.policy["breaker_reset_after"]),
        on_transition=on_transition,
    )


# --- rules ---------------------------------------------------------------------------------------


def rules_answer(model: ModelConfig, features: dict) -> tuple[float, str]:
    from .rules import score_rules

    score, decision, _ = score_rules(model.rules, features)
    return float(score), str(decision)


# --- logs waiting for Redis ----------------------------------------------------------------------

_pending_logs: deque = deque(maxlen=10_000)
_pending_events: deque = deque(maxlen=1_000)


def _epoch_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Scored:
    item: dict
    version: int
    answer: dict | None = None
    cached: bool = False


@dataclass
class Read:
    """What the request's one round trip brought back (all empty when Redis is down)."""

    config_version: bytes | None = None
    routes: dict = field(default_factory=dict)
    cached: list = field(default_factory=list)
    breakers: dict[int, list] = field(default_factory=dict)
    now_ms: int | None = None


# Per (model, environment): the versions of the routing table this process saw last, whose breakers
# the next request reads in its round trip (only models the config knows: the URL cannot grow it).
_last_routed: dict[tuple[str, str], frozenset[int]] = {}


def _candidates(model_name: str, environment: str) -> list[int]:
    """The versions a request may call, as far as this process knows before reading."""
    numbers = set(_last_routed.get((model_name, environment), ()))
    snapshot = config.peek()
    model = snapshot.models.get(model_name) if snapshot is not None else None
    if environment == PRODUCTION and model is not None and model.production is not None:
        numbers.add(model.production)
    return sorted(numbers)


def _routes_key(model_name: str, environment: str) -> str:
    return (STAGING_ROUTES_KEY if environment == STAGING else ROUTES_KEY).format(model_name)


def _response_key(model_name: str, environment: str, transaction_id: str) -> str:
    key = STAGING_RESPONSE_KEY if environment == STAGING else RESPONSE_KEY
    return key.format(model_name, transaction_id)


def _read(client: redis.Redis | None, model_name: str, environment: str, transaction_ids: list[str]) -> Read:
    """The one round trip: config version, routing table, Redis' clock, breakers, cached answers."""
    if client is None:
        return Read(cached=[None] * len(transaction_ids))
    from .breaker import breaker_key, queue_state_read

    candidates = _candidates(model_name, environment)
    pipe = client.pipeline(transaction=False)
    pipe.get(config.VERSION_KEY)
    pipe.hgetall(_routes_key(model_name, environment))
    pipe.time()
    for number in candidates:
        queue_state_read(pipe, breaker_key(model_name, number))
    if transaction_ids:
        pipe.mget([_response_key(model_name, environment, t) for t in transaction_ids])
    try:
        result = pipe.execute()
    except redis.RedisError as exc:
        _redis_failed(exc)
        return Read(cached=[None] * len(transaction_ids))
    seconds, micros = result[2]
    breakers = dict(zip(candidates, result[3 : 3 + len(candidates)], strict=True))
    cached = result[-1] if transaction_ids else []
    return Read(result[0], result[1], cached, breakers, int(seconds) * 1000 + int(micros) // 1000)


def _transaction_ids(body) -> list[str]:
    items = body.get("items") if isinstance(body, dict) else None
    if isinstance(items, list):
        candidates = [item.get("transaction_id") if isinstance(item, dict) else None for item in items]
    else:
        candidates = [body.get("transaction_id")] if isinstance(body, dict) else []
    return [c if isinstance(c, str) and c and "\x00" not in c and len(c) <= 200 else "" for c in candidates]


def config_now() -> Snapshot:
    """The config snapshot, checked against Redis' version (one GET), for paths off the scoring hot path."""
    client = _redis_or_none()
    version = None
    if client is not None:
        try:
            version = client.get(config.VERSION_KEY)
        except redis.RedisError as exc:
            _redis_failed(exc)
            client = None
    return config.current(version, client)


def authenticate(snapshot: Snapshot, authorization: str, environment: str = PRODUCTION):
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "token" or not key.strip():
        raise Unauthenticated("Authentication credentials were not provided.")
    client = snapshot.clients.get(config.token_digest(key.strip()))
    if client is None:
        raise Unauthenticated("Invalid token.")
    if environment == STAGING and not client.can_score_staging:
        raise Forbidden("This token may not call the staging environment of the scoring API.")
    if environment != STAGING and not client.can_score:
        raise Forbidden("This token may not call the scoring API.")
    return client


def score(*, model_name: str, body, authorization: str, environment: str = PRODUCTION) -> tuple[dict, dict]:
    """Answer a scoring request; returns (response body, context for the caller's metrics).

    Raises Unauthenticated, Forbidden, NotFound, InvalidRequest or Unavailable.
    """
    started = time.perf_counter()
    if environment not in ENVIRONMENTS:
        raise InvalidRequest({"environment": ["production or staging."]})
    transaction_ids = _transaction_ids(body)
    client = _redis_or_none()
    read = _read(client, model_name, environment, transaction_ids)
    if client is not None and not redis_available():
        client = None
    snapshot = config.current(read.config_version, client)
    authenticate(snapshot, authorization, environment)
    model = snapshot.models.get(model_name)
    if model is None:
        raise NotFound(f"No model named {model_name!r}.")
    table = {v: w for v, w in router.parse_table(read.routes).items() if v in model.versions}
    if client is not None:
        _last_routed[(model.name, environment)] = frozenset(table)
    default = model.production if environment == PRODUCTION else None

    def version_of(item) -> VersionConfig:
        entity = item.get("entity_id") if isinstance(item, dict) else None
        key = entity if isinstance(entity, str) and entity else str(item.get("transaction_id", ""))
        number = router.choose_version(table, default, key)
        if number is None or number not in model.versions:
            if environment == STAGING:
                raise Unavailable(f"No version of {model_name} answers in staging.")
            raise Unavailable(f"No version of {model_name} is in Production.")
        return model.versions[number]

    items, is_batch = parse_batch(body, lambda item: version_of(item).features, settings.SERVING_MAX_BATCH)
    scored = []
    for index, item in enumerate(items):
        hit = read.cached[index] if index < len(read.cached) else None
        if hit is not None:
            try:
                answer = json.loads(hit)
            except ValueError:
                answer = None
            if answer is not None:
                scored.append(Scored(item, answer["version"], answer, cached=True))
                continue
        scored.append(Scored(item, version_of(item).number))

    logs, events = [], []
    by_version: dict[int, list[Scored]] = {}
    for entry in scored:
        if not entry.cached:
            by_version.setdefault(entry.version, []).append(entry)
    for number, group in by_version.items():
        version = model.versions[number]
        breaker = breaker_for(model, number, client, events)
        state = breaker.allow_read(read.breakers.get(number), read.now_ms)
        _score_version(model, version, group, logs, events, started, breaker, state, environment)
    for entry in scored:
        if entry.cached:
            metrics.REQUESTS.labels(model.name, str(entry.version), "cached").inc()

    _write(client, model.name, environment, [e for e in scored if not e.cached], logs, events)
    metrics.LATENCY.labels(model.name).observe(time.perf_counter() - started)
    answers = [entry.answer for entry in scored]
    return ({"items": answers} if is_batch else answers[0]), {"model": model.name}


def _score_version(
    model: ModelConfig,
    version: VersionConfig,
    group: list[Scored],
    logs: list,
    events: list,
    started: float,
    breaker,
    state: str,
    environment: str,
) -> None:
    label = str(version.number)
    metrics.BREAKER_STATE.labels(model.name, label).set(metrics.BREAKER_VALUES.get(state, 0))
    scores, reason, status = None, "", "ok"
    if state == "open":
        reason = "breaker_open"
    else:
        try:
            model_started = time.perf_counter()
            scorer = pool.get(model.name, version)
            scores = scorer.predict_proba([entry.item["features"] for entry in group])
            elapsed_ms = (time.perf_counter() - model_started) * 1000
            if len(scores) != len(group):
                raise RuntimeError(f"the scorer gave {len(scores)} scores for {len(group)} rows")
            scores = [float(s) for s in scores]
            if elapsed_ms > model.policy["latency_budget_ms"] * max(1, len(group) // 100 + 1):
                _failure(breaker, model, version, f"{elapsed_ms:.0f} ms over the budget", events)
            else:
                _success(breaker, model, version)
        except ScorerLoading:
            # Not the model's failure: a probe's lease runs out and another request probes.
            reason = "loading"
        except ScorerLoadFailed as exc:
            reason, status = "load_failed", "error"
            _failure(breaker, model, version, str(exc), events)
        except Exception as exc:  # the model's own error: counted, answered by the rules
            reason, status = "model_error", "error"
            log.exception("model error in %s v%s", model.name, version.number)
            _failure(breaker, model, version, f"{type(exc).__name__}: {exc}", events)
    now = _epoch_ms()
    for index, entry in enumerate(group):
        if scores is not None:
            value = scores[index]
            decision = decision_for(value, model.policy["review_at"], model.policy["decline_at"])
            fallback = False
        else:
            value, decision = rules_answer(model, entry.item["features"])
            fallback = True
            metrics.FALLBACKS.labels(model.name, label, reason).inc()
        outcome = "error" if status == "error" else ("fallback" if fallback else "ok")
        metrics.REQUESTS.labels(model.name, label, outcome).inc()
        entry.answer = {
            "request_id": uuid.uuid4().hex,
            "transaction_id": entry.item["transaction_id"],
            "model": model.name,
            "version": version.number,
            "score": value,
            "decision": str(decision),
            "fallback": fallback,
        }
        features = entry.item["features"]
        logs.append(
            {
                "request_id": entry.answer["request_id"],
                "transaction_id": entry.item["transaction_id"],
                "entity_id": entry.item["entity_id"],
                "model_id": model.id,
                "version": version.number,
                "numeric": json.dumps([_number(features.get(name)) for name in version.numeric]),
                "categorical": json.dumps([features.get(name) for name in version.categorical]),
                "score": repr(value),
                "decision": str(decision),
                "fallback": "1" if fallback else "0",
                "latency_ms": f"{(time.perf_counter() - started) * 1000:.3f}",
                "status": "fallback" if fallback and status == "ok" else status,
                "created_at": str(now),
                "environment": environment,
                "embedding": json.dumps(embedding) if (embedding := entry.item.get("embedding")) else "",
            }
        )


def _number(value):
    if value is None:
        return None
    return float(value)


def _failure(breaker, model, version, reason: str, events: list) -> None:
    before = len(events)
    if breaker.record_failure():
        metrics.BREAKER_STATE.labels(model.name, str(version.number)).set(2)
    for event in events[before:]:  # the transition says what failed
        event["reason"] = reason


def _success(breaker, model, version) -> None:
    breaker.record_success()
    metrics.BREAKER_STATE.labels(model.name, str(version.number)).set(0)


def _write(
    client, model_name: str, environment: str, fresh: list[Scored], logs: list[dict], events: list[dict]
) -> None:
    """One pipelined write: cache the answers, append the logs and events, read the backlog."""
    now = _epoch_ms()
    event_entries = [
        {
            "model": model_name,
            "version": str(event["version"]),
            "from_state": event["from_state"],
            "to_state": event["to_state"],
            "reason": (event["reason"] or "the probe succeeded")[:500],
            "at": str(now),
            "host": _host(),
        }
        for event in events
    ]
    if client is None:
        _pending_logs.extend(logs)
        _pending_events.extend(event_entries)
        return
    ttl = settings.SERVING_RESPONSE_TTL
    maxlen = settings.SERVING_LOG_STREAM_MAXLEN
    pipe = client.pipeline(transaction=False)
    for entry in fresh:
        pipe.set(
            _response_key(model_name, environment, entry.item["transaction_id"]),
            json.dumps(entry.answer, separators=(",", ":")),
            ex=ttl,
            nx=True,
        )
    backlog_logs = list(_pending_logs)
    backlog_events = list(_pending_events)
    for fields in backlog_logs + logs:
        pipe.xadd(LOG_STREAM, fields, maxlen=maxlen, approximate=True)
    for fields in backlog_events + event_entries:
        pipe.xadd(EVENT_STREAM, fields, maxlen=10_000, approximate=True)
    pipe.xlen(LOG_STREAM)
    try:
        result = pipe.execute()
    except redis.RedisError as exc:
        _redis_failed(exc)
        _pending_logs.extend(logs)
        _pending_events.extend(event_entries)
        return
    for _ in backlog_logs:
        _pending_logs.popleft()
    for _ in backlog_events:
        _pending_events.popleft()
    metrics.LOG_BACKLOG.set(result[-1])


_hostname = None


def _host() -> str:
    global _hostname
    if _hostname is None:
        import os
        import socket

        _hostname = f"{socket.gethostname()}:{os.getpid()}"
    return _hostname
