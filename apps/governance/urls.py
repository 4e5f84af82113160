from django.urls import path

import hafnium_portal.converters  # noqa: F401  registers <modelname:...>

from . import views

app_name = "governance"

urlpatterns = [
    path("inbox/", views.inbox, name="inbox"),
    path("mine/", views.my_requests, name="my-requests"),
    path("requests/new/", views.request_create, name="request-create"),
    path("requests/<int:pk>/", views.request_detail, name="request-detail"),
    path("requests/<int:pk>/approve/", views.request_approve, name="request-approve"),
    path("requests/<int:pk>/reject/", views.request_reject, name="request-reject"),
    path("requests/<int:pk>/withdraw/", views.request_withdraw, name="request-withdraw"),
    path("requests/<int:pk>/comment/", views.request_comment, name="request-comment"),
    path("models/<modelname:name>/history/", views.model_history, name="model-history"),
]
