"""URLs of the inference processes: the scoring API, their health and their metrics. Nothing else."""

from django.urls import include, path

from apps.serving import views

from . import health

urlpatterns = [
    path("api/v1/", include("apps.serving.api_urls")),
    path("healthz", views.inference_health, name="healthz"),
    path("metrics", health.metrics, name="metrics"),
]

# No pages here (the portal's error pages need sessions and the navigation): errors answer in JSON.
handler404 = "apps.serving.views.not_found"
handler500 = "apps.serving.views.server_error"
