"""Every error under /api/ is JSON {"detail": ...}, whoever raises it (DRF, the URL resolver, Django's
request parsing, an unexpected exception); pages keep their HTML error pages."""

import pytest
from django.test import RequestFactory

from hafnium_portal import errors

pytestmark = pytest.mark.django_db

TEN_MEGABYTES = 10 * 1024 * 1024


def assert_json_error(response, status: int) -> dict:
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return body


@pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded"])
def test_a_body_over_the_upload_limit_is_a_json_400(client, data_scientist, content_type):
    client.force_login(data_scientist)
    body = b'{"model": "' + b"x" * TEN_MEGABYTES + b'"}'
    response = client.generic("POST", "/api/v1/versions/register/", body, content_type=content_type)
    assert "larger than" in assert_json_error(response, 400)["detail"]


def test_a_body_of_a_type_the_api_does_not_read_is_a_json_415(client, data_scientist):
    client.force_login(data_scientist)
    response = client.generic("POST", "/api/v1/versions/register/", b"model=x", content_type="text/plain")
    assert_json_error(response, 415)


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/versions/abc/",
        "/api/v1/versions/abc/model-card/",
        "/api/v1/promotion-requests/-1/",
        "/api/v1/audit-events/1.5/",
        "/api/v1/models/.hidden/",
        "/api/v1/no-such-thing/",
        "/api/v2/",
        "/api/",
    ],
)
def test_an_address_no_api_route_matches_is_a_json_404(client, admin_user, url):
    client.force_login(admin_user)
    assert_json_error(client.get(url), 404)


def test_an_unknown_object_is_a_json_404(client, admin_user):
    client.force_login(admin_user)
    assert_json_error(client.get("/api/v1/versions/999999/"), 404)


def test_a_method_the_endpoint_does_not_take_is_a_json_405(client, admin_user, fraud_model):
    client.force_login(admin_user)
    response = client.delete(f"/api/v1/models/{fraud_model.name}/")
    assert_json_error(response, 405)
    assert "GET" in response["Allow"]


def test_anonymous_is_a_json_401_even_when_a_browser_asks_for_html(client):
    response = client.get("/api/v1/models/", headers={"accept": "text/html"})
    assert_json_error(response, 401)
    assert response["WWW-Authenticate"].startswith("Token")


def test_an_unknown_format_of_the_schema_is_a_json_404(client, admin_user):
    client.force_login(admin_user)
    assert_json_error(client.get("/api/schema/", {"format": "nope"}), 404)


def test_malformed_json_is_a_json_400(client, data_scientist):
    client.force_login(data_scientist)
    response = client.post("/api/v1/versions/register/", "{not json", content_type="application/json")
    assert "JSON parse error" in assert_json_error(response, 400)["detail"]


def test_an_unexpected_error_under_the_api_is_a_json_500_saying_nothing_of_it():
    response = errors.server_error(RequestFactory().get("/api/v1/models/"))
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert b"Traceback" not in response.content


def test_pages_keep_their_html_error_pages(client, data_scientist):
    client.force_login(data_scientist)
    missing = client.get("/models/no-such-model/")
    assert missing.status_code == 404
    assert "Page not found" in missing.content.decode()
    too_big = client.generic(
        "POST", "/models/sync/", b"model=" + b"x" * TEN_MEGABYTES, "application/x-www-form-urlencoded"
    )
    assert too_big.status_code == 400
    assert too_big["Content-Type"].startswith("text/html")
    server_error = errors.server_error(RequestFactory().get("/models/"))
    assert server_error.status_code == 500
    assert server_error["Content-Type"].startswith("text/html")
