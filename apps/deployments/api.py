"""Deployments' API (v1), under /api/v1/deployments/: rollouts and their controls, the emergency rollback
of a model, and the reviews of emergency rollbacks waiting for a second person.

The same permission helpers and services as the pages: seeing a rollout follows seeing its model (404
otherwise); the controls are the ML Engineer's (403 otherwise), the rollback the ML Engineer's and
Model Risk's; a control the rollout's state does not allow is a 409 saying why.
"""

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.registry.api import ErrorSerializer

from . import selectors, services
from .models import AnalysisMeasurement, RollbackReview, Rollout, RolloutEvent, StagingTestResult
from .permissions import model_for_rollback, review_for_reviewing, rollout_for_control, rollout_for_user

# --- serializers -------------------------------------------------------------------------------------


class EventSerializer(serializers.ModelSerializer):
    actor = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = RolloutEvent
        fields = [
            "at",
            "actor",
            "action",
            "from_state",
            "to_state",
            "step_index",
            "weight_bp",
            "revision",
            "reason",
        ]
        read_only_fields = fields


class MeasurementSerializer(serializers.ModelSerializer):
    class Meta:
        model = AnalysisMeasurement
        fields = [
            "step_index",
            "analysis_run",
            "weight_bp",
            "metric",
            "value",
            "comparator",
            "threshold",
            "verdict",
            "message",
            "canary_requests",
            "stable_requests",
            "window_start",
            "window_end",
            "measured_at",
        ]
        read_only_fields = fields


class StagingResultSerializer(serializers.ModelSerializer):
    passed = serializers.BooleanField(allow_null=True, help_text="null: the test could not run")

    class Meta:
        model = StagingTestResult
        fields = ["attempt", "test", "passed", "value", "threshold", "detail", "ran_at"]
        read_only_fields = fields


class ReviewSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="deployments-api:rollback-review-detail")
    rollout = serializers.PrimaryKeyRelatedField(read_only=True)
    model = serializers.CharField(source="rollout.model.name", read_only=True)
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    reviewer = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = RollbackReview
        fields = [
            "id", "url", "rollout", "model", "requested_by", "source", "reason", "status", "reviewer", "note",
            "created_at", "reviewed_at",
        ]  # fmt: skip
        read_only_fields = fields


class RolloutSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="deployments-api:rollout-detail")
    model = serializers.CharField(source="model.name", read_only=True)
    candidate = serializers.IntegerField(
        source="candidate.version", read_only=True, help_text="version number"
    )
    stable = serializers.IntegerField(
        source="stable.version", read_only=True, allow_null=True, help_text="the version it is compared with"
    )
    policy_version = serializers.IntegerField(source="policy.version", read_only=True)
    steps = serializers.ListField(
        child=serializers.IntegerField(), source="policy.weights", read_only=True, help_text="basis points"
    )
    promotion_request = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = Rollout
        fields = [
            "id", "url", "model", "kind", "candidate", "stable", "state", "step_index", "weight_bp", "steps",
            "policy_version", "revision", "cause", "reason", "promotion_request", "created_at", "updated_at",
            "step_started_at", "last_measured_at", "deadline_at", "finished_at",
        ]  # fmt: skip
        read_only_fields = fields


class RolloutDetailSerializer(RolloutSerializer):
    events = EventSerializer(many=True, read_only=True)
    measurements = MeasurementSerializer(many=True, read_only=True)
    staging_results = StagingResultSerializer(many=True, read_only=True)
    commands = serializers.SerializerMethodField(help_text="the controls you may use now")

    class Meta(RolloutSerializer.Meta):
        fields = [*RolloutSerializer.Meta.fields, "events", "measurements", "staging_results", "commands"]
        read_only_fields = fields

    def get_commands(self, rollout) -> list[str]:
        return selectors.commands_for(self.context["request"].user, rollout)


class RolloutFilters(serializers.Serializer):
    model = serializers.CharField(required=False, max_length=200, help_text="model name")
    state = serializers.ChoiceField(
        [(selectors.ACTIVE, "every state still moving"), *Rollout.State.choices], required=False
    )
    kind = serializers.ChoiceField(Rollout.Kind.choices, required=False)


class ControlReasonBody(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, allow_blank=True, help_text="why (recorded)")


class OptionalControlReasonBody(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, allow_blank=True, required=False, default="")


class ReviewNoteBody(serializers.Serializer):
    note = serializers.CharField(max_length=2000, allow_blank=True, required=False, default="")


def _valid(serializer_class, data) -> dict:
    parsed = serializer_class(data=data)
    parsed.is_valid(raise_exception=True)
    return parsed.validated_data


def _no_nul(value: str, name: str) -> str:
    if "\x00" in value:
        raise serializers.ValidationError({name: ["may not contain a NUL character"]})
    return value


CONTROL_ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="a field is invalid (a reason is required here)"),
    403: OpenApiResponse(ErrorSerializer, description="only an ML Engineer may steer a rollout"),
    404: OpenApiResponse(ErrorSerializer, description="no such rollout, or you may not see it"),
    409: OpenApiResponse(ErrorSerializer, description="the rollout's state does not allow this now"),
}


CONTROL_ANSWERS = {200: RolloutDetailSerializer, **CONTROL_ERRORS}


# --- views -------------------------------------------------------------------------------------------


@extend_schema(tags=["deployments"])
@extend_schema_view(list=extend_schema(parameters=[RolloutFilters]))
class RolloutViewSet(viewsets.GenericViewSet):
    serializer_class = RolloutSerializer
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        return selectors.rollouts_visible_to(self.request.user)

    def list(self, request):
        """Rollouts of the models you see, newest first."""
        filters = _valid(RolloutFilters, request.query_params)
        page = self.paginate_queryset(selectors.rollouts_for(request.user, **filters))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(responses={200: RolloutDetailSerializer, 404: CONTROL_ERRORS[404]})
    def retrieve(self, request, pk):
        """A rollout with its timeline, analysis measurements, staging test results and your controls."""
        rollout = rollout_for_user(request.user, pk)
        return Response(RolloutDetailSerializer(rollout, context={"request": request}).data)

    def _control(self, request, pk, service, body_class):
        body = _valid(body_class, request.data)
        rollout = rollout_for_control(request.user, pk)
        service(actor=request.user, rollout=rollout, reason=_no_nul(body["reason"], "reason"))
        rollout.refresh_from_db()
        return Response(RolloutDetailSerializer(rollout, context={"request": request}).data)

    @extend_schema(
        request=OptionalControlReasonBody, responses={200: RolloutDetailSerializer, **CONTROL_ERRORS}
    )
    @action(detail=True, methods=["post"])
    def pause(self, request, pk):
        """Hold the canary at its weight; analysis stops until resumed, promoted or aborted."""
        return self._control(request, pk, services.rollout_pause, OptionalControlReasonBody)

    @extend_schema(
        request=OptionalControlReasonBody, responses={200: RolloutDetailSerializer, **CONTROL_ERRORS}
    )
    @action(detail=True, methods=["post"])
    def resume(self, request, pk):
        """Go on from a pause: the step's weight is set again and its analysis starts afresh."""
        return self._control(request, pk, services.rollout_resume, OptionalControlReasonBody)

    @extend_schema(request=ControlReasonBody, responses=CONTROL_ANSWERS)
    @action(detail=True, methods=["post"])
    def promote(self, request, pk):
        """Promote now: skip the remaining steps (the reason is recorded)."""
        return self._control(request, pk, services.rollout_promote_now, ControlReasonBody)

    @extend_schema(request=ControlReasonBody, responses=CONTROL_ANSWERS)
    @action(detail=True, methods=["post"])
    def abort(self, request, pk):
        """Abort: traffic back on the stable version at once (the reason is recorded)."""
        return self._control(request, pk, services.rollout_abort, ControlReasonBody)


@extend_schema(
    tags=["deployments"],
    request=ControlReasonBody,
    responses={
        201: RolloutDetailSerializer,
        400: OpenApiResponse(ErrorSerializer, description="no reason, or nothing to roll back to"),
        403: OpenApiResponse(ErrorSerializer, description="only an ML Engineer or Model Risk may roll back"),
        404: OpenApiResponse(ErrorSerializer, description="no such model, or you may not see it"),
        409: OpenApiResponse(ErrorSerializer, description="a canary is running: abort it instead"),
    },
)
class RollbackView(APIView):
    """Emergency rollback of the model's Production version to the last good one, at once; a second
    person's review is opened."""

    def post(self, request, name):
        body = _valid(ControlReasonBody, request.data)
        model = model_for_rollback(request.user, name)
        rollout = services.rollback_to_last_good(
            model=model, actor=request.user, reason=_no_nul(body["reason"], "reason")
        )
        data = RolloutDetailSerializer(rollout, context={"request": request}).data
        return Response(data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["deployments"])
class RollbackReviewViewSet(viewsets.GenericViewSet):
    serializer_class = ReviewSerializer
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        return selectors.rollback_reviews_for(self.request.user)

    def list(self, request):
        """Emergency rollbacks waiting for your review (someone else rolled back), oldest first."""
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(responses={200: ReviewSerializer, 404: CONTROL_ERRORS[404]})
    def retrieve(self, request, pk):
        from .permissions import review_for_user

        return Response(self.get_serializer(review_for_user(request.user, pk)).data)

    @extend_schema(
        request=ReviewNoteBody,
        responses={
            200: ReviewSerializer,
            400: CONTROL_ERRORS[400],
            403: OpenApiResponse(
                ErrorSerializer, description="ML Engineer or Model Risk, and not the one who rolled back"
            ),
            404: OpenApiResponse(ErrorSerializer, description="no such review, or you may not see it"),
            409: OpenApiResponse(ErrorSerializer, description="already reviewed"),
        },
    )
    @action(detail=True, methods=["post"])
    def confirm(self, request, pk):
        """Confirm an emergency rollback someone else made (a note may say what happens next)."""
        body = _valid(ReviewNoteBody, request.data)
        review = review_for_reviewing(request.user, pk)
        services.rollback_review_confirm(
            actor=request.user, review=review, note=_no_nul(body["note"], "note")
        )
        review.refresh_from_db()
        return Response(self.get_serializer(review).data)
