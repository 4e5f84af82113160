"""The production shape (docker-compose.yml, Dockerfile, .env.example) checked against the code it runs.

No Docker engine runs here, so these tests are what keeps the compose file true: the services are all
there, every command names code that exists and options the installed tools accept, every variable is
read by someone and documented, every mounted file exists, and the healthchecks behave as described.
"""

import http.server
import importlib
import itertools
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import threading
from datetime import timedelta
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from django.conf import settings
from django.core.management import get_commands
from django.urls import resolve
from django.utils import timezone

from hafnium_portal import health
from tests.conftest import database_url_for_subprocess

ROOT = Path(__file__).resolve().parent.parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
SETTINGS_FILE = ROOT / "hafnium_portal" / "settings.py"

REQUIRED_SERVICES = {"postgres", "redis", "mlflow", "web", "worker", "worker-heartbeat", "beat", "prometheus"}
# The scoring API: inference replicas behind a load balancer, the log writer, and MinIO as the model store.
REQUIRED_SERVICES |= {"inference", "inference-lb", "logwriter", "minio"}
PROCFILE = ROOT / "Procfile"
ONE_SHOT_SERVICES = {"migrate"}
# Read by a library, not by settings.py: prometheus_client merges gunicorn's worker metrics through it.
LIBRARY_VARIABLES = {"PROMETHEUS_MULTIPROC_DIR"}
# Read by MLflow and boto3 (the artifact store in MinIO), and by OpenMP in the inference workers.
LIBRARY_VARIABLES |= {
    "MLFLOW_S3_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "OMP_NUM_THREADS",
}
# Read by settings.py for the embedded default only (`make run`, the tests); nothing to set in compose.
EMBEDDED_ONLY_VARIABLES = {"HAFNIUM_EMBEDDED_REDIS_PORT"}

# ${VAR}, ${VAR:-default}, ${VAR:?message}; `$${...}` is compose's escape for a literal `$`.
COMPOSE_VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)")
REQUIRED_COMPOSE_VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*):?\?")
# env("X"), env.str("X", ...), environ.Env().bool("X"), os.environ.get("X"), os.getenv("X")
SETTINGS_VARIABLE = re.compile(
    r"""(?:\benv|Env\(\)|os\.environ|os)(?:\.\w+)?[(\[]\s*["']([A-Z][A-Z0-9_]*)["']"""
)
ENV_EXAMPLE_VARIABLE = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=")
# The URL a `python -c` healthcheck probes inside its container.
PROBE_URL = re.compile(r"http://localhost:(\d+)(/[^\"']*)")

# Importing mlflow's CLI configures its SQLAlchemy mappers, which warns about an option of its own.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:mlflow.store.tracking.sqlalchemy_store")


# --- reading the files -------------------------------------------------------------------------


@cache
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def services() -> dict[str, dict]:
    return compose()["services"]


def built_from_our_dockerfile(service: dict) -> bool:
    build = service.get("build")
    if build is None:
        return False
    if isinstance(build, str):
        build = {"context": build}
    context = ROOT / build.get("context", ".")
    return (context / build.get("dockerfile", "Dockerfile")).resolve() == DOCKERFILE


def our_image_services() -> dict[str, dict]:
    return {name: service for name, service in services().items() if built_from_our_dockerfile(service)}


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {name: str(value) for name, value in env.items()}


def uninterpolated(value: str) -> str:
    """The value with each ${...} replaced by a placeholder, so that it parses as a URL or a list."""
    return re.sub(r"\$\{[^}]*\}", "placeholder", value)


def argv_of(command: str | list[str]) -> list[str]:
    """The argv a command runs with; compose turns its `$$` escape into `$`."""
    if isinstance(command, str):
        return shlex.split(command.replace("$$", "$"))
    return [str(arg).replace("$$", "$") for arg in command]


def command_lines(command: str | list[str]) -> list[list[str]]:
    """The programs a command runs: `sh -c "a && b"` runs a, then b."""
    argv = argv_of(command)
    if argv[:2] == ["sh", "-c"]:
        return [shlex.split(part) for part in argv[2].split("&&")]
    return [argv]


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, arguments = line.partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def dockerfile_cmd() -> list[str]:
    cmds = [arguments for keyword, arguments in dockerfile_instructions() if keyword == "CMD"]
    assert cmds, "the Dockerfile has no CMD"
    return json.loads(cmds[-1])


def settings_variables() -> set[str]:
    return set(SETTINGS_VARIABLE.findall(SETTINGS_FILE.read_text()))


def env_example_lines() -> list[str]:
    return ENV_EXAMPLE.read_text().splitlines()


def env_example_variables(*, set_only: bool = False) -> set[str]:
    names = set()
    for line in env_example_lines():
        match = ENV_EXAMPLE_VARIABLE.match(line)
        if match and not (set_only and line.startswith("#")):
            names.add(match.group(1))
    return names


def healthcheck_argv(service: dict) -> list[str]:
    test = service["healthcheck"]["test"]
    if isinstance(test, str):
        return argv_of(test)
    if test[0] == "CMD-SHELL":
        return argv_of(test[1])
    assert test[0] == "CMD", f"unexpected healthcheck form {test[0]!r}"
    return argv_of(test[1:])


def python_snippet(service: dict) -> str:
    argv = healthcheck_argv(service)
    assert argv[:2] == ["python", "-c"], f"not a `python -c` healthcheck: {argv}"
    return argv[2]


# --- entry points: each program the portal's image runs must exist and accept its options ------------


def check_gunicorn(argv: list[str]) -> None:
    from gunicorn.config import Config

    parser = Config(usage="%(prog)s [OPTIONS] [APP_MODULE]", prog="gunicorn").parser()
    parsed = parser.parse_args(argv[1:])  # exits (SystemExit) on an unknown option
    assert len(parsed.args) == 1, f"gunicorn takes one APP_MODULE, got {parsed.args}"
    module_name, _, attribute = parsed.args[0].partition(":")
    application = getattr(importlib.import_module(module_name), attribute or "application")
    assert callable(application), f"{parsed.args[0]} is not a WSGI callable"


def split_celery(argv: list[str]) -> tuple[str, str, list[str]]:
    """`celery -A app sub args...` -> (app, sub, args)."""
    rest, app_name = argv[1:], None
    while rest and rest[0].startswith("-"):
        option = rest.pop(0)
        if option in ("-A", "--app"):
            app_name = rest.pop(0)
        elif option.startswith("--app="):
            app_name = option.partition("=")[2]
        else:
            pytest.fail(f"unexpected celery option {option!r} in {argv}")
    assert app_name, f"celery without -A: {argv}"
    assert rest, f"celery without a subcommand: {argv}"
    return app_name, rest[0], rest[1:]


def parse_celery(argv: list[str]):
    """The click context of the subcommand, parsed as celery itself would parse it."""
    from celery import Celery
    from celery.app.utils import find_app
    from celery.bin.base import CLIContext
    from celery.bin.celery import celery as celery_cli

    app_name, subcommand, arguments = split_celery(argv)
    app = find_app(app_name)  # how `celery -A` resolves it: module.app, module.celery, package.celery
    assert isinstance(app, Celery), f"celery -A {app_name} finds no Celery app"
    assert subcommand in celery_cli.commands, f"celery has no subcommand {subcommand!r}"
    obj = CLIContext(app=app, no_color=True, workdir=None, quiet=True)
    return celery_cli.commands[subcommand].make_context(subcommand, list(arguments), obj=obj)


def check_celery(argv: list[str]) -> None:
    context = parse_celery(argv)
    scheduler = context.params.get("scheduler")
    if scheduler:
        module_name, _, class_name = scheduler.partition(":")
        assert hasattr(importlib.import_module(module_name), class_name), f"no scheduler {scheduler}"


def check_manage_py(argv: list[str]) -> None:
    assert argv[1] == "manage.py", f"unexpected python program {argv[1:]}"
    assert (ROOT / "manage.py").is_file()
    assert argv[2] in get_commands(), f"manage.py has no command {argv[2]!r}"


def check_mlflow(argv: list[str]) -> None:
    from mlflow.cli import cli

    assert argv[1] in cli.commands, f"mlflow has no command {argv[1]!r}"
    cli.commands[argv[1]].make_context(argv[1], list(argv[2:]))  # raises on an unknown option


ENTRY_POINT_CHECKS = {
    "gunicorn": check_gunicorn,
    "celery": check_celery,
    "python": check_manage_py,
    "mlflow": check_mlflow,
}


def check_entry_point(argv: list[str]) -> None:
    check = ENTRY_POINT_CHECKS.get(argv[0])
    assert check is not None, f"no check knows the program {argv[0]!r}: add one"
    check(argv)


def our_image_commands() -> list[tuple[str, list[str]]]:
    """(service, argv) of each program run by a service of our image; the Dockerfile's CMD by default."""
    return [
        (name, argv)
        for name, service in our_image_services().items()
        for argv in command_lines(service.get("command") or dockerfile_cmd())
    ]


def command_id(name: str, argv: list[str]) -> str:
    return f"{name}: " + " ".join(word for word in argv[:4] if "${" not in word)


# --- services, healthchecks, dependencies ------------------------------------------------------


def test_every_required_service_is_defined():
    assert set(services()) >= REQUIRED_SERVICES


@pytest.mark.parametrize("name", sorted(set(services()) - ONE_SHOT_SERVICES))
def test_every_long_running_service_has_a_healthcheck(name):
    healthcheck = services()[name].get("healthcheck")
    assert healthcheck, f"{name} has no healthcheck"
    assert not healthcheck.get("disable")
    assert healthcheck.get("test")
    assert healthcheck["test"] != ["NONE"]


@pytest.mark.parametrize("name", sorted(ONE_SHOT_SERVICES))
def test_one_shot_service_runs_once_and_gates_the_portal(name):
    assert str(services()[name].get("restart", "no")) == "no"
    for waiting in ("web", "worker", "worker-heartbeat", "beat"):
        condition = services()[waiting]["depends_on"][name]["condition"]
        assert condition == "service_completed_successfully", waiting


def test_every_dependency_waits_on_a_condition_the_dependency_can_meet():
    for name, service in services().items():
        depends_on = service.get("depends_on") or {}
        assert isinstance(depends_on, dict), f"{name}: depends_on without conditions"
        for dependency, spec in depends_on.items():
            assert dependency in services(), f"{name} depends on unknown {dependency}"
            condition = spec["condition"]
            if condition == "service_healthy":
                assert services()[dependency].get("healthcheck"), f"{name} waits on {dependency}'s health"
            elif condition == "service_completed_successfully":
                assert dependency in ONE_SHOT_SERVICES, f"{dependency} never completes"
            else:
                assert condition == "service_started", f"{name}: unknown condition {condition}"


# --- commands ------------------------------------------------------------------------------------


def test_the_portal_services_are_built_from_our_dockerfile():
    assert {"mlflow", "migrate", "web", "worker", "worker-heartbeat", "beat"} <= set(our_image_services())


@pytest.mark.parametrize(
    ("name", "argv"), our_image_commands(), ids=[command_id(n, argv) for n, argv in our_image_commands()]
)
def test_command_entry_point_exists(name, argv):
    check_entry_point(argv)


def test_dockerfile_cmd_entry_point_exists():
    check_entry_point(dockerfile_cmd())


def test_web_listens_where_it_is_published_probed_and_exposed():
    web = services()["web"]
    argv = argv_of(web["command"])
    port = argv[argv.index("--bind") + 1].rpartition(":")[2]
    published = [str(mapping).rpartition(":")[2] for mapping in web["ports"]]
    assert published == [port]
    assert [probed_port for probed_port, _ in PROBE_URL.findall(python_snippet(web))] == [port]
    exposed = [arguments for keyword, arguments in dockerfile_instructions() if keyword == "EXPOSE"]
    assert exposed == [port]


def test_portal_urls_point_at_compose_services():
    env = environment(services()["web"])
    for variable in ("DATABASE_URL", "REDIS_URL", "MLFLOW_TRACKING_URI"):
        assert urlsplit(uninterpolated(env[variable])).hostname in services(), variable


def test_databases_named_in_urls_are_created_by_postgres():
    postgres = services()["postgres"]
    init_scripts = "\n".join(
        (ROOT / source).read_text()
        for source, _, target in (str(volume).partition(":") for volume in postgres["volumes"])
        if target.startswith("/docker-entrypoint-initdb.d/")
    )
    created = {environment(postgres)["POSTGRES_DB"]} | set(
        re.findall(r"CREATE DATABASE\s+\"?(\w+)", init_scripts, re.IGNORECASE)
    )
    mlflow_argv = argv_of(services()["mlflow"]["command"])
    backend_store = mlflow_argv[mlflow_argv.index("--backend-store-uri") + 1]
    for url in (environment(services()["web"])["DATABASE_URL"], backend_store):
        assert urlsplit(uninterpolated(url)).path.lstrip("/") in created, url


def test_mlflow_server_accepts_the_host_the_portal_calls_it_by():
    from mlflow.server.security_utils import is_allowed_host_header

    argv = argv_of(services()["mlflow"]["command"])
    tracking = urlsplit(environment(services()["web"])["MLFLOW_TRACKING_URI"])
    assert tracking.port == int(argv[argv.index("--port") + 1])
    allowed_hosts = argv[argv.index("--allowed-hosts") + 1].split(",")
    assert is_allowed_host_header(allowed_hosts, tracking.netloc)


# --- environment variables ---------------------------------------------------------------------


def test_portal_environment_variables_are_read_by_settings():
    known = settings_variables() | LIBRARY_VARIABLES
    unknown = {
        f"{name}: {variable}"
        for name, service in our_image_services().items()
        for variable in environment(service)
        if variable not in known
    }
    assert not unknown, "passed to the portal but read by nobody"


def test_every_compose_variable_is_in_env_example():
    missing = set(COMPOSE_VARIABLE.findall(COMPOSE_FILE.read_text())) - env_example_variables()
    assert not missing


def test_every_required_compose_variable_is_set_in_env_example():
    required = set(REQUIRED_COMPOSE_VARIABLE.findall(COMPOSE_FILE.read_text()))
    assert "DJANGO_SECRET_KEY" in required, "production must refuse to start without a secret"
    not_set = required - env_example_variables(set_only=True)
    assert not not_set


def test_every_setting_variable_is_documented_in_env_example():
    undocumented = settings_variables() - EMBEDDED_ONLY_VARIABLES - env_example_variables()
    assert not undocumented


def test_every_env_example_variable_is_used():
    used = set(COMPOSE_VARIABLE.findall(COMPOSE_FILE.read_text())) | settings_variables() | LIBRARY_VARIABLES
    unused = env_example_variables() - used
    assert not unused


def test_env_example_explains_every_variable():
    lines = env_example_lines()
    unexplained = [
        line
        for previous, line in itertools.pairwise(lines)
        if ENV_EXAMPLE_VARIABLE.match(line)
        and not (previous.startswith("# ") and not ENV_EXAMPLE_VARIABLE.match(previous))
    ]
    assert not unexplained, "each variable needs a comment line of its own just above it"


# --- files ---------------------------------------------------------------------------------------


def test_every_file_mounted_from_the_repository_exists():
    mounted = [
        str(volume).partition(":")[0]
        for service in services().values()
        for volume in service.get("volumes", [])
        if str(volume).startswith(("./", "../"))
    ]
    assert mounted, "nothing is mounted from the repository"
    missing = [source for source in mounted if not (ROOT / source).is_file()]
    assert not missing


def test_dockerfile_runs_as_an_unprivileged_user():
    users = [arguments for keyword, arguments in dockerfile_instructions() if keyword == "USER"]
    assert users
    assert users[-1].split(":")[0] not in ("root", "0")


def test_build_secret_key_is_confined_to_the_collectstatic_step():
    for keyword, arguments in dockerfile_instructions():
        if "DJANGO_SECRET_KEY" in arguments:
            assert keyword == "RUN", arguments
            assert "collectstatic --noinput" in arguments
    assert any("collectstatic --noinput" in arguments for _, arguments in dockerfile_instructions())


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_image():
    ignored = {line.strip() for line in DOCKERIGNORE.read_text().splitlines()}
    assert {".env", ".git", ".venv", "var", "staticfiles"} <= ignored


# --- prometheus ----------------------------------------------------------------------------------


def prometheus_config() -> dict:
    for volume in services()["prometheus"]["volumes"]:
        source, _, target = str(volume).partition(":")
        if target.split(":")[0] == "/etc/prometheus/prometheus.yml":
            return yaml.safe_load((ROOT / source).read_text())
    pytest.fail("prometheus mounts no /etc/prometheus/prometheus.yml")


def portal_scrape_targets() -> list[tuple[str, str, int]]:
    """(metrics path, service, port) of each scrape target that is a service of our image."""
    targets = []
    for job in prometheus_config()["scrape_configs"]:
        for static_config in job.get("static_configs", []):
            for target in static_config["targets"]:
                host, _, port = target.partition(":")
                if host in our_image_services():
                    targets.append((job.get("metrics_path", "/metrics"), host, int(port)))
    return targets


def test_prometheus_scrapes_the_portal_metrics_view():
    targets = portal_scrape_targets()
    assert [service for _, service, _ in targets] == ["web"]
    for path, _, _ in targets:
        assert resolve(path).func is health.metrics


def test_prometheus_scrape_target_is_an_allowed_host_and_the_bound_port():
    for _, service, port in portal_scrape_targets():
        allowed = uninterpolated(environment(services()[service])["DJANGO_ALLOWED_HOSTS"]).split(",")
        assert service in allowed
        argv = argv_of(services()[service]["command"])
        assert argv[argv.index("--bind") + 1].endswith(f":{port}")


def test_probed_paths_are_exempt_from_the_https_redirect():
    """Prometheus and the healthcheck speak plain HTTP inside the network; SECURE_SSL_REDIRECT stays on."""
    probed = [path for path, _, _ in portal_scrape_targets()]
    probed += [path for _, path in PROBE_URL.findall(python_snippet(services()["web"]))]
    assert len(probed) == 2
    for path in probed:
        assert any(re.search(pattern, path.lstrip("/")) for pattern in settings.SECURE_REDIRECT_EXEMPT), path


# --- healthchecks that run the portal's code ----------------------------------------------------


class _Unavailable(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(503)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_web_healthcheck_counts_any_http_answer_as_alive():
    snippet = python_snippet(services()["web"])
    assert resolve(PROBE_URL.search(snippet).group(2)).func is health.healthz
    server = http.server.HTTPServer(("127.0.0.1", 0), _Unavailable)
    port = server.server_address[1]
    probe = PROBE_URL.sub(lambda url: f"http://127.0.0.1:{port}{url.group(2)}", snippet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        answered_503 = subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=30)
    finally:
        server.shutdown()
        server.server_close()
    nobody_listening = subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=30)
    assert answered_503.returncode == 0, answered_503.stderr
    assert nobody_listening.returncode != 0


def queues_consumed(argv: list[str]) -> set[str]:
    """The queues a `celery worker` command consumes: its -Q, else every queue of the settings."""
    queues = parse_celery(argv).params.get("queues")
    if not queues:
        return {queue.name for queue in settings.CELERY_TASK_QUEUES}
    return {name for item in queues for name in item.split(",")}


def procfile_commands() -> dict[str, list[str]]:
    lines = [line.partition(":") for line in PROCFILE.read_text().splitlines() if line.strip()]
    return {name.strip(): shlex.split(command) for name, _, command in lines}


def celery_workers() -> dict[str, list[str]]:
    """Every `celery worker` the production shape and the embedded default (Procfile) run."""
    workers = {f"compose {name}": argv for name, argv in our_image_commands() if argv[:1] == ["celery"]}
    workers |= {
        f"Procfile {name}": argv for name, argv in procfile_commands().items() if argv[:1] == ["celery"]
    }
    return {name: argv for name, argv in workers.items() if split_celery(argv)[1] == "worker"}


@pytest.mark.parametrize("shape", ["compose", "Procfile"])
def test_the_heartbeat_has_a_worker_of_its_own_that_runs_nothing_else(shape):
    """A pool busy with slow tasks (MLflow, training) never makes /healthz call the workers dead."""
    from hafnium_portal.celery import app

    workers = {name: argv for name, argv in celery_workers().items() if name.startswith(shape)}
    heartbeat_queue = app.amqp.router.route({}, "hafnium_portal.health.record_worker_heartbeat")["queue"].name
    assert heartbeat_queue == settings.HEARTBEAT_QUEUE != settings.CELERY_TASK_DEFAULT_QUEUE
    assert settings.CELERY_BEAT_SCHEDULE["worker-heartbeat"]["options"]["queue"] == heartbeat_queue
    consuming = {name: queues_consumed(argv) for name, argv in workers.items()}
    assert [queues for queues in consuming.values() if heartbeat_queue in queues] == [{heartbeat_queue}]
    assert any(settings.CELERY_TASK_DEFAULT_QUEUE in queues for queues in consuming.values())
    # Every queue of the settings has a consumer.
    assert set().union(*consuming.values()) == {queue.name for queue in settings.CELERY_TASK_QUEUES}


def test_every_procfile_celery_command_exists():
    for argv in procfile_commands().values():
        if argv[:1] == ["celery"]:
            check_celery(argv)


@pytest.mark.parametrize("name", ["worker", "worker-heartbeat"])
def test_worker_healthcheck_pings_the_workers_own_node_name(name):
    worker = services()[name]
    worker_context = parse_celery(argv_of(worker["command"]))
    # The worker keeps celery's default node name, celery@<hostname>, which is what the probe pings.
    assert worker_context.params["hostname"] == f"celery@{socket.gethostname()}"
    probe = healthcheck_argv(worker)
    probe_context = parse_celery(probe)
    assert split_celery(probe)[:2] == (split_celery(argv_of(worker["command"]))[0], "inspect")
    assert probe_context.params["command"] == "ping"
    assert probe_context.params["destination"] == ["celery@$HOSTNAME"]


def run_beat_healthcheck(snippet: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": database_url_for_subprocess()}
    return subprocess.run([sys.executable, "-c", snippet], cwd=ROOT, env=env, capture_output=True, timeout=60)


def test_beat_healthcheck_follows_beat_sending_the_heartbeat(transactional_db):
    from django_celery_beat.models import PeriodicTask
    from django_celery_beat.schedulers import DatabaseScheduler

    from hafnium_portal.celery import app

    DatabaseScheduler(app=app)  # installs settings.CELERY_BEAT_SCHEDULE as beat does at start
    heartbeat = PeriodicTask.objects.filter(name="worker-heartbeat")
    snippet = python_snippet(services()["beat"])

    heartbeat.update(last_run_at=None)
    assert run_beat_healthcheck(snippet).returncode == 1, "beat that has sent nothing yet"
    heartbeat.update(last_run_at=timezone.now() - timedelta(seconds=30))
    sent_recently = run_beat_healthcheck(snippet)
    assert sent_recently.returncode == 0, sent_recently.stderr.decode()
    heartbeat.update(last_run_at=timezone.now() - timedelta(hours=1))
    assert run_beat_healthcheck(snippet).returncode == 1, "beat that stopped sending"


# --- inference (the scoring API) ------------------------------------------------------------------


def test_inference_runs_the_lean_entry_point_behind_the_load_balancer():
    inference, balancer = services()["inference"], services()["inference-lb"]
    argv = argv_of(inference["command"])
    assert argv[0] == "gunicorn"
    assert "hafnium_portal.inference_wsgi:application" in argv
    port = argv[argv.index("--bind") + 1].rpartition(":")[2]
    assert int(str(inference["deploy"]["replicas"]).split(":-")[-1].rstrip("}")) >= 2
    config = next(
        (ROOT / str(volume).partition(":")[0]).read_text()
        for volume in balancer["volumes"]
        if "/etc/nginx/" in str(volume)
    )
    assert f"server inference:{port}" in config
    assert balancer["image"].startswith("nginx:")
    allowed = uninterpolated(environment(inference)["DJANGO_ALLOWED_HOSTS"]).split(",")
    assert {"inference-lb", "inference"} <= set(allowed)
    assert f"http://localhost:{port}/healthz" in python_snippet(inference)


def test_prometheus_scrapes_every_inference_replica():
    jobs = {job["job_name"]: job for job in prometheus_config()["scrape_configs"]}
    inference = jobs["hafnium-inference"]
    argv = argv_of(services()["inference"]["command"])
    port = int(argv[argv.index("--bind") + 1].rpartition(":")[2])
    assert inference["dns_sd_configs"] == [{"names": ["inference"], "type": "A", "port": port}]
    assert resolve(inference["metrics_path"]).func is health.metrics


def test_mlflow_keeps_its_artifacts_in_minio():
    argv = argv_of(services()["mlflow"]["command"])
    assert argv[argv.index("--artifacts-destination") + 1].startswith("s3://")
    endpoint = urlsplit(environment(services()["mlflow"])["MLFLOW_S3_ENDPOINT_URL"])
    assert endpoint.hostname in services()
    assert services()["mlflow"]["depends_on"]["minio"]["condition"] == "service_healthy"
