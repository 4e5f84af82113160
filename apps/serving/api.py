"""The scoring API the Java backend calls: score one transaction or a batch; report delayed fraud labels."""

import json

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.authentication import TokenAuthentication
from rest_framework.parsers import JSONParser
from rest_framework.views import APIView

from hafnium_portal.errors import DomainError

from . import hotpath
from .validation import InvalidRequest

MODEL_NAME_MAX = 200


def _error(status: int, body: dict) -> JsonResponse:
    return JsonResponse(body, status=status)


def _reject_constant(name):
    raise ValueError(f"{name} is not a number JSON allows")


def parse_json_body(request) -> tuple[object | None, JsonResponse | None]:
    """The JSON body of a request, or the 4xx answer to give instead."""
    content_type = request.META.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        return None, _error(415, {"detail": "Send the body as application/json."})
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > settings.SERVING_MAX_BODY_BYTES:
        return None, _error(413, {"detail": f"The body is over {settings.SERVING_MAX_BODY_BYTES} bytes."})
    try:
        raw = request.body
    except RequestDataTooBig:
        return None, _error(413, {"detail": "The body is too large."})
    if len(raw) > settings.SERVING_MAX_BODY_BYTES:
        return None, _error(413, {"detail": f"The body is over {settings.SERVING_MAX_BODY_BYTES} bytes."})
    try:
        return json.loads(raw, parse_constant=_reject_constant), None
    except (ValueError, UnicodeDecodeError) as exc:
        return None, _error(400, {"detail": f"Malformed JSON: {exc}"})


def valid_model_name(name: str) -> bool:
    return bool(name) and len(name) <= MODEL_NAME_MAX and "\x00" not in name


# --- OpenAPI description -------------------------------------------------------------------------

_TRANSACTION = inline_serializer(
    "ScoringTransaction",
    {
        "transaction_id": serializers.CharField(max_length=200),
        "entity_id": serializers.CharField(max_length=200, required=False),
        "features": serializers.DictField(help_text="every input of the version's signature, typed"),
        "embedding": serializers.ListField(
            child=serializers.FloatField(),
            required=False,
            min_length=1,
            max_length=256,
            help_text="optional: the transaction's embedding, logged for monitoring (not a model input)",
        ),
    },
)
_ANSWER = inline_serializer(
    "ScoringAnswer",
    {
        "request_id": serializers.CharField(),
        "transaction_id": serializers.CharField(),
        "model": serializers.CharField(),
        "version": serializers.IntegerField(),
        "score": serializers.FloatField(),
        "decision": serializers.ChoiceField(choices=["approve", "review", "decline"]),
        "fallback": serializers.BooleanField(help_text="true: the rules answered (breaker open)"),
    },
)
_ONE = {
    "transaction_id": "t-1",
    "entity_id": "c-42",
    "features": {"amount": 12.5, "merchant_category": "grocery", "channel": "pos"},
}
_ONE_ANSWER = {
    "request_id": "5f0c1f3ad1a34c59a0e6a0c6d1c2b7e4",
    "transaction_id": "t-1",
    "model": "fraud-scorer",
    "version": 3,
    "score": 0.0123,
    "decision": "approve",
    "fallback": False,
}


class ScoreView(APIView):
    # Documented as DRF's token scheme (the same header); never run: the view checks the token itself
    # against the process's copy of the config, after its one Redis round trip, with no query.
    authentication_classes = [TokenAuthentication]
    permission_classes = []
    parser_classes = [JSONParser]  # the schema offers JSON only: the view answers 415 to anything else

    def perform_authentication(self, request):
        pass

    @extend_schema(
        operation_id="score",
        summary="Score one transaction or a batch",
        description=(
            'One transaction, or `{"items": [...]}` with up to SERVING_MAX_BATCH (1,000) of them, answered '
            "in the same order. Features are checked against the signature of the version that answers "
            "(the Production version unless a rollout routes the entity elsewhere): a missing, extra, "
            "mistyped or non-finite value is a 400 naming the field (`items[3].features.amount`). "
            "A retry with the same transaction_id gets the same answer (cached for SERVING_RESPONSE_TTL). "
            "While the model's circuit breaker is open the rules answer, with `fallback: true`. "
            "Authentication: `Authorization: Token <key>` of a scoring client. "
            "`?environment=staging` is answered by the versions of the staging routing table only, for "
            "staging clients (`create_scoring_client <name> --staging`); production clients get a 403 "
            "there, and production traffic never reaches a version only staging routes to."
        ),
        parameters=[
            OpenApiParameter(
                "environment",
                str,
                OpenApiParameter.QUERY,
                required=False,
                enum=["production", "staging"],
                description="production (the default) or staging",
            )
        ],
        request=_TRANSACTION,
        responses={
            200: _ANSWER,
            400: OpenApiResponse(description="Invalid input: `{field: [messages]}`"),
            401: OpenApiResponse(description="No or unknown token"),
            403: OpenApiResponse(
                description="The token is not a scoring client's (of the staging environment, for staging)"
            ),
            404: OpenApiResponse(description="No such model"),
            413: OpenApiResponse(description="Body over SERVING_MAX_BODY_BYTES"),
            415: OpenApiResponse(description="Not application/json"),
            503: OpenApiResponse(
                description="No version answers: none in Production, or no staging routing table"
            ),
        },
        examples=[
            OpenApiExample("One transaction", value=_ONE, request_only=True),
            OpenApiExample(
                "A batch",
                value={"items": [_ONE, {**_ONE, "transaction_id": "t-2", "entity_id": "c-7"}]},
                request_only=True,
            ),
            OpenApiExample("Answer to one", value=_ONE_ANSWER, response_only=True),
            OpenApiExample(
                "Answer to a batch",
                value={
                    "items": [
                        _ONE_ANSWER,
                        {**_ONE_ANSWER, "transaction_id": "t-2", "score": 0.93, "decision": "decline"},
                    ]
                },
                response_only=True,
            ),
            OpenApiExample(
                "Invalid feature",
                value={"items[1].features.amount": ["Must be a finite number."]},
                response_only=True,
                status_codes=["400"],
            ),
        ],
        tags=["scoring"],
    )
    def post(self, request, name: str):
        if not valid_model_name(name):
            return _error(404, {"detail": "No such model."})
        body, refused = parse_json_body(request)
        if refused is not None:
            return refused
        try:
            answer, _ = hotpath.score(
                model_name=name,
                body=body,
                authorization=request.META.get("HTTP_AUTHORIZATION", ""),
                environment=request.GET.get("environment", hotpath.PRODUCTION),
            )
        except hotpath.Unauthenticated as exc:
            response = _error(401, {"detail": str(exc)})
            response["WWW-Authenticate"] = "Token"
            return response
        except hotpath.Forbidden as exc:
            return _error(403, {"detail": str(exc)})
        except hotpath.NotFound as exc:
            return _error(404, {"detail": str(exc)})
        except InvalidRequest as exc:
            return _error(400, exc.errors)
        except hotpath.Unavailable as exc:
            return _error(503, {"detail": str(exc)})
        return JsonResponse(answer)


class FeedbackView(APIView):
    """Delayed fraud labels (chargebacks, confirmed fraud) by transaction id; the first label is kept."""

    authentication_classes = [TokenAuthentication]
    permission_classes = []
    parser_classes = [JSONParser]  # the schema offers JSON only: the view answers 415 to anything else

    def perform_authentication(self, request):
        pass

    @extend_schema(
        operation_id="feedback",
        summary="Record the fraud label of a scored transaction",
        description=(
            "Idempotent: the same label again answers 200 with `created: false`; a different label for a "
            "transaction already labelled is a 409."
        ),
        request=inline_serializer(
            "Feedback",
            {"transaction_id": serializers.CharField(max_length=200), "label": serializers.BooleanField()},
        ),
        responses={
            201: inline_serializer(
                "FeedbackAnswer",
                {
                    "transaction_id": serializers.CharField(),
                    "label": serializers.BooleanField(),
                    "created": serializers.BooleanField(),
                },
            ),
            200: OpenApiResponse(description="Already recorded with this label"),
            401: OpenApiResponse(description="No or unknown token"),
            403: OpenApiResponse(description="The token is not a scoring client's"),
            404: OpenApiResponse(description="No such model"),
            409: OpenApiResponse(description="Already recorded with the other label"),
        },
        examples=[OpenApiExample("Fraud confirmed", value={"transaction_id": "t-1", "label": True})],
        tags=["scoring"],
    )
    def post(self, request, name: str):
        from . import services

        if not valid_model_name(name):
            return _error(404, {"detail": "No such model."})
        body, refused = parse_json_body(request)
        if refused is not None:
            return refused
        try:
            snapshot = hotpath.config_now()
            client = hotpath.authenticate(snapshot, request.META.get("HTTP_AUTHORIZATION", ""))
        except hotpath.Unauthenticated as exc:
            response = _error(401, {"detail": str(exc)})
            response["WWW-Authenticate"] = "Token"
            return response
        except hotpath.Forbidden as exc:
            return _error(403, {"detail": str(exc)})
        model = snapshot.models.get(name)
        if model is None:
            return _error(404, {"detail": f"No model named {name!r}."})
        errors = {}
        if not isinstance(body, dict):
            return _error(400, {"non_field_errors": ["The body must be a JSON object."]})
        for key in sorted(set(body) - {"transaction_id", "label"}):
            errors[key] = ["Unknown field."]
        transaction_id = body.get("transaction_id")
        if not isinstance(transaction_id, str) or not transaction_id or len(transaction_id) > 200:
            errors["transaction_id"] = ["A transaction id (text, at most 200 characters) is required."]
        elif "\x00" in transaction_id:
            errors["transaction_id"] = ["Must not contain NUL."]
        if not isinstance(body.get("label"), bool):
            errors["label"] = ["true (fraud) or false (genuine) is required."]
        if errors:
            return _error(400, errors)
        try:
            feedback, created = services.feedback_record(
                client_id=client.user_id,
                model_id=model.id,
                transaction_id=transaction_id,
                label=body["label"],
            )
        except DomainError as exc:
            return _error(exc.status_code, {"detail": str(exc)})
        return JsonResponse(
            {"transaction_id": feedback.transaction_id, "label": feedback.label, "created": created},
            status=201 if created else 200,
        )
