"""Reads of teams, scoped to the user who asks."""

from django.contrib.auth import get_user_model
from django.db.models import Prefetch, QuerySet

from .models import Team
from .roles import Role, roles_of

# Roles that read across every team (approvers and managers), as the governance table has it.
CROSS_TEAM_ROLES = frozenset(
    {Role.DATA_SCIENTIST_LEAD, Role.ML_ENGINEER, Role.MODEL_RISK, Role.COMPLIANCE, Role.MANAGER}
)


def teams_visible_to(user) -> QuerySet[Team]:
    members = Prefetch("group__user_set", queryset=get_user_model().objects.order_by("username"))
    teams = Team.objects.select_related("group").prefetch_related(members).order_by("name")
    if user.is_superuser or CROSS_TEAM_ROLES.intersection(roles_of(user)):
        return teams
    return teams.filter(group__user=user)
