"""Who may see and steer rollouts: one helper per rule, called by the services, the pages and the API.

Seeing a rollout follows seeing its model (the registry's rule). The controls of a running rollout
(pause, resume, promote now, abort) are the ML Engineer's; the emergency rollback is the ML Engineer's
and Model Risk's; its review is for a second person holding one of those roles.
"""

from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404

from apps.accounts.roles import Role, roles_of
from apps.registry.permissions import model_for_user

from .models import RollbackReview, Rollout
from .selectors import rollouts_visible_to

CONTROL_ROLES = frozenset({Role.ML_ENGINEER})
ROLLBACK_ROLES = frozenset({Role.ML_ENGINEER, Role.MODEL_RISK})

CONTROL_REFUSED = "Only an ML Engineer may pause, resume, promote or abort a rollout."
ROLLBACK_REFUSED = "Only an ML Engineer or Model Risk may roll a model back."
REVIEW_REFUSED = "Only an ML Engineer or Model Risk may review an emergency rollback."
REVIEW_OWN_REFUSED = "You rolled this model back: a second person reviews it."


def _holds(user, roles) -> bool:
    if not user.is_authenticated:
        return False
    return user.is_superuser or bool(roles.intersection(roles_of(user)))


def may_control(user) -> bool:
    """Pause, resume, promote now, abort."""
    return _holds(user, CONTROL_ROLES)


def may_roll_back(user) -> bool:
    """The emergency rollback of a model's Production version."""
    return _holds(user, ROLLBACK_ROLES)


def may_review(user, review: RollbackReview) -> bool:
    """A second person: one of the rollback roles, not the one who rolled back."""
    return _holds(user, ROLLBACK_ROLES) and review.requested_by_id != user.pk


def rollout_for_user(user, pk: int) -> Rollout:
    """404 when the user may not see the rollout's model."""
    return get_object_or_404(rollouts_visible_to(user), pk=pk)


def rollout_for_control(user, pk: int) -> Rollout:
    """The rollout a person steers: 404 if they cannot see it, 403 if they may not steer it."""
    rollout = rollout_for_user(user, pk)
    if not may_control(user):
        raise PermissionDenied(CONTROL_REFUSED)
    return rollout


def model_for_rollback(user, name: str):
    """The model a person rolls back: 404 if they cannot see it, 403 if they may not roll back."""
    model = model_for_user(user, name)
    if not may_roll_back(user):
        raise PermissionDenied(ROLLBACK_REFUSED)
    return model


def review_for_user(user, pk: int) -> RollbackReview:
    return get_object_or_404(
        RollbackReview.objects.filter(rollout__in=rollouts_visible_to(user)).select_related(
            "rollout", "rollout__model", "requested_by"
        ),
        pk=pk,
    )


def review_for_reviewing(user, pk: int) -> RollbackReview:
    review = review_for_user(user, pk)
    if not _holds(user, ROLLBACK_ROLES):
        raise PermissionDenied(REVIEW_REFUSED)
    if review.requested_by_id == user.pk:
        raise PermissionDenied(REVIEW_OWN_REFUSED)
    return review
