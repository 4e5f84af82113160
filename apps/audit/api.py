"""The audit trail's REST API (v1): events with the page's filters, for holders of `audit.view_auditevent`."""

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, viewsets
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.response import Response

from . import chain, selectors
from .models import AuditEvent
from .permissions import can_read_audit, event_for_user


class AuditEventSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="audit-api:audit-event-detail")

    class Meta:
        model = AuditEvent
        fields = ["url", *chain.EXPORTED]
        read_only_fields = fields


class EventFilters(serializers.Serializer):
    action = serializers.CharField(
        required=False, max_length=100, help_text='exact, or a prefix ending in * ("promotion.*")'
    )
    actor = serializers.CharField(required=False, max_length=150, help_text="username")
    object_type = serializers.CharField(
        required=False, max_length=100, help_text='e.g. "registry.modelversion"'
    )
    object_id = serializers.CharField(required=False, max_length=100)
    date_from = serializers.DateField(required=False, help_text="first day, in the portal's time zone")
    date_to = serializers.DateField(
        required=False, help_text="last day (included), in the portal's time zone"
    )
    q = serializers.CharField(required=False, max_length=300, help_text="in the object's description")

    def validate(self, attrs):
        if attrs.get("date_from") and attrs.get("date_to") and attrs["date_from"] > attrs["date_to"]:
            raise serializers.ValidationError({"date_to": "The end date is before the start date."})
        return attrs


class CanReadAudit(BasePermission):
    message = "The audit trail is open to Compliance, Model Risk and managers."

    def has_permission(self, request, view) -> bool:
        return can_read_audit(request.user)


class NewestFirst(CursorPagination):
    """Pages by event id, so no page counts the whole trail."""

    ordering = "-id"
    page_size = 50


@extend_schema(tags=["audit"])
@extend_schema_view(list=extend_schema(parameters=[EventFilters]))
class AuditEventViewSet(viewsets.GenericViewSet):
    serializer_class = AuditEventSerializer
    permission_classes = [IsAuthenticated, CanReadAudit]
    pagination_class = NewestFirst
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        return selectors.events_visible_to(self.request.user)

    def list(self, request):
        filters = EventFilters(data=request.query_params)
        filters.is_valid(raise_exception=True)
        cleaned = dict(filters.validated_data)
        events = selectors.event_list(request.user, text=cleaned.pop("q", ""), **cleaned)
        page = self.paginate_queryset(events)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def retrieve(self, request, pk):
        return Response(self.get_serializer(event_for_user(request.user, pk)).data)
