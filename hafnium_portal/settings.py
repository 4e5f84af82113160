"""Settings of Hafnium Portal, read from the environment only (see README, "Configuration").

With nothing set, the portal runs on the embedded default: SQLite and an MLflow store under var/,
and the embedded Redis that `make run` starts. Production sets the variables (docker-compose.yml).
"""

import secrets
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from .embedded_redis import DEFAULT_PORT as EMBEDDED_REDIS_DEFAULT_PORT

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("HAFNIUM_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

env = environ.Env()

DEBUG = env.bool("DJANGO_DEBUG", default=False)


def _secret_key() -> str:
    key = env.str("DJANGO_SECRET_KEY", default="")
    if key:
        return key
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. Set it to a long random value for any deployment, "
            "or set DJANGO_DEBUG=true for local development (`make run` does)."
        )
    # Local development only: a random key kept under var/ so sessions survive a restart.
    path = VAR_DIR / "dev-secret-key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "axes",
    "django_celery_beat",
    "django_htmx",
    "apps.audit",
    "apps.accounts",
    "apps.registry",
    "apps.governance",
    "apps.training",
    "apps.serving",
    "apps.outbox",
    "apps.alerts",
    "apps.deployments",
    "apps.monitoring",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "apps.audit.context.AuditActorMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "hafnium_portal.errors.MethodNotAllowedPageMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "hafnium_portal.urls"
WSGI_APPLICATION = "hafnium_portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.accounts.navigation.navigation",
                "apps.governance.context.inbox",
                "apps.alerts.context.alerts",
            ],
        },
    },
]

# --- database ---------------------------------------------------------------------------------

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'hafnium.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # web, worker and beat share the file: WAL and a busy timeout keep them from failing on locks.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not memory, so that a Celery worker process in the tests sees the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-hafnium.sqlite3")}
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- redis, cache, celery --------------------------------------------------------------------

# The embedded Redis started by `make run` listens here when REDIS_URL is not set.
EMBEDDED_REDIS_PORT = env.int("HAFNIUM_EMBEDDED_REDIS_PORT", default=EMBEDDED_REDIS_DEFAULT_PORT)
REDIS_URL = env.str("REDIS_URL", default=f"redis://127.0.0.1:{EMBEDDED_REDIS_PORT}/0")

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "hafnium",
        # Short timeouts: a page must still render (and /healthz answer) when Redis is down.
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }
}
# Sessions live in the database so that logging in does not depend on Redis.
SESSION_ENGINE = "django.contrib.sessions.backends.db"

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
# Our tasks claim their work with a compare-and-set, so running one twice is safe: acknowledge after
# the work is done, and give the message back when a worker dies mid-task.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=15 * 60)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=14 * 60)
# Training is the one task allowed longer than the default limit (apps.training.tasks.train_model).
TRAINING_TASK_TIME_LIMIT = env.int("TRAINING_TASK_TIME_LIMIT", default=60 * 60)
CELERY_RESULT_EXPIRES = timedelta(days=1)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Longer than the longest task time limit, so a late-acked task is not handed to a second worker
# while it runs; a task whose worker was killed outright is redelivered after this long. Every time
# limit is read from the two settings above, so this stays the longest (tests/portal/test_celery.py).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": 2 * max(CELERY_TASK_TIME_LIMIT, TRAINING_TASK_TIME_LIMIT)
}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# The worker heartbeat has a queue of its own, consumed by a worker that runs nothing else (Procfile,
# docker-compose.yml: `worker-heartbeat`), so a pool busy with slow calls never looks dead. A worker
# started without -Q (development, the tests) consumes both queues.
CELERY_TASK_DEFAULT_QUEUE = "celery"
HEARTBEAT_QUEUE = "heartbeat"
CELERY_TASK_QUEUES = [
    Queue(CELERY_TASK_DEFAULT_QUEUE, routing_key=CELERY_TASK_DEFAULT_QUEUE),
    Queue(HEARTBEAT_QUEUE, routing_key=HEARTBEAT_QUEUE),
]
CELERY_TASK_ROUTES = {"hafnium_portal.health.record_worker_heartbeat": {"queue": HEARTBEAT_QUEUE}}
WORKER_HEARTBEAT_INTERVAL = env.int("WORKER_HEARTBEAT_INTERVAL", default=30)
# A heartbeat older than this means no worker is consuming the queue.
WORKER_HEARTBEAT_STALE_AFTER = 3 * WORKER_HEARTBEAT_INTERVAL
CELERY_BEAT_SCHEDULE = {
    "worker-heartbeat": {
        "task": "hafnium_portal.health.record_worker_heartbeat",
        "schedule": WORKER_HEARTBEAT_INTERVAL,
        "options": {"expires": WORKER_HEARTBEAT_INTERVAL, "queue": HEARTBEAT_QUEUE},
    },
    "publish-pending-promotions": {
        "task": "apps.governance.tasks.publish_pending_promotions",
        "schedule": 60,
        "options": {"expires": 60},
    },
    "deliver-pending-notifications": {
        "task": "apps.governance.tasks.deliver_pending_notifications",
        "schedule": 60,
        "options": {"expires": 60},
    },
    "deliver-pending-alert-notifications": {
        "task": "apps.alerts.tasks.deliver_pending_alert_notifications",
        "schedule": 60,
        "options": {"expires": 60},
    },
    "expire-promotions": {
        "task": "apps.governance.tasks.expire_promotions",
        "schedule": 300,
        "options": {"expires": 300},
    },
    "sync-registry": {
        "task": "apps.registry.tasks.sync_registry",
        "schedule": env.int("REGISTRY_SYNC_INTERVAL", default=60),
        "options": {"expires": 60},
    },
}

# --- deployments: the rollout controller (apps/deployments) ----------------------------------------

# The controller's beat tick: every active rollout is advanced this often. Timings of a rollout
# (analysis interval, steps, deadline) are its policy's (RolloutPolicy, data), not settings.
DEPLOYMENTS_TICK_SECONDS = env.float("DEPLOYMENTS_TICK_SECONDS", default=2.0)
DEPLOYMENTS_STAGING_TESTS_TIME_LIMIT = env.int("DEPLOYMENTS_STAGING_TESTS_TIME_LIMIT", default=300)
CELERY_BEAT_SCHEDULE["deployments-controller-tick"] = {
    "task": "apps.deployments.tasks.controller_tick",
    "schedule": DEPLOYMENTS_TICK_SECONDS,
    # A tick that waited longer than its interval is dropped: the next one does the same work.
    "options": {"expires": max(DEPLOYMENTS_TICK_SECONDS, 1.0)},
}

# --- audit: signed checkpoints of the trail's head (apps/audit/checkpoints.py) ----------------------

# The HMAC-SHA256 key of the checkpoints; never in the database. Unset (embedded default): a random
# key kept in var/audit-checkpoint-key, created on first use. Production sets it (secret store).
AUDIT_CHECKPOINT_KEY = env.str("AUDIT_CHECKPOINT_KEY", default="")
AUDIT_CHECKPOINT_KEY_FILE = VAR_DIR / "audit-checkpoint-key"
# checkpoints.jsonl (append-only JSON lines) goes here; production: a volume the database's
# administrators cannot write. Optionally each checkpoint is also POSTed (signed) to a webhook.
AUDIT_CHECKPOINT_DIR = env.str("AUDIT_CHECKPOINT_DIR", default=str(VAR_DIR / "audit-checkpoints"))
AUDIT_CHECKPOINT_WEBHOOK_URL = env.str("AUDIT_CHECKPOINT_WEBHOOK_URL", default="")
if AUDIT_CHECKPOINT_WEBHOOK_URL and not AUDIT_CHECKPOINT_KEY:
    raise ImproperlyConfigured("AUDIT_CHECKPOINT_WEBHOOK_URL is set: AUDIT_CHECKPOINT_KEY must be set too.")
AUDIT_CHECKPOINT_INTERVAL = env.int("AUDIT_CHECKPOINT_INTERVAL", default=600)
CELERY_BEAT_SCHEDULE["audit-checkpoint"] = {
    "task": "apps.audit.tasks.write_checkpoint",
    "schedule": AUDIT_CHECKPOINT_INTERVAL,
    "options": {"expires": AUDIT_CHECKPOINT_INTERVAL},
}

# --- mlflow ------------------------------------------------------------------------------------

MLFLOW_TRACKING_URI = env.str("MLFLOW_TRACKING_URI", default=f"sqlite:///{VAR_DIR / 'mlflow.sqlite3'}")
# Where a local store keeps artifacts (a URI: file://, s3://...); an MLflow server decides for itself.
MLFLOW_ARTIFACT_ROOT = env.str("MLFLOW_ARTIFACT_ROOT", default=(VAR_DIR / "mlartifacts").as_uri())
# Every call to an MLflow server is bounded (apps/registry/gateway.py sets MLflow's own HTTP variables
# from these before each call). A web request waits one attempt of MLFLOW_HTTP_TIMEOUT seconds and
# answers 503; a Celery task is given a longer timeout and one retry, then retries itself with backoff.
MLFLOW_HTTP_TIMEOUT = env.int("MLFLOW_HTTP_TIMEOUT", default=5)
MLFLOW_HTTP_MAX_RETRIES = env.int("MLFLOW_HTTP_MAX_RETRIES", default=0)
MLFLOW_TASK_HTTP_TIMEOUT = env.int("MLFLOW_TASK_HTTP_TIMEOUT", default=30)
MLFLOW_TASK_HTTP_MAX_RETRIES = env.int("MLFLOW_TASK_HTTP_MAX_RETRIES", default=1)
# Seconds before MLflow's first retry (doubled at each next one).
MLFLOW_HTTP_BACKOFF_FACTOR = env.int("MLFLOW_HTTP_BACKOFF_FACTOR", default=1)
# A task that failed on MLflow is retried after REGISTRY_RETRY_BACKOFF seconds, doubled each time up
# to REGISTRY_RETRY_BACKOFF_MAX, at most REGISTRY_MAX_RETRIES times.
REGISTRY_RETRY_BACKOFF = env.int("REGISTRY_RETRY_BACKOFF", default=5)
REGISTRY_RETRY_BACKOFF_MAX = env.int("REGISTRY_RETRY_BACKOFF_MAX", default=300)
REGISTRY_MAX_RETRIES = env.int("REGISTRY_MAX_RETRIES", default=5)

# Dataset versions (Parquet, with their DVC pointers) are kept here under their content hash.
DATASET_ROOT = env.str("DATASET_ROOT", default=str(VAR_DIR / "datasets"))

# Links in mails point here.
PORTAL_BASE_URL = env.str("PORTAL_BASE_URL", default="http://127.0.0.1:8000")
# Optional: each governance event is POSTed here as JSON, signed with HMAC-SHA256 of the body.
GOVERNANCE_WEBHOOK_URL = env.str("GOVERNANCE_WEBHOOK_URL", default="")
GOVERNANCE_WEBHOOK_SECRET = env.str("GOVERNANCE_WEBHOOK_SECRET", default="")
if GOVERNANCE_WEBHOOK_URL and not GOVERNANCE_WEBHOOK_SECRET:
    raise ImproperlyConfigured("GOVERNANCE_WEBHOOK_URL is set: GOVERNANCE_WEBHOOK_SECRET must be set too.")
# --- the outbox (governance's notifications, alerts): a failed mail or webhook call is retried after
# this many seconds, doubling, at most 600.
OUTBOX_RETRY_SECONDS = env.float("OUTBOX_RETRY_SECONDS", default=10.0)

# --- serving (apps/serving: the scoring API and its inference processes) -----------------------

# How long the answer to a transaction id is kept, so a retry gets the same score and is logged once.
SERVING_RESPONSE_TTL = env.int("SERVING_RESPONSE_TTL", default=24 * 60 * 60)
# Transactions per batch request, and the largest body accepted (bytes).
SERVING_MAX_BATCH = env.int("SERVING_MAX_BATCH", default=1000)
SERVING_MAX_BODY_BYTES = env.int("SERVING_MAX_BODY_BYTES", default=2 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = max(2621440, SERVING_MAX_BODY_BYTES)
# Seconds a Redis call of the hot path may take before the request goes on without Redis.
SERVING_REDIS_TIMEOUT = env.float("SERVING_REDIS_TIMEOUT", default=0.25)
# Longest a process keeps its copy of clients, thresholds, rules and versions without checking.
SERVING_CONFIG_MAX_AGE = env.float("SERVING_CONFIG_MAX_AGE", default=60.0)
# Model loading: a request waits this long for a version still loading (then the rules answer);
# a failed load is tried again after SERVING_LOAD_RETRY seconds; a process keeps this many versions.
SERVING_LOAD_WAIT = env.float("SERVING_LOAD_WAIT", default=1.0)
SERVING_LOAD_RETRY = env.float("SERVING_LOAD_RETRY", default=30.0)
SERVING_MAX_LOADED = env.int("SERVING_MAX_LOADED", default=8)
# The prediction log stream is capped at about this many entries (oldest dropped if the writer stops).
SERVING_LOG_STREAM_MAXLEN = env.int("SERVING_LOG_STREAM_MAXLEN", default=1_000_000)
# Prediction logs older than this many days are dropped by the `serving-logs-maintain` beat task (0: kept
# forever): on PostgreSQL a day's partition is dropped once the whole day is past the retention.
SERVING_LOG_RETENTION_DAYS = env.int("SERVING_LOG_RETENTION_DAYS", default=90)
# PostgreSQL: the beat task keeps the partitions of today and this many days ahead created.
SERVING_LOG_PARTITIONS_AHEAD = env.int("SERVING_LOG_PARTITIONS_AHEAD", default=7)
# PostgreSQL's work_mem for a read of a window of prediction logs (selectors.log_window): enough to
# aggregate the window in memory (about 250 MB a million logs with 10 features).
SERVING_LOG_READ_WORK_MEM = env.str("SERVING_LOG_READ_WORK_MEM", default="256MB")
# PostgreSQL: a window read outside a transaction is shared over this many connections at once (each
# aggregates its share of the window in its own backend; PostgreSQL 15 does not aggregate arrays in
# parallel itself). 1: one connection.
SERVING_LOG_READ_CONNECTIONS = env.int("SERVING_LOG_READ_CONNECTIONS", default=2)
CELERY_BEAT_SCHEDULE["serving-logs-maintain"] = {
    "task": "apps.serving.tasks.logs_maintain",
    "schedule": 3600,
    "options": {"expires": 3600},
}
# Every routing table in force is published from PostgreSQL to Redis again this often (a Redis that
# restarted empty routes by the database's tables again within this time).
SERVING_ROUTES_PUBLISH_INTERVAL = env.int("SERVING_ROUTES_PUBLISH_INTERVAL", default=60)
CELERY_BEAT_SCHEDULE["publish-routing-tables"] = {
    "task": "apps.serving.tasks.publish_routing_tables",
    "schedule": SERVING_ROUTES_PUBLISH_INTERVAL,
    "options": {"expires": SERVING_ROUTES_PUBLISH_INTERVAL},
}
# Versions that may answer traffic and were never compiled (the task at registration was lost) are
# compiled by this sweep.
CELERY_BEAT_SCHEDULE["compile-missing-scorers"] = {
    "task": "apps.serving.tasks.compile_missing_scorers",
    "schedule": env.int("SERVING_COMPILE_SWEEP_INTERVAL", default=600),
    "options": {"expires": 600},
}
# Where workers reach the inference service (staging tests of a rollout score through it).
HAFNIUM_INFERENCE_URL = env.str("HAFNIUM_INFERENCE_URL", default="http://127.0.0.1:8001")

# --- alerts (apps/alerts): on-call hears of every new alert ---------------------------------------

# Who is mailed a new page or ticket alert (comma-separated).
ALERTS_ONCALL_EMAILS = env.list("ALERTS_ONCALL_EMAILS", default=[])
# The on-call system's webhook (PagerDuty, Opsgenie, a chat bridge...): each alert raised, acknowledged
# or resolved is POSTed as JSON signed with HMAC-SHA256 of the body. Unset: the governance webhook.
ALERTS_WEBHOOK_URL = env.str("ALERTS_WEBHOOK_URL", default=GOVERNANCE_WEBHOOK_URL)
ALERTS_WEBHOOK_SECRET = env.str("ALERTS_WEBHOOK_SECRET", default=GOVERNANCE_WEBHOOK_SECRET)
if ALERTS_WEBHOOK_URL and not ALERTS_WEBHOOK_SECRET:
    raise ImproperlyConfigured("ALERTS_WEBHOOK_URL is set: ALERTS_WEBHOOK_SECRET must be set too.")

# --- monitoring: SLOs of the production models (apps/monitoring/slo.py; per model: SLOObjective) ---

# The defaults a model is held to until it has objectives of its own: the design's availability 99.9%
# (errors < 0.1%) and p99 latency 100 ms, over 30 days; a burn-rate rule needs SLO_MIN_EVENTS requests
# in each of its windows before it may fire (low traffic is said, not paged).
SLO_AVAILABILITY_TARGET = env.float("SLO_AVAILABILITY_TARGET", default=0.999)
SLO_LATENCY_MS = env.float("SLO_LATENCY_MS", default=100.0)
SLO_LATENCY_QUANTILE = env.float("SLO_LATENCY_QUANTILE", default=0.99)
SLO_MIN_EVENTS = env.int("SLO_MIN_EVENTS", default=100)
CELERY_BEAT_SCHEDULE["slo-evaluate"] = {
    "task": "apps.monitoring.tasks_slo.evaluate_slos",
    "schedule": 60,
    "options": {"expires": 60},
}

# --- monitoring: drift runs (apps/monitoring) -------------------------------------------------

# A drift run reads its window in chunks of about this many rows, summarised on several workers.
DRIFT_CHUNK_ROWS = env.int("DRIFT_CHUNK_ROWS", default=200_000)
# Every production model gets a drift run schedule (django-celery-beat, editable in the admin) of this.
DRIFT_RUN_INTERVAL_MINUTES = env.int("DRIFT_RUN_INTERVAL_MINUTES", default=60)
# A retraining trains on the labelled transactions of this many days, and needs at least this many.
DRIFT_RETRAIN_WINDOW_DAYS = env.int("DRIFT_RETRAIN_WINDOW_DAYS", default=30)
DRIFT_RETRAIN_MIN_ROWS = env.int("DRIFT_RETRAIN_MIN_ROWS", default=1000)
CELERY_BEAT_SCHEDULE["drift-schedules"] = {
    "task": "apps.monitoring.tasks_drift.drift_schedules_sweep",
    "schedule": 300,
    "options": {"expires": 300},
}

# --- auth --------------------------------------------------------------------------------------

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "accounts:login"

# Repeated failed logins lock the account (counted per username, whatever the client address) and,
# separately, the client address that tries many usernames. Behind a reverse proxy set
# AXES_IPWARE_PROXY_COUNT, or every client looks like the proxy.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_LOCKOUT_TEMPLATE = "accounts/locked.html"
AXES_RESET_ON_SUCCESS = True
AXES_IPWARE_PROXY_COUNT = env.int("AXES_IPWARE_PROXY_COUNT", default=0)

GUARDIAN_RAISE_403 = False
ANONYMOUS_USER_NAME = None  # no guardian anonymous user: anonymous visitors see nothing

# --- rest framework ----------------------------------------------------------------------------

REST_FRAMEWORK = {
    # Token first: an anonymous call gets 401 with `WWW-Authenticate: Token`.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "EXCEPTION_HANDLER": "hafnium_portal.errors.api_exception_handler",
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    # The schema documents the errors each operation can answer (hafnium_portal/schema.py).
    "DEFAULT_SCHEMA_CLASS": "hafnium_portal.schema.PortalAutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Hafnium Portal API",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Stages appear as `stage`, `from_stage` and `to_stage`: one enum, one name.
    "ENUM_NAME_OVERRIDES": {
        "StageEnum": "apps.registry.models.Stage",
        # A rollout's state appears as `state`, `from_state` and `to_state`.
        "RolloutStateEnum": "apps.deployments.models.State",
    },
}

# --- i18n, static ------------------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("DJANGO_TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Hashed, compressed names once collectstatic has run (the Docker image); plain files otherwise.
STATIC_MANIFEST = env.bool("DJANGO_STATIC_MANIFEST", default=not DEBUG)
# Without collectstatic (a checkout, the tests), serve straight from static/ and the apps.
WHITENOISE_USE_FINDERS = not STATIC_MANIFEST
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if STATIC_MANIFEST
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- email -------------------------------------------------------------------------------------

EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
globals().update(EMAIL_CONFIG)  # EMAIL_BACKEND, EMAIL_HOST, EMAIL_PORT, ...
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Hafnium Portal <portal@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- security (production defaults when DEBUG is off) ------------------------------------------

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
# /healthz and /metrics are probed over plain HTTP inside the deployment network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = env.int("DJANGO_SESSION_COOKIE_AGE", default=8 * 60 * 60)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("DJANGO_LOG_LEVEL", default="INFO")},
    "loggers": {
        "axes": {"level": "WARNING"},
        "mlflow": {"level": "WARNING"},
        "alembic": {"level": "WARNING"},
    },
}
