"""Alerts' REST API, mounted at /api/v1/."""

from rest_framework.routers import SimpleRouter

from . import api

app_name = "alerts-api"

router = SimpleRouter()
router.register("alerts", api.AlertViewSet, basename="alert")

urlpatterns = router.urls
