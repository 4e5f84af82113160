"""The registry's REST API, mounted at /api/v1/."""

from rest_framework.routers import SimpleRouter

from . import api

app_name = "api"

router = SimpleRouter()
router.register("models", api.RegisteredModelViewSet, basename="model")
router.register("versions", api.ModelVersionViewSet, basename="version")
router.register("datasets", api.DatasetViewSet, basename="dataset")

urlpatterns = router.urls
