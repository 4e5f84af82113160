from django.urls import path

from . import views

app_name = "governance"

urlpatterns = [
    path("requests/<int:pk>/", views.request_detail, name="request-detail"),
]
