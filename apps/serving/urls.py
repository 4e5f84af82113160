"""Serving's pages, mounted at /serving/."""

from django.urls import path

from . import views

app_name = "serving"

urlpatterns = [
    path("models/<str:name>/panel", views.model_panel, name="model-panel"),
    path("models/<modelname:name>/thresholds/", views.thresholds, name="thresholds"),
    path("models/<modelname:name>/rules/new/", views.rule_edit, name="rule-add"),
    path("models/<modelname:name>/rules/<int:rule_id>/edit/", views.rule_edit, name="rule-edit"),
    path("models/<modelname:name>/rules/<int:rule_id>/delete/", views.rule_delete, name="rule-delete"),
]
