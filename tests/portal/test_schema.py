"""The OpenAPI schema documents the errors the API really answers, and schemathesis finds no mismatch.

The schemathesis run is the tool itself (`python -m schemathesis.cli run`, every check) against a live
server on the test database, signed in with a superuser's token, with a fixed seed and a bounded number
of examples per operation; the path ids point at real objects so the detail endpoints are reached.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rest_framework.authtoken.models import Token

from apps.audit.models import AuditEvent
from apps.governance import services
from apps.registry.models import Stage

ROOT = Path(__file__).resolve().parents[2]
SCHEMATHESIS_EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "12"))


def operations(schema: dict):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


@pytest.fixture
def api_schema(client, admin_user) -> dict:
    client.force_login(admin_user)
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return json.loads(response.content)


@pytest.mark.django_db
def test_every_operation_documents_its_errors_with_the_bodies_the_api_writes(api_schema):
    error = {"$ref": "#/components/schemas/Error"}
    bad_input = {"oneOf": [{"$ref": "#/components/schemas/ValidationError"}, error]}
    for path, method, operation in operations(api_schema):
        where = f"{method.upper()} {path}"
        responses = operation["responses"]
        assert "401" in responses, where
        for code, response in responses.items():
            if int(code) >= 400:
                body = response["content"]["application/json"]["schema"]
                assert body == (bad_input if code == "400" else error), (where, code)
                assert response["description"], (where, code)
        parameters = operation.get("parameters", [])
        if any(parameter["in"] == "path" for parameter in parameters):
            assert "404" in responses, where
        if "requestBody" in operation or any(parameter["name"] == "stage" for parameter in parameters):
            assert "400" in responses, where
        if method != "get":
            assert "403" in responses, where


@pytest.mark.django_db
def test_declared_errors_keep_their_description_and_get_the_standard_body(api_schema):
    register = api_schema["paths"]["/api/v1/versions/register/"]["post"]["responses"]
    assert register["503"]["description"] == "MLflow is unavailable"
    assert register["503"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    approve = api_schema["paths"]["/api/v1/promotion-requests/{id}/approve/"]["post"]["responses"]
    assert "409" in approve


@pytest.mark.django_db
def test_error_components_describe_detail_and_field_messages(api_schema):
    components = api_schema["components"]["schemas"]
    assert components["Error"]["required"] == ["detail"]
    field_messages = components["ValidationError"]["additionalProperties"]["oneOf"]
    assert {"type": "array", "items": {"type": "string"}} in field_messages


@pytest.mark.django_db
def test_an_empty_optional_filter_is_documented_as_allowed(api_schema, client, fraud_model):
    # DRF reads "?stage=" as no filter: the schema must not promise a 400 for it.
    parameters = api_schema["paths"]["/api/v1/versions/"]["get"]["parameters"]
    stage = next(parameter for parameter in parameters if parameter["name"] == "stage")
    assert stage["allowEmptyValue"] is True
    assert client.get("/api/v1/versions/", {"stage": ""}).status_code == 200


@pytest.mark.django_db
def test_model_names_in_the_schema_follow_the_one_rule(api_schema):
    parameters = api_schema["paths"]["/api/v1/models/{name}/"]["get"]["parameters"]
    name = next(parameter for parameter in parameters if parameter["name"] == "name")
    assert name["schema"]["pattern"] == r"^\w[\w.-]{0,199}$"


def _config(tmp_path: Path, ids: dict[str, int]) -> Path:
    """The project's schemathesis.toml, with the ids of real objects offered for the detail endpoints."""
    blocks = [(ROOT / "schemathesis.toml").read_text()]
    for prefix, pk in ids.items():
        blocks.append(
            f'[dictionaries.{prefix}]\nvalues = ["{pk}"]\n\n'
            f'[[operations]]\ninclude-path-regex = "^/api/v1/{prefix}/\\\\{{id\\\\}}/"\n'
            f'parameters = {{ "path.id" = {{ dictionary = "{prefix}", probability = 0.7 }} }}\n'
        )
    config = tmp_path / "schemathesis.toml"
    config.write_text("\n".join(blocks))
    return config


def test_schemathesis_finds_no_mismatch_with_every_check(
    live_server, mlflow_store, admin_user, fraud_model, other_model, data_scientist, dataset, tmp_path, client
):
    pending = services.promotion_request_create(
        actor=data_scientist,
        version=fraud_model.versions.get(version=2),
        to_stage=Stage.PRODUCTION,
        justification="recall up 4 points on card-not-present",
    )
    ids = {
        "promotion-requests": pending.pk,
        "versions": fraud_model.versions.get(version=3).pk,
        "datasets": dataset.pk,
        "audit-events": AuditEvent.objects.latest("id").pk,
    }
    token = Token.objects.create(user=admin_user)
    command = [
        sys.executable, "-m", "schemathesis.cli", "--no-color", "--config-file", str(_config(tmp_path, ids)),
        "run", f"{live_server.url}/api/schema/",
        "--checks", "all",
        "--header", f"Authorization: Token {token.key}",
        "--max-examples", str(SCHEMATHESIS_EXAMPLES),
        "--generation-deterministic",
        "--workers", "1",
        # Not a timing test: bounds only so that a hung request fails the run instead of stalling it.
        "--request-timeout", "120",
        "--max-response-time", "120",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=tmp_path, check=False)
    output = result.stdout + result.stderr
    (tmp_path / "schemathesis.out").write_text(output)
    assert result.returncode == 0, output[-20_000:]
    # Every operation of the schema was tried, and passed every check.
    summary = output.split("SUMMARY")[-1]
    client.force_login(admin_user)
    documented = len(list(operations(json.loads(client.get("/api/schema/", {"format": "json"}).content))))
    assert f"Tested: {documented}" in summary, output[-5_000:]
    assert re.search(r"\d+ generated, \d+ passed", summary), output[-5_000:]
