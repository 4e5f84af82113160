"""The test run's environment, set before Django reads its settings (loaded with `-p tests.environment`).

Without DATABASE_URL the tests use SQLite under var/test; without REDIS_URL they start the embedded
Redis on a free port for the run. CI sets both to the machine's PostgreSQL and Redis.
"""

import atexit
import os
import secrets
from pathlib import Path

os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))
os.environ.setdefault("DJANGO_DEBUG", "false")
# The test client and the live server speak plain HTTP.
os.environ.setdefault("DJANGO_SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("DJANGO_SECURE_COOKIES", "false")
os.environ.setdefault("DJANGO_STATIC_MANIFEST", "false")
os.environ.setdefault("HAFNIUM_VAR_DIR", str(Path(__file__).resolve().parent.parent / "var" / "test"))

if not os.environ.get("REDIS_URL") and "PYTEST_XDIST_WORKER" not in os.environ:
    from hafnium_portal import embedded_redis

    _port = embedded_redis.free_port()
    _server = embedded_redis.start_background(_port)
    atexit.register(_server.terminate)
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:{_port}/0"
