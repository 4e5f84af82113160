"""The test run's environment, set before Django reads its settings (loaded with `-p tests.environment`).

Without DATABASE_URL the tests use SQLite in a temporary folder; without REDIS_URL they start the embedded
Redis on a free port for the run. CI sets both to the machine's PostgreSQL and Redis.
"""

import atexit
import os
import secrets
import shutil
import tempfile

# Two cores, shared: one OpenMP thread per process keeps model training from thrashing.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))
os.environ.setdefault("DJANGO_DEBUG", "false")
# The test client and the live server speak plain HTTP.
os.environ.setdefault("DJANGO_SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("DJANGO_SECURE_COOKIES", "false")
os.environ.setdefault("DJANGO_STATIC_MANIFEST", "false")
if "HAFNIUM_VAR_DIR" not in os.environ:
    # A folder of the run's own (SQLite test database, MLflow store, datasets): runs side by side
    # do not share files.
    os.environ["HAFNIUM_VAR_DIR"] = tempfile.mkdtemp(prefix="hafnium-test-")
    atexit.register(shutil.rmtree, os.environ["HAFNIUM_VAR_DIR"], ignore_errors=True)

if not os.environ.get("REDIS_URL") and "PYTEST_XDIST_WORKER" not in os.environ:
    from hafnium_portal import embedded_redis

    _port = embedded_redis.free_port()
    _server = embedded_redis.start_background(_port)
    atexit.register(_server.terminate)
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:{_port}/0"
