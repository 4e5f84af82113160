"""What every bench shares: a description of the machine, and the bootstrap of a throwaway portal.

`portal_setup()` gives a bench a portal of its own, as tests/environment.py does for the tests: a
temporary var folder holding a migrated SQLite database, the MLflow store (SQLite, local artifacts) and
the dataset store, removed at exit. It overrides DATABASE_URL and the MLflow settings even when they are
set, so that a bench never writes into a real database or registry. No Redis is needed: nothing here
enqueues a task, and should something do so, Celery runs it in process (task_always_eager).
"""

import atexit
import logging
import os
import platform
import secrets
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def machine() -> str:
    """One line saying where and when the figures were taken (the machine is shared: read ratios)."""
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"
    )


def best_of(repeats: int, action: Callable[[], object]) -> tuple[float, object]:
    """The shortest of `repeats` timings of action() in seconds, and the last result."""
    timings, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = action()
        timings.append(time.perf_counter() - started)
    return min(timings), result


@contextmanager
def stopwatch() -> Iterator[dict]:
    """`with stopwatch() as watch: ...` then watch["seconds"]."""
    watch = {"seconds": 0.0}
    started = time.perf_counter()
    try:
        yield watch
    finally:
        watch["seconds"] = time.perf_counter() - started


def portal_setup() -> Path:
    """Point the portal at a temporary folder, set Django up and migrate; return the folder."""
    folder = Path(tempfile.mkdtemp(prefix="hafnium-bench-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    os.environ.update(
        {
            "HAFNIUM_VAR_DIR": str(folder),
            "DATABASE_URL": f"sqlite:///{folder / 'hafnium.sqlite3'}",
            "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.sqlite3'}",
            "MLFLOW_ARTIFACT_ROOT": (folder / "mlartifacts").as_uri(),
            "DATASET_ROOT": str(folder / "datasets"),
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            # Production's setting: with DEBUG on, Django would also keep a log of every SQL query.
            "DJANGO_DEBUG": "false",
            "DJANGO_STATIC_MANIFEST": "false",
            "DJANGO_SETTINGS_MODULE": "hafnium_portal.settings",
            # Progress bars of artifact downloads would interleave with the tables.
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
            "MLFLOW_LOGGING_LEVEL": "ERROR",
        }
    )
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))

    import django

    django.setup()

    from django.core.management import call_command

    from hafnium_portal.celery import app

    call_command("migrate", verbosity=0)
    app.conf.task_always_eager = True
    for noisy in ("mlflow", "alembic", "apps"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    # MLflow's hints on the inferred schema and on pickling, once per logged model.
    warnings.filterwarnings("ignore", category=UserWarning, module="mlflow")
    # collectstatic has not run in a checkout: whitenoise says so once.
    warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)
    return folder


def mlflow_store_setup() -> str:
    """Create the MLflow store (its schema takes seconds to build: not part of any timing)."""
    from apps.registry import gateway

    return gateway.ensure_store()
