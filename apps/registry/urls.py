from django.urls import path

import hafnium_portal.converters  # noqa: F401  registers <modelname:...>

from . import views

app_name = "registry"

urlpatterns = [
    path("", views.model_list, name="model-list"),
    # Before the model pages: `sync` would otherwise be taken for a model's name.
    path("sync/", views.sync, name="model-sync"),
    path("<modelname:name>/", views.model_detail, name="model-detail"),
    path("<modelname:name>/versions/<int:version>/", views.version_detail, name="version-detail"),
    path("<modelname:name>/card/edit/", views.card_edit, name="card-edit"),
    path("<modelname:name>/compare/", views.compare, name="compare"),
]
