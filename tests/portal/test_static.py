"""The portal works offline: its JavaScript and CSS come from its own static files, never a CDN."""

import re

import pytest
from django.contrib.staticfiles import finders

from tests.conftest import ROOT

VENDORED = [
    "vendor/bootstrap/bootstrap.min.css",
    "vendor/bootstrap/bootstrap.bundle.min.js",
    "vendor/htmx/htmx.min.js",
    "vendor/plotly/plotly.min.js",
]


def test_no_template_loads_anything_from_the_network():
    remote = re.compile(r"""(src|href)\s*=\s*["'](https?:)?//""", re.IGNORECASE)
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in (ROOT / "templates").rglob("*.html")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if remote.search(line)
    ]
    assert offenders == []


@pytest.mark.parametrize("asset", VENDORED)
def test_vendored_assets_are_served_by_the_portal(client, asset):
    assert finders.find(asset), f"{asset} is missing from static/"
    response = client.get(f"/static/{asset}")
    assert response.status_code == 200
    assert int(response["Content-Length"]) > 10_000


def test_base_template_uses_the_vendored_bootstrap_and_htmx():
    base = (ROOT / "templates" / "base.html").read_text()
    for asset in [
        "vendor/bootstrap/bootstrap.min.css",
        "vendor/bootstrap/bootstrap.bundle.min.js",
        "vendor/htmx/htmx.min.js",
    ]:
        assert f"{{% static '{asset}' %}}" in base
