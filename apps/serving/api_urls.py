"""The scoring API, mounted at /api/v1/ (in the portal and in the lean inference entry point)."""

from django.urls import path

from . import api

app_name = "serving-api"

urlpatterns = [
    path("models/<str:name>/score", api.ScoreView.as_view(), name="score"),
    path("models/<str:name>/feedback", api.FeedbackView.as_view(), name="feedback"),
]
