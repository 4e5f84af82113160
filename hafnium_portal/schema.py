"""The OpenAPI schema's error answers: every operation documents the errors the API really returns.

The bodies are those of `hafnium_portal.errors`: `{"detail": "..."}` for every error, and for a 400 also
`{"field": ["message", ...]}` (a serializer's validation errors). Which errors an operation documents
follows from what it is, not from per-view decorations:

- 400 when it reads input (a request body, or query parameters other than the page);
- 401 when it needs a signed-in caller (all but AllowAny);
- 403 when it changes something (a rule, or the CSRF check of a session) or has a permission beyond
  "signed in";
- 404 when its path names an object, or its list is paged (an unknown page or cursor);
- 415 when it takes a body (of the media types it lists);
- and any error status a view declares itself with `@extend_schema(responses={409: ..., 503: ...})`
  (its description is kept, its body is the standard one).

Two more things DRF does that the schema says, so that schema fuzzing (schemathesis, see
tests/portal/test_schema.py) finds the API as documented: an optional query parameter given empty is
read as not given (`allowEmptyValue`), and a CharField of a request body takes a JSON number as its text.
"""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ResolvedComponent, build_media_type_object
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.permissions import SAFE_METHODS, AllowAny, IsAuthenticated

ERROR = ResolvedComponent(
    name="Error",
    type=ResolvedComponent.SCHEMA,
    object="hafnium_portal.schema.Error",
    schema={
        "type": "object",
        "description": "An error, said for a person.",
        "properties": {"detail": {"type": "string"}},
        "required": ["detail"],
    },
)
VALIDATION_ERROR = ResolvedComponent(
    name="ValidationError",
    type=ResolvedComponent.SCHEMA,
    object="hafnium_portal.schema.ValidationError",
    schema={
        "type": "object",
        "description": (
            "What is wrong with each field of the input: its name (`non_field_errors` for the input as a "
            "whole) and the messages; a field holding a list or an object has its errors by item."
        ),
        "minProperties": 1,
        "additionalProperties": {
            "oneOf": [{"type": "array", "items": {"type": "string"}}, {"type": "object"}],
        },
    },
)

DESCRIPTIONS = {
    400: _("The input is invalid (the messages by field), or a rule refused the action (`detail`)."),
    401: _("No valid credentials: a token (`Authorization: Token ...`) or a signed-in session."),
    403: _("Signed in, but not allowed to do this."),
    404: _("No such object, or you may not see it; or no such page."),
    405: _("The method is not allowed here."),
    409: _("The action no longer fits the state of things (it was done meanwhile, or conflicts)."),
    415: _("The body is of a media type the endpoint does not read."),
    503: _("A service the portal depends on (MLflow) is unavailable; try again later."),
}
PAGE_PARAMETERS = {"page", "cursor", "page_size"}


class PortalAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema with the portal's error answers on every operation."""

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        for parameter in operation.get("parameters", []):
            # DRF reads an optional query parameter given empty ("?stage=") as one not given, and so does a
            # page number; an empty cursor is a 404 like any other unknown cursor.
            if parameter["in"] == "query" and not parameter.get("required") and parameter["name"] != "cursor":
                parameter["allowEmptyValue"] = True
        responses = operation["responses"]
        for code in self._implied_errors(operation):
            if str(code) not in responses:
                responses[str(code)] = self._get_response_for_code(None, str(code))
        operation["responses"] = dict(sorted(responses.items()))
        return operation

    def _implied_errors(self, operation) -> list[int]:
        permissions = self.view.get_permissions()
        query = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
        unsafe = self.method not in SAFE_METHODS
        codes = []
        if "requestBody" in operation or unsafe or query - PAGE_PARAMETERS:
            codes.append(400)
        if not all(isinstance(permission, AllowAny) for permission in permissions):
            codes.append(401)
        if unsafe or any(not isinstance(p, (AllowAny, IsAuthenticated)) for p in permissions):
            codes.append(403)
        if any(p["in"] == "path" for p in operation.get("parameters", [])) or query & PAGE_PARAMETERS:
            codes.append(404)
        if "requestBody" in operation:
            codes.append(415)
        return codes

    def _map_basic_serializer(self, serializer, direction):
        schema = super()._map_basic_serializer(serializer, direction)
        if direction != "request":
            return schema
        for name, field in serializer.fields.items():
            described = schema["properties"].get(name)
            if isinstance(field, serializers.CharField) and described and described.get("type") == "string":
                # DRF's CharField takes a JSON number too and keeps its text (0 becomes "0"): say so, or
                # a client reads a number as refused. Length and pattern keywords apply to strings only.
                described["oneOf"] = [{"type": "string"}, {"type": "number"}]
                del described["type"]
        return schema

    def _get_response_for_code(self, serializer, status_code, media_types=None, direction="response"):
        if direction != "response" or int(status_code) < 400:
            return super()._get_response_for_code(serializer, status_code, media_types, direction)
        # An error: the body is the one the exception handler writes, whatever the view declared.
        description = serializer.description if isinstance(serializer, OpenApiResponse) else ""
        code = int(status_code)
        self.registry.register_on_missing(ERROR)
        schema = ERROR.ref
        if code == 400:
            self.registry.register_on_missing(VALIDATION_ERROR)
            schema = {"oneOf": [VALIDATION_ERROR.ref, ERROR.ref]}
        return {
            "content": {"application/json": build_media_type_object(schema)},
            "description": description or DESCRIPTIONS.get(code, ""),
        }
