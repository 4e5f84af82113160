"""Deployments' REST API, mounted at /api/v1/."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from . import api

app_name = "deployments-api"

router = SimpleRouter()
router.register("deployments/rollouts", api.RolloutViewSet, basename="rollout")
router.register("deployments/rollback-reviews", api.RollbackReviewViewSet, basename="rollback-review")

urlpatterns = [
    *router.urls,
    path("deployments/models/<modelname:name>/rollback", api.RollbackView.as_view(), name="model-rollback"),
]
