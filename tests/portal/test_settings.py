"""Settings from the environment: no start without a secret in production; check --deploy is clean."""

import os
import secrets
import subprocess
import sys

from tests.conftest import ROOT

# What the test run sets (tests.environment, tests/e2e) and a production environment does not.
TEST_ONLY = [
    "DJANGO_SECURE_SSL_REDIRECT",
    "DJANGO_SECURE_COOKIES",
    "DJANGO_STATIC_MANIFEST",
    "DJANGO_DEBUG",
    "DJANGO_ALLOW_ASYNC_UNSAFE",
]


def _manage(*args, **env):
    base = {k: v for k, v in os.environ.items() if k not in TEST_ONLY and k != "DJANGO_SECRET_KEY"}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_portal_refuses_to_start_without_secret_key_when_debug_is_off():
    result = _manage("check", DJANGO_DEBUG="false")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr


def test_debug_without_secret_key_starts_with_a_local_key():
    result = _manage("check", DJANGO_DEBUG="true")
    assert result.returncode == 0, result.stderr


def test_check_deploy_is_clean_with_production_variables():
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="portal.hafnium.example",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
