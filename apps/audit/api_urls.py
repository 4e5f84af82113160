"""The audit trail's REST API, mounted at /api/v1/."""

from rest_framework.routers import SimpleRouter

from . import api

app_name = "audit-api"

router = SimpleRouter()
router.register("audit-events", api.AuditEventViewSet, basename="audit-event")

urlpatterns = router.urls
