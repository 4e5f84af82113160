"""Prometheus metrics of the scoring hot path (merged across gunicorn workers by PROMETHEUS_MULTIPROC_DIR)."""

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "hafnium_serving_requests",
    "Scored transactions, by model, version and outcome (ok, fallback, error, cached)",
    ["model", "version", "outcome"],
)
LATENCY = Histogram(
    "hafnium_serving_request_seconds",
    "Time to answer a scoring request, by model",
    ["model"],
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5),
)
FALLBACKS = Counter(
    "hafnium_serving_fallback_answers",
    "Transactions answered by the rules, by model, version and why",
    ["model", "version", "reason"],
)
BREAKER_STATE = Gauge(
    "hafnium_serving_breaker_state",
    "Circuit breaker of a version as last seen: 0 closed, 1 probing, 2 open",
    ["model", "version"],
    multiprocess_mode="livemostrecent",
)
LOG_BACKLOG = Gauge(
    "hafnium_serving_log_backlog",
    "Prediction log entries in the Redis stream not yet written to the database",
    multiprocess_mode="livemostrecent",
)
BREAKER_VALUES = {"closed": 0, "probe": 1, "open": 2}
