"""Every URL pattern of the project, given hostile segments, query strings and bodies, answers without a 5xx.

The walk reads the URL patterns themselves (`get_resolver().url_patterns`, recursively), so a page or an
endpoint added later is walked too. Each parameter of a pattern gets each hostile value in turn while the
others hold real values (so that the hostile one is the value a view would look up), and each pattern is
requested with hostile query parameters and form fields under the names the portal's filters and forms
use. Signed in as a superuser (who reaches every view) with GET and POST, and anonymously.

The admin is walked too, with a shorter list of values: it is Django's own code, reachable by superusers
only, and its hundred patterns would otherwise make this the slowest test of the suite.
"""

import re
from urllib.parse import quote, urlencode

import pytest
from django.core.signals import got_request_exception
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RegexPattern, RoutePattern

from apps.governance import services
from apps.registry.models import Stage

pytestmark = pytest.mark.django_db

HOSTILE = [
    "x\x00y",  # NUL: PostgreSQL refuses it in text ("cannot contain NUL")
    "\x00",
    "%00",  # the three characters, once decoded
    "x" * 5000,
    "..",
    "' OR 1=1--",
    "модель-😀\u202e",
    "\x1b[31m\r\n",
    "-1",
    "0",
    "99999999999999999999999999",  # over any integer column
    "١٢",  # Arabic-Indic digits: Python's int() takes them
]
# In query strings and form fields (every field at once): fewer values, the ones that broke something.
HOSTILE_FIELDS = ["x\x00y", "%00", "x" * 5000, "99999999999999999999999999", "модель-😀\u202e"]
HOSTILE_FOR_ADMIN = ["x\x00y", "x" * 5000, "99999999999999999999999999"]
HOSTILE_FIELDS_FOR_ADMIN = ["x\x00y"]
# The names of the query parameters and form fields the portal's pages and API read.
FIELDS = [
    "q", "search", "model", "team", "stage", "status", "to_stage", "mine", "inbox", "page", "cursor",
    "actor", "action", "object_type", "object_id", "date", "date_from", "date_to", "a", "b", "version",
    "name", "role", "comment", "body", "justification", "run_id", "username", "password",
    "old_password", "new_password1", "new_password2", "intended_use", "limitations", "format",
]  # fmt: skip
VALID = {"int": "1", "modelname": "fraud-scorer", "path": "1", "str": "1", "slug": "x"}
API_HTML_PAGES = {"/api/docs/"}  # the Swagger UI is a page
# /healthz answers 503 when the worker's heartbeat is missing (none runs here): that is its answer, and
# it reads no input.
PROBES = {"/healthz"}


def walk(patterns, prefix: str = "", converters: dict | None = None):
    """(route template, {parameter: converter name}) for every URL pattern, includes followed."""
    for pattern in patterns:
        route, params = _template(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from walk(pattern.url_patterns, prefix + route, {**(converters or {}), **params})
        elif isinstance(pattern, URLPattern):
            yield prefix + route, {**(converters or {}), **params}


def _template(pattern) -> tuple[str, dict]:
    """The pattern as a string with `{name}` placeholders, and the kind of each parameter."""
    if isinstance(pattern, RoutePattern):
        params = {}

        def placeholder(match):
            kind, name = match.group(1) or "str", match.group(2)
            params[name] = kind
            return "{" + name + "}"

        return re.sub(r"<(?:(\w+):)?(\w+)>", placeholder, str(pattern)), params
    assert isinstance(pattern, RegexPattern), pattern
    regex, params, out, i = str(pattern), {}, [], 0
    while i < len(regex):
        if regex.startswith("(?P<", i):
            name = regex[i + 4 : regex.index(">", i)]
            depth, j = 0, i
            while True:  # to the group's closing parenthesis
                depth += {"(": 1, ")": -1}.get(regex[j], 0) if regex[j - 1] != "\\" else 0
                if depth == 0:
                    break
                j += 1
            params[name] = "int" if regex[i:j].endswith(r"\d+") else "str"
            out.append("{" + name + "}")
            i = j + 1
        else:
            out.append(regex[i])
            i += 1
    template = "".join(out).replace("^", "").replace("$", "").replace("\\", "")
    return template, params


def urls_to_try():
    """Each parameter hostile in turn, the others valid; then hostile query strings."""
    for template, params in walk(get_resolver().url_patterns):
        admin = template.startswith("admin/")
        valid = {name: VALID.get(kind, "1") for name, kind in params.items()}
        for name in params:
            for value in HOSTILE_FOR_ADMIN if admin else HOSTILE:
                yield "/" + template.format(**{**valid, name: quote(value, safe="")})
        base = "/" + template.format(**valid)
        for value in HOSTILE_FIELDS_FOR_ADMIN if admin else HOSTILE_FIELDS:
            yield base + "?" + urlencode(dict.fromkeys(FIELDS, value))


@pytest.fixture
def server_errors():
    """Every exception a view let out, with the request that caused it."""
    caught = []

    def record(sender, request, **kwargs):
        import sys

        caught.append(f"{request.method} {request.get_full_path()[:200]!r}: {sys.exc_info()[1]!r}")

    got_request_exception.connect(record)
    yield caught
    got_request_exception.disconnect(record)


@pytest.fixture
def portal_objects(fraud_model, data_scientist):
    """fraud-scorer with its versions, and a pending request #1: the valid values point at real things."""
    services.promotion_request_create(
        actor=data_scientist,
        version=fraud_model.versions.get(version=2),
        to_stage=Stage.PRODUCTION,
        justification="recall up 4 points",
    )


def _request(client: Client, method: str, url: str, value: str):
    if method == "get":
        return client.get(url)
    path, _, query = url.partition("?")
    body = dict.fromkeys(FIELDS, value if query else "x\x00y")
    if path.startswith("/api/"):
        return client.post(url, body, content_type="application/json")
    return client.post(url, body)


@pytest.mark.parametrize("who", ["superuser", "anonymous"])
def test_no_url_answers_a_server_error_to_hostile_input(who, admin_user, portal_objects, server_errors):
    client = Client(raise_request_exception=False)
    answers, tried, signed_out = [], 0, True
    for url in urls_to_try():
        if who == "anonymous" and "?" in url and not url.split("?")[0].startswith("/accounts/login"):
            continue  # anonymous requests stop at the login: one pass over the paths is enough
        for method in ("get", "post"):
            path = url.split("?")[0]
            if who == "superuser" and signed_out:
                client.force_login(admin_user)
            response = _request(client, method, url, url.partition("?")[2])
            signed_out = "logout" in path  # a POST there signs out
            tried += 1
            if response.status_code >= 500 and path not in PROBES:
                answers.append(f"{method.upper()} {url[:200]!r} -> {response.status_code}")
            elif (
                path.startswith("/api/")
                and path not in API_HTML_PAGES
                and response.status_code >= 400
                and response["Content-Type"] != "application/json"
            ):
                answers.append(f"{method.upper()} {url[:200]!r} -> {response.status_code} not JSON")
    assert tried > 500
    assert not answers, "\n".join(answers[:50] + server_errors[:20])
    assert not server_errors, "\n".join(server_errors[:50])


def test_the_walk_reaches_every_kind_of_pattern():
    found = dict(walk(get_resolver().url_patterns))
    assert found["models/{name}/versions/{version}/"] == {"name": "modelname", "version": "int"}
    assert found["governance/models/{name}/history/"] == {"name": "modelname"}
    assert found["api/v1/models/{name}/"] == {"name": "str"}
    assert found["api/v1/promotion-requests/{pk}/approve/"] == {"pk": "int"}
    assert any(template.startswith("admin/") for template in found)


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/models/x%00y/",
        "/models/%00/",
        "/models/a%00/",
        "/models/a%00/versions/1/",
        "/models/a%00/card/edit/",
        "/models/a%00/compare/",
        "/governance/models/a%00/history/",
    ],
)
def test_nul_in_a_model_name_is_not_found(url, client, admin_user, fraud_model):
    client.force_login(admin_user)
    assert client.get(url).status_code == 404


def test_nul_in_the_sync_now_field_is_not_found(client, admin_user, fraud_model):
    client.force_login(admin_user)
    assert client.post("/models/sync/", {"model": "fraud-scorer\x00"}).status_code == 404


@pytest.mark.parametrize(
    "query",
    [
        "/api/v1/versions/?model=a%00",
        "/api/v1/models/?search=a%00",
        "/api/v1/promotion-requests/?model=a%00",
        "/api/v1/audit-events/?actor=a%00",
        "/api/v1/datasets/?name=a%00",
    ],
)
def test_nul_in_an_api_filter_is_a_bad_request_naming_it(query, client, admin_user):
    client.force_login(admin_user)
    response = client.get(query)
    assert response.status_code == 400
    field = query.split("?")[1].split("=")[0]
    assert field in response.json()


@pytest.mark.parametrize("url", ["/accounts/login/", "/admin/login/"])
@pytest.mark.parametrize("username", ["x" * 5000, "ada\x00"])
def test_an_overlong_or_nul_username_is_a_wrong_login_not_a_server_error(url, username, client):
    # Found by the walk: the login forms let a long username through to django-axes, whose column is
    # 255 long (a 500 on PostgreSQL).
    response = client.post(url, {"username": username, "password": "whatever-it-is"})
    assert response.status_code == 200
    assert "correct username and password" in response.content.decode()
    assert "_auth_user_id" not in client.session
