"""Object access to monitoring: who may see a model's drift reports is who may see the model (registry)."""

from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404

from apps.accounts.roles import Role, roles_of

from .models import DriftRun
from .selectors import drift_runs_visible_to


def drift_run_for_user(user, pk: int) -> DriftRun:
    """404 when the user may not see the run's model."""
    return get_object_or_404(drift_runs_visible_to(user), pk=pk)


# Who may start a drift run by hand: those who watch the models in production, and the model's team.
RUN_ROLES = frozenset({Role.ML_ENGINEER, Role.MANAGER, Role.DATA_SCIENTIST_LEAD})
RUN_REFUSED = "Only ML engineers, managers, leads and the model's team may start a drift run."


def can_start_drift_run(user, model) -> bool:
    if not user.is_authenticated:
        return False
    return (
        user.is_superuser
        or bool(RUN_ROLES.intersection(roles_of(user)))
        or user.has_perm("registry.request_promotion", model)
    )


def check_start_drift_run(user, model) -> None:
    if not can_start_drift_run(user, model):
        raise PermissionDenied(RUN_REFUSED)


# Who may close an investigation (what was found, written down): the model's team and owners, who were
# asked to look, and the ML engineers and model risk, who act on what they find.
CLOSE_ROLES = frozenset({Role.ML_ENGINEER, Role.MODEL_RISK})
CLOSE_REFUSED = "Only the model's team, ML engineers and model risk may close an investigation."


def can_close_investigation(user, model) -> bool:
    if not user.is_authenticated:
        return False
    return (
        user.is_superuser
        or bool(CLOSE_ROLES.intersection(roles_of(user)))
        or user.has_perm("registry.request_promotion", model)
        or model.owners.filter(pk=user.pk).exists()
    )


def check_close_investigation(user, model) -> None:
    if not can_close_investigation(user, model):
        raise PermissionDenied(CLOSE_REFUSED)
