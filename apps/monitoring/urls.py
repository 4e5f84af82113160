from django.urls import path

from . import views_slo

app_name = "monitoring"

urlpatterns = [
    path("<modelname:name>/slo/", views_slo.dashboard, name="slo-dashboard"),
]
