"""Governance's REST API, mounted at /api/v1/."""

from rest_framework.routers import SimpleRouter

from . import api

app_name = "governance-api"

router = SimpleRouter()
router.register("promotion-requests", api.PromotionRequestViewSet, basename="promotion-request")

urlpatterns = router.urls
