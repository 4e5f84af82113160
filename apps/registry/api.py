"""The registry's REST API (v1): models, versions and their model cards, registering from a run, datasets."""

from django.core.validators import RegexValidator
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.response import Response

from apps.accounts.models import Team
from hafnium_portal.converters import MODEL_NAME_MAX_LENGTH, MODEL_NAME_REGEX, validate_model_name

from . import cards, permissions, selectors, services
from .models import DatasetVersion, ModelVersion, RegisteredModel, Stage

# --- serializers ---------------------------------------------------------------------------------


class RegisteredModelSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    owners = serializers.SlugRelatedField(slug_field="username", many=True, read_only=True)
    version_count = serializers.SerializerMethodField()
    production_version = serializers.SerializerMethodField(help_text="the number of the Production version")
    url = serializers.HyperlinkedIdentityField(view_name="api:model-detail", lookup_field="name")

    class Meta:
        model = RegisteredModel
        fields = [
            "name",
            "team",
            "description",
            "risk_tier",
            "owners",
            "version_count",
            "production_version",
            "url",
        ]
        read_only_fields = fields

    # A list reads both numbers with its query (annotations); a single model reads them here.
    def get_version_count(self, model) -> int:
        if hasattr(model, "version_count"):
            return model.version_count
        return model.versions.count()

    def get_production_version(self, model) -> int | None:
        if hasattr(model, "production_number"):
            return model.production_number
        production = selectors.production_version(model)
        return production.version if production else None


class ModelVersionSerializer(serializers.ModelSerializer):
    model = serializers.SlugRelatedField(slug_field="name", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    url = serializers.HyperlinkedIdentityField(view_name="api:version-detail")

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "url",
            "model",
            "version",
            "stage",
            "run_id",
            "source_uri",
            "artifact_sha256",
            "created_by",
            "mlflow_user",
            "metrics",
            "confidence_intervals",
            "params",
            "signature",
            "dataset",
            "registered_at",
        ]
        read_only_fields = fields


class ModelCardSerializer(serializers.Serializer):
    markdown = serializers.CharField()
    sha256 = serializers.CharField(help_text="hash of the card's content (its stage history excluded)")
    missing = serializers.ListField(
        child=serializers.CharField(), help_text="what the card must still have before promotion"
    )
    complete = serializers.BooleanField()


class DatasetSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:dataset-detail")
    location = serializers.CharField(
        read_only=True, help_text="the Parquet file, relative to the dataset store"
    )
    dvc_location = serializers.CharField(read_only=True, help_text="its DVC pointer, relative to the store")

    class Meta:
        model = DatasetVersion
        fields = [
            "id",
            "url",
            "name",
            "sha256",
            "md5",
            "size_bytes",
            "row_count",
            "schema",
            "location",
            "dvc_location",
            "description",
            "params",
            "created_at",
        ]
        read_only_fields = fields


class ModelFilters(serializers.Serializer):
    search = serializers.CharField(required=False, help_text="in the model's name or description")
    stage = serializers.ChoiceField(Stage.choices, required=False, help_text="models with a version in it")
    team = serializers.CharField(required=False, help_text="team slug")


class VersionFilters(serializers.Serializer):
    model = serializers.CharField(required=False, help_text="model name")
    stage = serializers.ChoiceField(Stage.choices, required=False)


class DatasetFilters(serializers.Serializer):
    name = serializers.CharField(required=False)


class RegisterRequest(serializers.Serializer):
    model = serializers.CharField(
        max_length=MODEL_NAME_MAX_LENGTH,
        # The name is the model's address in MLflow and in the portal's URLs: one rule for both.
        validators=[validate_model_name],
    )
    run_id = serializers.CharField(
        max_length=64,
        validators=[RegexValidator(r"^[\w-]+\Z", "An MLflow run id: letters, digits, '_' and '-'.")],
    )
    team = serializers.SlugRelatedField(
        slug_field="slug",
        queryset=Team.objects.all(),
        required=False,
        error_messages={"does_not_exist": "There is no team {value}."},
        help_text="slug of the team a new model belongs to (you must be a member)",
    )
    reason = serializers.CharField(
        max_length=2000,
        required=False,
        allow_blank=True,
        help_text="why a run already registered under another model is registered again (recorded)",
    )


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()


def _filters(serializer_class, request) -> dict:
    """The list's query parameters, validated (a bad value is a 400 naming the parameter)."""
    filters = serializer_class(data=request.query_params)
    filters.is_valid(raise_exception=True)
    return filters.validated_data


# --- errors and access ---------------------------------------------------------------------------


class CanRegister(BasePermission):
    message = "Only data scientists and their leads may register model versions."

    def has_permission(self, request, view) -> bool:
        return permissions.can_register(request.user)


# --- views ---------------------------------------------------------------------------------------


@extend_schema(tags=["models"])
@extend_schema_view(list=extend_schema(parameters=[ModelFilters]))
class RegisteredModelViewSet(viewsets.GenericViewSet):
    serializer_class = RegisteredModelSerializer
    lookup_field = "name"
    lookup_value_regex = MODEL_NAME_REGEX

    def get_queryset(self):
        return selectors.models_visible_to(self.request.user)

    def list(self, request):
        models = selectors.model_list(request.user, **_filters(ModelFilters, request))
        page = self.paginate_queryset(selectors.with_owners_and_production(models))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def retrieve(self, request, name):
        model = permissions.model_for_user(request.user, name)
        return Response(self.get_serializer(model).data)


@extend_schema(tags=["versions"])
@extend_schema_view(list=extend_schema(parameters=[VersionFilters]))
class ModelVersionViewSet(viewsets.GenericViewSet):
    serializer_class = ModelVersionSerializer
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        return selectors.versions_visible_to(self.request.user)

    def list(self, request):
        filters = _filters(VersionFilters, request)
        versions = selectors.version_list(
            request.user, model=filters.get("model"), stage=filters.get("stage", "")
        )
        page = self.paginate_queryset(versions)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def retrieve(self, request, pk):
        version = permissions.version_by_id_for_user(request.user, pk)
        return Response(self.get_serializer(version).data)

    @extend_schema(responses=ModelCardSerializer)
    @action(detail=True, url_path="model-card", serializer_class=ModelCardSerializer)
    def model_card(self, request, pk):
        card = cards.model_card(permissions.version_by_id_for_user(request.user, pk))
        data = {"markdown": card.markdown, "sha256": card.sha256, "missing": card.missing}
        return Response(ModelCardSerializer({**data, "complete": not card.missing}).data)

    @extend_schema(
        request=RegisterRequest,
        responses={
            200: OpenApiResponse(
                ModelVersionSerializer, description="the run is that model's version already"
            ),
            201: ModelVersionSerializer,
            400: OpenApiResponse(description="a field is invalid, or the run logged no model"),
            403: OpenApiResponse(
                ErrorSerializer,
                description="you may not register, not into that team, or not a run of no known team",
            ),
            404: OpenApiResponse(
                ErrorSerializer,
                description="the model exists but you cannot see it; or there is no run you may register "
                "(a run of a team you are not in is not told apart from a run that does not exist)",
            ),
            409: OpenApiResponse(
                ErrorSerializer, description="the run is registered under another model: give a reason"
            ),
            503: OpenApiResponse(ErrorSerializer, description="MLflow is unavailable"),
        },
    )
    @action(detail=False, methods=["post"], permission_classes=[IsAuthenticated, CanRegister])
    def register(self, request):
        """Register the model an MLflow run logged as a new version (creating the model if needed).

        The run must be one of a team you are in (its experiment's or its own `hafnium.team` tag, or the
        model it is a version of). A run already registered under another model needs a `reason`.
        """
        body = RegisterRequest(data=request.data)
        body.is_valid(raise_exception=True)
        registration = services.version_register(
            actor=request.user,
            model_name=body.validated_data["model"],
            run_id=body.validated_data["run_id"],
            team=body.validated_data.get("team"),
            reason=body.validated_data.get("reason", ""),
        )
        data = ModelVersionSerializer(registration.version, context={"request": request}).data
        return Response(data, status=status.HTTP_201_CREATED if registration.created else status.HTTP_200_OK)


@extend_schema(tags=["datasets"])
@extend_schema_view(list=extend_schema(parameters=[DatasetFilters]))
class DatasetViewSet(viewsets.GenericViewSet):
    serializer_class = DatasetSerializer
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        return selectors.datasets_visible_to(self.request.user)

    def list(self, request):
        filters = _filters(DatasetFilters, request)
        datasets = selectors.dataset_list(request.user, name=filters.get("name", ""))
        page = self.paginate_queryset(datasets)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def retrieve(self, request, pk):
        # No permissions helper for datasets: whoever may list them may read each one (the selector).
        return Response(self.get_serializer(self.get_object()).data)
