"""The test run's environment, set before Django reads its settings (loaded with `-p tests.environment`).

Without DATABASE_URL the tests use SQLite in a temporary folder; without REDIS_URL they start the embedded
Redis on a free port for the run. CI sets both to the machine's PostgreSQL and Redis.
"""

import atexit
import os
import secrets
import shutil
import tempfile
from urllib.parse import urlsplit, urlunsplit

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

_xdist_worker = os.environ.get("PYTEST_XDIST_WORKER")  # gw0, gw1, ... under `pytest -n N`
if _xdist_worker:
    # Each worker of a parallel run has its own folder and Redis database (pytest-django already gives it
    # its own test database): Celery queues, their purge, the serving keys and the MLflow store of one
    # worker's tests must not reach another's. The controller set both before it started the workers.
    _index = int(_xdist_worker.removeprefix("gw"))
    _folder = os.path.join(os.environ["HAFNIUM_VAR_DIR"], _xdist_worker)
    os.makedirs(_folder, exist_ok=True)
    os.environ["HAFNIUM_VAR_DIR"] = _folder
    _url = urlsplit(os.environ["REDIS_URL"])
    _db = int(_url.path.strip("/") or 0) + 1 + _index
    if _db > 15:
        raise RuntimeError(f"{_xdist_worker} would need Redis database {_db}: run fewer workers")
    os.environ["REDIS_URL"] = urlunsplit(_url._replace(path=f"/{_db}"))
elif not os.environ.get("REDIS_URL"):
    from hafnium_portal import embedded_redis

    _port = embedded_redis.free_port()
    _server = embedded_redis.start_background(_port)
    atexit.register(_server.terminate)
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:{_port}/0"
