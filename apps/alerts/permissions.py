"""Who may see an alert and who may respond to one: pages, the API and the services ask here.

An alert about a model is seen by those who see the model; an alert about no model (the portal
itself) by every signed-in user. Responding (acknowledge, resolve) is for those on call for models in
production: ML Engineers, Model Risk and managers (and superusers), among the alerts they see.
"""

from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404

from apps.accounts.roles import Role, roles_of

from .models import Alert
from .selectors import alerts_visible_to

RESPONDERS = frozenset({Role.ML_ENGINEER, Role.MODEL_RISK, Role.MANAGER})
RESPOND_REFUSED = "Only ML Engineers, Model Risk and managers may acknowledge or resolve alerts."


def may_respond(user) -> bool:
    """Whether `user` may acknowledge and resolve the alerts they see."""
    if user is None or not user.is_authenticated:
        return False
    return user.is_superuser or bool(RESPONDERS.intersection(roles_of(user)))


def alert_for_user(user, pk: int) -> Alert:
    """404 when the user may not see the alert (its model is another team's)."""
    return get_object_or_404(alerts_visible_to(user), pk=pk)


def alert_to_respond(user, pk: int) -> Alert:
    """The alert a user acknowledges or resolves: 404 if they cannot see it, 403 if they may not act."""
    alert = alert_for_user(user, pk)
    if not may_respond(user):
        raise PermissionDenied(RESPOND_REFUSED)
    return alert
