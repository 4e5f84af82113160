"""Pages of deployments, mounted at /deployments/."""

from django.urls import path

import hafnium_portal.converters  # noqa: F401  registers <modelname:...>

from . import views

app_name = "deployments"

urlpatterns = [
    path("", views.rollout_list, name="rollout-list"),
    path("<int:pk>/", views.rollout_detail, name="rollout-detail"),
    path("<int:pk>/live/", views.rollout_live, name="rollout-live"),
    path("<int:pk>/controls/", views.rollout_controls, name="rollout-controls"),
    path("<int:pk>/chart/", views.rollout_chart, name="rollout-chart"),
    path("<int:pk>/pause/", views.rollout_pause, name="rollout-pause"),
    path("<int:pk>/resume/", views.rollout_resume, name="rollout-resume"),
    path("<int:pk>/promote/", views.rollout_promote, name="rollout-promote"),
    path("<int:pk>/abort/", views.rollout_abort, name="rollout-abort"),
    path("reviews/<int:pk>/confirm/", views.review_confirm, name="review-confirm"),
    path("models/<modelname:name>/traffic/", views.model_traffic, name="model-traffic"),
    path("models/<modelname:name>/rollback/", views.model_rollback, name="model-rollback"),
]
