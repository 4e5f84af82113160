"""Fixtures shared by every test: the people of the story, and a real Celery worker process."""

import os
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import factory
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection

from apps.accounts.roles import Role
from apps.accounts.services import team_ensure

# Fixtures of each app's data, usable from any test (the browser journeys included).
pytest_plugins = ["tests.registry.fixtures"]

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct-horse-battery-staple"
# The people of the story who hold one role each (fixture name -> role).
PEOPLE = {
    "data_scientist": Role.DATA_SCIENTIST,
    "ds_lead": Role.DATA_SCIENTIST_LEAD,
    "ml_engineer": Role.ML_ENGINEER,
    "model_risk": Role.MODEL_RISK,
    "compliance": Role.COMPLIANCE,
    "manager": Role.MANAGER,
}


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@hafnium.example")
    password = factory.django.Password(PASSWORD)

    @factory.post_generation
    def roles(user, create, extracted, **kwargs):
        for role in extracted or []:
            user.groups.add(Group.objects.get(name=role))


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # PBKDF2 costs ~0.4 s per user created; the tests check who may do what, not hashing strength.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def team(db):
    return team_ensure(name="Fraud Analytics", slug="fraud-analytics")


@pytest.fixture
def other_team(db):
    return team_ensure(name="Payments Risk", slug="payments-risk")


def _person(username, role, team=None):
    user = UserFactory(username=username, roles=[role] if role else [])
    if team is not None:
        user.groups.add(team.group)
    return user


@pytest.fixture
def data_scientist(team):
    return _person("dana", Role.DATA_SCIENTIST, team)


@pytest.fixture
def other_data_scientist(other_team):
    return _person("omar", Role.DATA_SCIENTIST, other_team)


@pytest.fixture
def ds_lead(team):
    return _person("lee", Role.DATA_SCIENTIST_LEAD, team)


@pytest.fixture
def ml_engineer(db):
    return _person("mia", Role.ML_ENGINEER)


@pytest.fixture
def model_risk(db):
    return _person("rita", Role.MODEL_RISK)


@pytest.fixture
def compliance(db):
    return _person("cora", Role.COMPLIANCE)


@pytest.fixture
def manager(db):
    return _person("max", Role.MANAGER)


@pytest.fixture
def outsider(db):
    """Signed in, but with no role and no team."""
    return _person("otto", None)


@pytest.fixture
def as_person(request):
    """`as_person("manager")`: an API client signed in (with a session) as that person's fixture."""
    from rest_framework.test import APIClient

    def client_for(person: str) -> APIClient:
        client = APIClient()
        if person != "anonymous":
            client.force_login(request.getfixturevalue(person))
        return client

    return client_for


@pytest.fixture
def admin_user(db):
    return get_user_model().objects.create_superuser("ada", "ada@hafnium.example", PASSWORD)


def database_url_for_subprocess() -> str:
    """DATABASE_URL of the test database, for processes started by a test (a Celery worker)."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class CeleryProcess:
    """A `celery worker` or `celery beat` process started by a test, with its log."""

    def __init__(self, name: str, process: subprocess.Popen, log: Path):
        self.name, self.process, self.log = name, process, log

    def wait_for(self, predicate, timeout: float = 60.0, interval: float = 0.1):
        """Poll `predicate` until it returns something truthy; fail with the process's log otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = predicate()
            if result:
                return result
            if self.process.poll() is not None:
                break
            time.sleep(interval)
        pytest.fail(f"{self.name} did not do it in {timeout}s; its log:\n{self.log.read_text()[-4000:]}")


@pytest.fixture
def start_celery(transactional_db, tmp_path):
    """Start real Celery processes on the test database and the test run's Redis.

    `start_celery("worker", env={...}, args=[...])` or `start_celery("beat")`. Tasks go through the
    broker as in production; a worker consumes every queue unless `args` says `--queues`. What earlier
    runs left in the queues is purged first.
    """
    from hafnium_portal.celery import app

    app.control.purge()
    started: list[CeleryProcess] = []

    def start(kind: str, env: dict | None = None, args: list[str] | None = None) -> CeleryProcess:
        name = f"{kind}-{uuid.uuid4().hex[:8]}"
        arguments = {
            "worker": ["--pool=solo", "--hostname", f"{name}@test", "--without-mingle", "--without-gossip"],
            "beat": ["--scheduler", "django_celery_beat.schedulers:DatabaseScheduler",
                     "--pidfile", str(tmp_path / f"{name}.pid")],
        }[kind] + (args or [])  # fmt: skip
        log = tmp_path / f"{name}.log"
        with log.open("w") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "hafnium_portal", kind, "--loglevel=INFO", *arguments],
                cwd=ROOT,
                env={**os.environ, "DATABASE_URL": database_url_for_subprocess(), **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        started.append(CeleryProcess(f"{name}@test" if kind == "worker" else name, process, log))
        return started[-1]

    yield start
    for celery_process in started:
        celery_process.process.terminate()
    for celery_process in started:
        try:
            celery_process.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            celery_process.process.kill()


@pytest.fixture(scope="session")
def _mlflow_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("mlflow")


@pytest.fixture
def mlflow_store(settings, _mlflow_folder):
    """A real MLflow store (SQLite, local artifacts) in a temporary folder, shared by the session's tests.

    Tests name their models uniquely (`unique_name`), since the store outlives each test.
    """
    from apps.registry import gateway

    settings.MLFLOW_TRACKING_URI = f"sqlite:///{_mlflow_folder / 'mlflow.sqlite3'}"
    settings.MLFLOW_ARTIFACT_ROOT = (_mlflow_folder / "artifacts").as_uri()
    settings.DATASET_ROOT = str(_mlflow_folder / "datasets")
    gateway.ensure_store()
    return settings.MLFLOW_TRACKING_URI


@pytest.fixture
def unique_name():
    return f"model-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def mlflow_unreachable(settings, monkeypatch):
    """MLflow as a server nobody answers for. The portal bounds each call (settings.MLFLOW_HTTP_*, set
    by the gateway); the fixture only makes sure no variable of an earlier test stands in for that."""
    from hafnium_portal.embedded_redis import free_port

    for variable in ("TIMEOUT", "MAX_RETRIES", "BACKOFF_FACTOR", "BACKOFF_JITTER"):
        monkeypatch.delenv(f"MLFLOW_HTTP_REQUEST_{variable}", raising=False)
    settings.MLFLOW_TRACKING_URI = f"http://127.0.0.1:{free_port()}"
    return settings.MLFLOW_TRACKING_URI


@pytest.fixture
def celery_eager():
    """Run enqueued tasks inline (Celery's own eager mode), for tests of what a task does."""
    from hafnium_portal.celery import app

    app.conf.task_always_eager, app.conf.task_eager_propagates = True, True
    yield app
    app.conf.task_always_eager, app.conf.task_eager_propagates = False, False


@contextmanager
def inference_process(
    settings, log: Path, *, env: dict | None = None, workers: int = 1, deadline: float = 120, ready=None
):
    """gunicorn serving the lean inference entry point on a free port, as production runs it; yields its URL.

    Ready once /healthz answers 200 (and `ready(health_json)` holds, if given); a process that dies or is
    not ready by the deadline fails the test with the end of its log.
    """
    import requests

    from hafnium_portal import embedded_redis

    port = embedded_redis.free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": database_url_for_subprocess(),
        "MLFLOW_TRACKING_URI": settings.MLFLOW_TRACKING_URI,
        "MLFLOW_ARTIFACT_ROOT": settings.MLFLOW_ARTIFACT_ROOT,
        # Loading imports MLflow: on a busy machine that can take longer than gunicorn's default timeout.
        "SERVING_LOAD_WAIT": "240",
        **(env or {}),
    }
    environment.pop("DJANGO_SETTINGS_MODULE", None)
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "python:hafnium_portal.inference_gunicorn",
             "hafnium_portal.inference_wsgi:application", "--bind", f"127.0.0.1:{port}",
             "--workers", str(workers), "--timeout", "300", "--no-control-socket"],
            cwd=ROOT, env=environment, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    until = time.monotonic() + deadline
    while True:
        try:
            health = requests.get(f"{base}/healthz", timeout=30)
            if health.status_code == 200 and (ready is None or ready(health.json())):
                break
        except requests.RequestException:
            pass
        if process.poll() is not None or time.monotonic() > until:
            process.kill()
            pytest.fail(f"gunicorn did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    try:
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
