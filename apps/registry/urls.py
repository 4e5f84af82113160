from django.urls import path

from . import views

app_name = "registry"

urlpatterns = [
    path("", views.model_list, name="model-list"),
    # Before the model pages: `sync` would otherwise be taken for a model's name.
    path("sync/", views.sync, name="model-sync"),
    path("<str:name>/", views.model_detail, name="model-detail"),
    path("<str:name>/versions/<int:version>/", views.version_detail, name="version-detail"),
    path("<str:name>/card/edit/", views.card_edit, name="card-edit"),
    path("<str:name>/compare/", views.compare, name="compare"),
]
