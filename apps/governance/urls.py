from django.urls import path

from . import views

app_name = "governance"

urlpatterns = [
    path("inbox/", views.inbox, name="inbox"),
    path("mine/", views.my_requests, name="my-requests"),
    path("requests/<int:pk>/", views.request_detail, name="request-detail"),
]
