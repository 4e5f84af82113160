"""Circuit breaker per (model, version), shared by every inference process through Redis. No Django here.

    closed --(N consecutive failures)--> open --(reset_after elapsed)--> one probe at a time
       ^                                  ^                                  |
       +----------- probe succeeds -------+------- probe fails (re-open) ----+

`allow()` answers "closed" (call the model), "open" (do not: answer with the rules-only scorer) or
"probe" (call the model: this caller is the one trial after the reset time). The caller then reports
`record_success()` or `record_failure()`, which say whether they changed the state, and every change
also goes to the optional `on_transition(key, old, new)` callback (closed -> open,
half_open -> open after a failed probe, half_open -> closed), so the caller can audit and alert.

In Redis the state is one hash per key, changed only by Lua scripts (atomic: two processes racing
cannot open twice or probe twice), with times taken from Redis' own clock (`TIME`), so processes
agree on when the reset is due. The probe is a `SET NX PX` lease: if the prober dies without
reporting, the lease expires after `probe_timeout` and another caller may probe. The hot path spares
itself the allow script's round trip: it reads the state in its own pipeline (`queue_state_read`) and calls
`allow_read`, which runs the script only when a probe is due.

When Redis fails (down, timeout) the breaker carries on in-process: a per-process breaker with the
same rules and `clock`, kept per key for the life of the process, until Redis answers again.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

log = logging.getLogger(__name__)

Allowance = Literal["closed", "probe", "open"]
State = Literal["closed", "open", "half_open"]
KEY_PREFIX = "hafnium:breaker:"
# The hash fields `queue_state_read` fetches, in the order `allow_read` expects them.
STATE_FIELDS = ("state", "failures", "opened_at")
# Redis forgets a breaker nobody has touched for this long (a retired version's).
IDLE_EXPIRY_MS = 7 * 24 * 3600 * 1000

# KEYS: state hash, probe lease. ARGV: reset_ms, probe_ms, token, idle_ms.
# Returns {allowance, failures}.
_ALLOW = """
local state = redis.call('HGET', KEYS[1], 'state')
local failures = tonumber(redis.call('HGET', KEYS[1], 'failures') or '0')
if state ~= 'open' then return {'closed', failures} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local opened = tonumber(redis.call('HGET', KEYS[1], 'opened_at') or '0')
if now - opened < tonumber(ARGV[1]) then return {'open', failures} end
if redis.call('SET', KEYS[2], ARGV[3], 'NX', 'PX', ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return {'probe', failures}
end
return {'open', failures}
"""

# KEYS: state hash, probe lease. ARGV: threshold, token ('' if not probing), idle_ms.
# Returns the transition: '' (none), 'opened' (closed -> open) or 'reopened' (failed probe).
_FAILURE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'open' then
  if ARGV[2] ~= '' and redis.call('GET', KEYS[2]) == ARGV[2] then
    redis.call('HSET', KEYS[1], 'opened_at', now)
    redis.call('HINCRBY', KEYS[1], 'failures', 1)
    redis.call('DEL', KEYS[2])
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
    return 'reopened'
  end
  return ''
end
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if failures >= tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', now)
  redis.call('DEL', KEYS[2])
  return 'opened'
end
return ''
"""

# KEYS: state hash, probe lease. ARGV: token ('' if not probing), idle_ms.
# Returns 'closed' when a probe closed the breaker, else ''.
_SUCCESS = """
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'open' then
  if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) == ARGV[1] then
    redis.call('HSET', KEYS[1], 'state', 'closed', 'failures', 0)
    redis.call('HDEL', KEYS[1], 'opened_at')
    redis.call('DEL', KEYS[2])
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return 'closed'
  end
  return ''
end
if redis.call('HGET', KEYS[1], 'failures') and redis.call('HGET', KEYS[1], 'failures') ~= '0' then
  redis.call('HSET', KEYS[1], 'failures', 0)
end
return ''
"""

# KEYS: state hash, probe lease. ARGV: reset_ms. Returns {state, failures, opened_ms_ago or -1}.
_STATE = """
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
local failures = tonumber(redis.call('HGET', KEYS[1], 'failures') or '0')
if state ~= 'open' then return {'closed', failures, -1} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ago = now - tonumber(redis.call('HGET', KEYS[1], 'opened_at') or '0')
if ago >= tonumber(ARGV[1]) then return {'half_open', failures, ago} end
return {'open', failures, ago}
"""


def breaker_key(model: str, version: int | str) -> str:
    return f"{model}:{version}"


def queue_state_read(pipe, key: str) -> None:
    """Queue the read of a breaker's state on the caller's pipeline (the caller queues TIME too).

    The hot path reads the breakers of the versions it may call in the same round trip as the rest of
    what a request needs, then decides with `Breaker.allow_read`.
    """
    pipe.hmget(KEY_PREFIX + key, *STATE_FIELDS)


@dataclass(frozen=True)
class BreakerStatus:
    """What pages and /metrics show. `shared` is False when Redis failed and this process's view counts."""

    state: State
    failures: int
    opened_seconds_ago: float | None
    shared: bool


class _LocalState:
    """The per-process breaker of one key, used while Redis fails."""

    def __init__(self):
        self.lock = threading.Lock()
        self.state = "closed"
        self.failures = 0
        self.opened_at = 0.0
        self.probe_token: str | None = None
        self.probe_until = 0.0


_local_states: dict[str, _LocalState] = {}
_local_states_lock = threading.Lock()
# Per Redis server: until when this process leaves it alone after it failed (time.monotonic()).
_redis_down_until: dict[tuple, float] = {}


def _local_state(key: str) -> _LocalState:
    with _local_states_lock:
        return _local_states.setdefault(key, _LocalState())


class Breaker:
    """The breaker of one key (see the module docstring). Cheap to build: one per request is fine.

    `redis` is a redis-py client created with socket timeouts (a down Redis must cost milliseconds),
    or None for the per-process breaker only. `failures` consecutive failures open it; after
    `reset_after` seconds one probe at a time is allowed; a probe that neither succeeds nor fails
    within `probe_timeout` seconds loses its lease. `clock` times the per-process breaker. After Redis
    fails, this process uses its own breaker for `redis_retry_after` seconds before asking Redis again
    (build the client without retries, e.g. `retry=Retry(NoBackoff(), 0)`, for the fastest fallback).
    """

    def __init__(
        self,
        redis,
        key: str,
        *,
        failures: int = 5,
        reset_after: float = 30.0,
        probe_timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        on_transition: Callable[[str, str, str], None] | None = None,
        redis_retry_after: float = 1.0,
    ):
        if failures < 1:
            raise ValueError(f"failures must be >= 1, got {failures!r}")
        if not reset_after > 0 or not probe_timeout > 0:
            raise ValueError("reset_after and probe_timeout must be > 0")
        self.redis = redis
        self.key = key
        self.threshold = int(failures)
        self.reset_after = float(reset_after)
        self.probe_timeout = float(probe_timeout)
        self.clock = clock
        self.on_transition = on_transition
        self.redis_retry_after = redis_retry_after
        self._state_key = KEY_PREFIX + key
        self._probe_key = KEY_PREFIX + key + ":probe"
        # The probe token and the last failure count seen, per thread (one Breaker may serve threads).
        self._thread = threading.local()
        self._scripts = None
        if redis is not None:
            self._scripts = {
                name: redis.register_script(text)
                for name, text in (("allow", _ALLOW), ("failure", _FAILURE), ("success", _SUCCESS),
                                   ("state", _STATE))
            }  # fmt: skip

    # --- the caller's side ----------------------------------------------------------------------

    def allow(self) -> Allowance:
        """May the model be called now? "closed" yes, "probe" yes (report back!), "open" no."""
        self._thread.token = None
        token = uuid.uuid4().hex
        reply = self._shared("allow", [int(self.reset_after * 1000), int(self.probe_timeout * 1000), token,
                                       IDLE_EXPIRY_MS])  # fmt: skip
        if reply is None:
            allowance = self._local_allow(token)
            self._thread.failures_seen = None
        else:
            allowance, failures = _text(reply[0]), int(reply[1])
            self._thread.failures_seen = failures
        if allowance == "probe":
            self._thread.token = token
        return allowance

    def allow_read(self, fields, now_ms: int | None) -> Allowance:
        """allow(), from the state `queue_state_read` fetched when Redis' clock said `now_ms`.

        No round trip unless a probe is due: then the allow script decides atomically and takes the
        lease (one probe at a time, as allow()). `fields` None (not read, or Redis failed) is allow().
        """
        if fields is None or now_ms is None or self._scripts is None or self._redis_down():
            return self.allow()
        state = _text(fields[0]) if fields[0] is not None else "closed"
        failures = int(fields[1] or 0)
        if state == "open" and now_ms - int(fields[2] or 0) >= int(self.reset_after * 1000):
            return self.allow()
        self._thread.token = None
        self._thread.failures_seen = failures
        return "open" if state == "open" else "closed"

    def record_success(self) -> bool:
        """The model answered. True when this closed the breaker (a successful probe)."""
        token = self._take_token()
        if token is None and getattr(self._thread, "failures_seen", None) == 0:
            # Nothing to reset (as of this caller's allow()): spare the hot path a round trip.
            return False
        reply = self._shared("success", [token or "", IDLE_EXPIRY_MS])
        changed = self._local_success(token) if reply is None else _text(reply) == "closed"
        if changed:
            self._notify("half_open", "closed")
        return changed

    def record_failure(self) -> bool:
        """The model failed (error, load failure, over budget). True when this opened the breaker."""
        token = self._take_token()
        reply = self._shared("failure", [self.threshold, token or "", IDLE_EXPIRY_MS])
        transition = self._local_failure(token) if reply is None else _text(reply)
        if transition == "opened":
            self._notify("closed", "open")
        elif transition == "reopened":
            self._notify("half_open", "open")
        return transition != ""

    def state(self) -> State:
        """closed, open (cooling down) or half_open (a probe may go)."""
        return self.status().state

    def status(self) -> BreakerStatus:
        reply = self._shared("state", [int(self.reset_after * 1000)])
        if reply is None:
            local = _local_state(self.key)
            with local.lock:
                if local.state != "open":
                    return BreakerStatus("closed", local.failures, None, shared=False)
                ago = self.clock() - local.opened_at
                state = "half_open" if ago >= self.reset_after else "open"
                return BreakerStatus(state, local.failures, ago, shared=False)
        state, failures, ago = _text(reply[0]), int(reply[1]), int(reply[2])
        return BreakerStatus(state, failures, ago / 1000 if ago >= 0 else None, shared=True)

    # --- Redis, and the per-process fallback ----------------------------------------------------

    def _shared(self, script: str, args: list):
        """The script's reply, or None when there is no Redis or it failed (then the caller goes local)."""
        if self._scripts is None:
            return None
        from redis.exceptions import RedisError

        if self._redis_down():
            return None
        server = self._server()
        try:
            return self._scripts[script](keys=[self._state_key, self._probe_key], args=args)
        except RedisError as exc:
            # A client's retries can cost seconds against a dead server: not on every request.
            _redis_down_until[server] = time.monotonic() + self.redis_retry_after
            log.warning(
                "breaker %s: Redis failed (%s); per-process breaker for %gs",
                self.key,
                exc,
                self.redis_retry_after,
            )
            return None

    def _redis_down(self) -> bool:
        return time.monotonic() < _redis_down_until.get(self._server(), 0.0)

    def _server(self) -> tuple:
        kwargs = getattr(getattr(self.redis, "connection_pool", None), "connection_kwargs", {})
        return (kwargs.get("host"), kwargs.get("port"), kwargs.get("path"), kwargs.get("db"))

    def _take_token(self) -> str | None:
        token = getattr(self._thread, "token", None)
        self._thread.token = None
        return token

    def _local_allow(self, token: str) -> Allowance:
        local = _local_state(self.key)
        with local.lock:
            if local.state != "open":
                return "closed"
            now = self.clock()
            if now - local.opened_at < self.reset_after:
                return "open"
            if local.probe_token is not None and now < local.probe_until:
                return "open"
            local.probe_token, local.probe_until = token, now + self.probe_timeout
            return "probe"

    def _local_failure(self, token: str | None) -> str:
        local = _local_state(self.key)
        with local.lock:
            if local.state == "open":
                if token is not None and token == local.probe_token:
                    local.opened_at, local.probe_token = self.clock(), None
                    local.failures += 1
                    return "reopened"
                return ""
            local.failures += 1
            if local.failures >= self.threshold:
                local.state, local.opened_at, local.probe_token = "open", self.clock(), None
                return "opened"
            return ""

    def _local_success(self, token: str | None) -> bool:
        local = _local_state(self.key)
        with local.lock:
            if local.state == "open":
                if token is not None and token == local.probe_token:
                    local.state, local.failures, local.probe_token = "closed", 0, None
                    return True
                return False
            local.failures = 0
            return False

    def _notify(self, old: str, new: str) -> None:
        if self.on_transition is None:
            return
        try:
            self.on_transition(self.key, old, new)
        except Exception:  # an audit or alert failure must not fail the scoring request
            log.exception("breaker %s: the transition callback failed", self.key)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
