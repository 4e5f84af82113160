from django.urls import path

from . import views

app_name = "audit"

urlpatterns = [
    path("", views.event_list, name="event-list"),
    path("export.csv", views.export_csv, name="export-csv"),
    path("export.json", views.export_json, name="export-json"),
    path("verify/", views.verify, name="verify"),
    path("verify/<int:pk>/", views.verification, name="verification"),
]
