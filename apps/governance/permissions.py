"""Object access to promotion requests: pages and API call the same helpers."""

from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404

from apps.accounts.roles import roles_of
from apps.registry.permissions import version_by_id_for_user

from .models import PromotionRequest
from .selectors import requests_visible_to


def request_for_user(user, pk: int) -> PromotionRequest:
    """404 when the user may not see the request's model; deciding rules (403/409) live in services."""
    return get_object_or_404(requests_visible_to(user), pk=pk)


REQUEST_REFUSED = "Only members of the model's team may request promotion of its versions."


def can_request_promotion(user, model) -> bool:
    """Members of the model's team (django-guardian grants the permission to the team's group)."""
    return user.has_perm("registry.request_promotion", model)


def version_for_promotion(user, pk: int):
    """The version a user asks to promote: 404 if they cannot see it, 403 if not of its team."""
    version = version_by_id_for_user(user, pk)
    if not can_request_promotion(user, version.model):
        raise PermissionDenied(REQUEST_REFUSED)
    return version


COMMENT_REFUSED = (
    "Only the model's team and the approvers of this request's stage may comment on it; your role reads it."
)


def can_comment(user, request: PromotionRequest) -> bool:
    """The requester's team (members of the model's team) and holders of a role the request needs.

    Readers of a request (managers, approvers of other stages) follow the discussion without joining it.
    """
    if not user.is_authenticated:
        return False
    if user.is_superuser or can_request_promotion(user, request.version.model):
        return True
    return any(role.value in request.required_roles for role in roles_of(user))
