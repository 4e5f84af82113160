"""Serving's pages, mounted at /serving/."""

from django.urls import path

from . import views

app_name = "serving"

urlpatterns = [path("models/<str:name>/panel", views.model_panel, name="model-panel")]
