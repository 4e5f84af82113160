"""Monitoring's pages: drift reports (views_drift), SLO dashboards (views_slo)."""

from django.urls import path

from . import views_drift, views_slo

app_name = "monitoring"

urlpatterns = [
    path("drift/", views_drift.report_list, name="drift_reports"),
    path("drift/runs/<int:pk>/", views_drift.report_detail, name="drift_report"),
    path("drift/runs/<int:pk>/progress", views_drift.run_progress, name="drift_run_progress"),
    path("drift/runs/<int:pk>/export", views_drift.report_export, name="drift_report_export"),
    path("drift/models/<modelname:name>/run", views_drift.run_start, name="drift_run_start"),
    path(
        "drift/investigations/<int:pk>/close",
        views_drift.investigation_close_view,
        name="investigation_close",
    ),
    path("<modelname:name>/slo/", views_slo.dashboard, name="slo-dashboard"),
]
