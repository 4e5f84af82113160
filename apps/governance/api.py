"""Governance's API (v1): promotion requests, and acting on them (approve, reject, withdraw, comment)."""

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.accounts.roles import Role
from apps.registry.api import ErrorSerializer
from apps.registry.models import Stage
from apps.registry.permissions import version_by_id_for_user

from . import selectors, services
from .models import Approval, PromotionRequest, RequestComment
from .permissions import request_for_user

# --- serializers ---------------------------------------------------------------------------------


class ApprovalSerializer(serializers.ModelSerializer):
    approver = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Approval
        fields = [
            "role",
            "approver",
            "decision",
            "comment",
            "evidence_sha256",
            "policy_version",
            "created_at",
            "voided_at",
            "void_reason",
            "overridden_checks",
            "override_reason",
            "creator_unknown",
        ]
        read_only_fields = fields


class CommentSerializer(serializers.ModelSerializer):
    author = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = RequestComment
        fields = ["author", "body", "created_at"]
        read_only_fields = fields


class PrecheckSerializer(serializers.Serializer):
    name = serializers.CharField()
    hard = serializers.BooleanField(
        required=False, help_text="a failed hard check blocks approval unless the approver overrides it"
    )
    passed = serializers.BooleanField(allow_null=True, help_text="null: the check could not be made yet")
    detail = serializers.CharField()


class PromotionRequestSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="governance-api:promotion-request-detail")
    model = serializers.CharField(source="version.model.name", read_only=True)
    version = serializers.IntegerField(source="version.version", read_only=True, help_text="version number")
    version_id = serializers.IntegerField(read_only=True)
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    policy_version = serializers.IntegerField(source="policy.version", read_only=True)
    required_roles = serializers.ListField(child=serializers.CharField(), read_only=True)
    evidence = serializers.DictField(
        read_only=True, help_text="what the approvals are given on; if it changes, they are void"
    )
    prechecks = PrecheckSerializer(many=True, read_only=True)
    approvals = ApprovalSerializer(many=True, read_only=True)
    comments = CommentSerializer(many=True, read_only=True)

    class Meta:
        model = PromotionRequest
        fields = [
            "id",
            "url",
            "model",
            "version",
            "version_id",
            "from_stage",
            "to_stage",
            "status",
            "requested_by",
            "justification",
            "policy_version",
            "required_roles",
            "evidence",
            "evidence_sha256",
            "prechecks",
            "approvals",
            "comments",
            "created_at",
            "expires_at",
            "decided_at",
        ]
        read_only_fields = fields


class RequestFilters(serializers.Serializer):
    status = serializers.ChoiceField(PromotionRequest.Status.choices, required=False)
    model = serializers.CharField(required=False, help_text="model name")
    to_stage = serializers.ChoiceField(Stage.choices, required=False)
    mine = serializers.BooleanField(required=False, help_text="only the requests you made")
    inbox = serializers.BooleanField(
        required=False, help_text="only pending requests waiting for your decision, oldest first"
    )


class CreateRequestBody(serializers.Serializer):
    version = serializers.IntegerField(min_value=1, help_text="id of the model version to promote")
    to_stage = serializers.ChoiceField(Stage.choices, help_text="the next stage up from the version's own")
    justification = serializers.CharField(max_length=10_000)


class ApproveBody(serializers.Serializer):
    evidence_sha256 = serializers.RegexField(
        r"^[0-9a-f]{64}$",
        help_text="the request's evidence_sha256 as you reviewed it; 409 if the evidence has changed since",
    )
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=10_000)
    role = serializers.ChoiceField(
        Role.choices, required=False, help_text="needed only by someone holding several of the required roles"
    )
    override_reason = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=10_000,
        help_text="required when a hard pre-check fails: why approving is right anyway (recorded)",
    )


class RejectBody(serializers.Serializer):
    # Blank passes here: the service refuses it, with the reason.
    comment = serializers.CharField(
        allow_blank=True, max_length=10_000, help_text="why the request is rejected"
    )
    role = serializers.ChoiceField(
        Role.choices, required=False, help_text="needed only by someone holding several of the required roles"
    )
    evidence_sha256 = serializers.RegexField(
        r"^[0-9a-f]{64}$",
        required=False,
        help_text="the evidence_sha256 you reviewed; if given, 409 when the evidence has changed since",
    )


class CommentBody(serializers.Serializer):
    body = serializers.CharField(allow_blank=True, max_length=10_000)


def _valid(serializer_class, data) -> dict:
    """Query parameters or a body, validated: a bad value is a 400 naming the field."""
    parsed = serializer_class(data=data)
    parsed.is_valid(raise_exception=True)
    return parsed.validated_data


# --- views ---------------------------------------------------------------------------------------


REFUSED = {
    400: OpenApiResponse(ErrorSerializer, description="a field is invalid, or a rule refused the action"),
    403: OpenApiResponse(ErrorSerializer, description="you may see the request but not do this"),
    404: OpenApiResponse(ErrorSerializer, description="no such request, or you may not see it"),
    409: OpenApiResponse(ErrorSerializer, description="the request is closed, or the decision was given"),
}


@extend_schema(tags=["promotion requests"])
@extend_schema_view(list=extend_schema(parameters=[RequestFilters]))
class PromotionRequestViewSet(viewsets.GenericViewSet):
    serializer_class = PromotionRequestSerializer
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        return selectors.requests_visible_to(self.request.user)

    def _answer(self, promotion_request: PromotionRequest, code: int = status.HTTP_200_OK) -> Response:
        # The services refresh the request they act on; its approvals and comments are read here.
        return Response(self.get_serializer(promotion_request).data, status=code)

    def list(self, request):
        filters = _valid(RequestFilters, request.query_params)
        requests = selectors.requests_filtered(request.user, **filters)
        page = self.paginate_queryset(selectors.with_decisions(requests))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(
        request=CreateRequestBody,
        responses={
            201: PromotionRequestSerializer,
            400: REFUSED[400],
            403: OpenApiResponse(ErrorSerializer, description="only the model's team may request promotion"),
            404: OpenApiResponse(ErrorSerializer, description="no such version, or you may not see it"),
            409: OpenApiResponse(ErrorSerializer, description="an open request already asks the same"),
        },
    )
    def create(self, request):
        """Ask to promote a version one stage up; the evidence is pinned and the pre-checks run now."""
        body = _valid(CreateRequestBody, request.data)
        version = version_by_id_for_user(request.user, body["version"])
        created = services.promotion_request_create(
            actor=request.user,
            version=version,
            to_stage=body["to_stage"],
            justification=body["justification"],
        )
        return self._answer(created, status.HTTP_201_CREATED)

    @extend_schema(responses={200: PromotionRequestSerializer, 404: REFUSED[404]})
    def retrieve(self, request, pk):
        return self._answer(request_for_user(request.user, pk))

    @extend_schema(request=ApproveBody, responses={200: PromotionRequestSerializer, **REFUSED})
    @action(detail=True, methods=["post"])
    def approve(self, request, pk):
        """Approve in one of the roles the request needs; the last approval moves the version's stage."""
        body = _valid(ApproveBody, request.data)
        promotion_request = request_for_user(request.user, pk)
        services.promotion_approve(
            actor=request.user,
            request=promotion_request,
            comment=body["comment"],
            role=body.get("role"),
            evidence_sha256=body["evidence_sha256"],
            override_reason=body["override_reason"],
        )
        return self._answer(promotion_request)

    @extend_schema(request=RejectBody, responses={200: PromotionRequestSerializer, **REFUSED})
    @action(detail=True, methods=["post"])
    def reject(self, request, pk):
        """Reject in one of the roles the request needs, saying why; the request is closed."""
        body = _valid(RejectBody, request.data)
        promotion_request = request_for_user(request.user, pk)
        services.promotion_reject(
            actor=request.user,
            request=promotion_request,
            comment=body["comment"],
            role=body.get("role"),
            evidence_sha256=body.get("evidence_sha256"),
        )
        return self._answer(promotion_request)

    @extend_schema(request=None, responses={200: PromotionRequestSerializer, **REFUSED})
    @action(detail=True, methods=["post"])
    def withdraw(self, request, pk):
        """The requester takes back a pending request."""
        promotion_request = request_for_user(request.user, pk)
        services.promotion_withdraw(actor=request.user, request=promotion_request)
        return self._answer(promotion_request)

    @extend_schema(
        request=CommentBody,
        responses={
            201: PromotionRequestSerializer,
            400: REFUSED[400],
            403: OpenApiResponse(
                ErrorSerializer, description="only the model's team and the stage's approvers may comment"
            ),
            404: REFUSED[404],
        },
    )
    @action(detail=True, methods=["post"])
    def comments(self, request, pk):
        """Add a comment to the request's discussion."""
        body = _valid(CommentBody, request.data)
        promotion_request = request_for_user(request.user, pk)
        services.promotion_comment(actor=request.user, request=promotion_request, body=body["body"])
        return self._answer(promotion_request, status.HTTP_201_CREATED)
