"""Top-level URLs: pages, API, admin, health and metrics."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from apps.accounts import views as account_views
from apps.accounts.forms import AdminLoginForm

from . import converters, health  # noqa: F401  converters: registers <modelname:...> before the apps' URLs

admin.site.site_header = "Hafnium Portal administration"
admin.site.site_title = "Hafnium Portal admin"
admin.site.login_form = AdminLoginForm

urlpatterns = [
    path("", account_views.home, name="home"),
    path("accounts/", include("apps.accounts.urls")),
    path("models/", include("apps.registry.urls")),
    path("governance/", include("apps.governance.urls")),
    path("audit/", include("apps.audit.urls")),
    path("serving/", include("apps.serving.urls")),
    path("deployments/", include("apps.deployments.urls")),
    path("monitoring/", include("apps.monitoring.urls")),
    path("alerts/", include("apps.alerts.urls")),
    path("api/v1/", include("apps.registry.api_urls")),
    path("api/v1/", include("apps.governance.api_urls")),
    path("api/v1/", include("apps.audit.api_urls")),
    path("api/v1/", include("apps.serving.api_urls")),
    path("api/v1/", include("apps.alerts.api_urls")),
    path("api/v1/", include("apps.deployments.api_urls")),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("healthz", health.healthz, name="healthz"),
    path("metrics", health.metrics, name="metrics"),
]

# Errors around the views: JSON under /api/, the HTML pages elsewhere (see hafnium_portal.errors).
handler400 = "hafnium_portal.errors.bad_request"
handler403 = "hafnium_portal.errors.permission_denied"
handler404 = "hafnium_portal.errors.page_not_found"
handler500 = "hafnium_portal.errors.server_error"
