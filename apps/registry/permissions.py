"""Object access to the registry: one helper per object, used by pages and API alike.

404 when the user may not see the object, 403 (PermissionDenied) when they may see but not act.
"""

from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404

from .models import ModelVersion, RegisteredModel
from .selectors import models_visible_to, versions_visible_to


def model_for_user(user, name: str) -> RegisteredModel:
    return get_object_or_404(models_visible_to(user), name=name)


def version_for_user(user, name: str, version: int) -> ModelVersion:
    return get_object_or_404(versions_visible_to(user), model__name=name, version=version)


def version_by_id_for_user(user, pk: int) -> ModelVersion:
    return get_object_or_404(versions_visible_to(user), pk=pk)


def can_edit_card(user, model: RegisteredModel) -> bool:
    return user.is_superuser or model.owners.filter(pk=user.pk).exists()


def model_card_for_editing(user, name: str) -> RegisteredModel:
    model = model_for_user(user, name)
    if not can_edit_card(user, model):
        raise PermissionDenied("Only the model's owners may edit its model card.")
    return model


def can_register(user) -> bool:
    """Registering a version from a run: data scientists and their leads."""
    from apps.accounts.roles import Role, roles_of

    return user.is_superuser or bool({Role.DATA_SCIENTIST, Role.DATA_SCIENTIST_LEAD} & set(roles_of(user)))
