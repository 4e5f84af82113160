"""Alerts' API (v1): the alerts a caller sees (filters), one alert, and acknowledging or resolving it."""

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.registry.api import ErrorSerializer
from hafnium_portal.converters import MODEL_NAME_MAX_LENGTH, validate_model_name

from . import selectors, services
from .forms import NOTE_MAX_LENGTH, STATE_CHOICES
from .models import Alert, Severity
from .permissions import alert_for_user, alert_to_respond


class AlertSerializer(serializers.ModelSerializer):
    model = serializers.SlugRelatedField(
        slug_field="name", read_only=True, help_text="the model's name, or null"
    )
    acknowledged_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    resolved_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, help_text="null while open, or when the condition cleared"
    )

    class Meta:
        model = Alert
        fields = [
            "id",
            "source",
            "key",
            "severity",
            "state",
            "title",
            "detail",
            "model",
            "link",
            "count",
            "first_seen",
            "last_seen",
            "acknowledged_by",
            "acknowledged_at",
            "resolved_by",
            "resolved_at",
            "note",
        ]
        read_only_fields = fields


class AlertFilters(serializers.Serializer):
    state = serializers.ChoiceField(
        [value for value, _ in STATE_CHOICES if value],
        required=False,
        help_text="open: firing or acknowledged",
    )
    severity = serializers.ChoiceField(Severity.choices, required=False)
    source = serializers.CharField(required=False, max_length=60, help_text='e.g. "serving.breaker"')
    model = serializers.CharField(
        required=False,
        max_length=MODEL_NAME_MAX_LENGTH,
        validators=[validate_model_name],
        help_text="model name",
    )


class NoteBody(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=NOTE_MAX_LENGTH)


def _valid(serializer_class, data) -> dict:
    """Query parameters or a body, validated: a bad value is a 400 naming the field."""
    parsed = serializer_class(data=data)
    parsed.is_valid(raise_exception=True)
    return parsed.validated_data


RESPONSES = {
    200: AlertSerializer,
    400: OpenApiResponse(ErrorSerializer, description="the note is invalid"),
    403: OpenApiResponse(
        ErrorSerializer, description="only ML Engineers, Model Risk and managers acknowledge and resolve"
    ),
    404: OpenApiResponse(ErrorSerializer, description="no such alert, or you may not see it"),
    409: OpenApiResponse(ErrorSerializer, description="the alert was acknowledged or resolved meanwhile"),
}


@extend_schema(tags=["alerts"])
@extend_schema_view(list=extend_schema(parameters=[AlertFilters]))
class AlertViewSet(viewsets.GenericViewSet):
    serializer_class = AlertSerializer
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        return selectors.alerts_visible_to(self.request.user)

    def list(self, request):
        """The alerts you see (those about your models and about the portal), most recently seen first."""
        alerts = selectors.alert_list(request.user, **_valid(AlertFilters, request.query_params))
        page = self.paginate_queryset(alerts)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(responses={200: AlertSerializer, 404: RESPONSES[404]})
    def retrieve(self, request, pk):
        return Response(self.get_serializer(alert_for_user(request.user, pk)).data)

    @extend_schema(request=NoteBody, responses=RESPONSES)
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, pk):
        """Someone is on it: a firing alert becomes acknowledged (it stops showing in the banner)."""
        body = _valid(NoteBody, request.data)
        alert = services.alert_acknowledge(
            alert=alert_to_respond(request.user, pk), actor=request.user, **body
        )
        return Response(self.get_serializer(alert).data)

    @extend_schema(request=NoteBody, responses=RESPONSES)
    @action(detail=True, methods=["post"])
    def resolve(self, request, pk):
        """Close an open alert by hand (a program resolves it itself when its condition clears)."""
        body = _valid(NoteBody, request.data)
        alert = services.alert_resolve_one(
            alert=alert_to_respond(request.user, pk), actor=request.user, **body
        )
        return Response(self.get_serializer(alert).data)
