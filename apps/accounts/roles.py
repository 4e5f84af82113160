"""The portal's roles: one Django group each, named as in the governance table."""

from django.db import models


class Role(models.TextChoices):
    DATA_SCIENTIST = "Data Scientist"
    DATA_SCIENTIST_LEAD = "Data Scientist Lead"
    ML_ENGINEER = "ML Engineer"
    MODEL_RISK = "Model Risk"
    COMPLIANCE = "Compliance"
    MANAGER = "Manager"


# What each role comes to the portal for (shown on the home page).
DUTIES = {
    Role.DATA_SCIENTIST: "Register model versions, read their model cards and metrics, request promotion "
    "and follow the rollout.",
    Role.DATA_SCIENTIST_LEAD: "Approve or reject promotion of a model version to Candidate.",
    Role.ML_ENGINEER: "Approve or reject promotion to Staging; watch deployments; pause, promote or abort "
    "a canary.",
    Role.MODEL_RISK: "Approve or reject promotion to Production, together with Compliance.",
    Role.COMPLIANCE: "Approve or reject promotion to Production, together with Model Risk.",
    Role.MANAGER: "Read drift reports and SLO dashboards, export them and acknowledge alerts.",
}


def roles_of(user) -> list[Role]:
    """The user's roles, in the order of the Role enumeration."""
    if not user.is_authenticated:
        return []
    if not hasattr(user, "_hafnium_roles"):
        names = set(user.groups.values_list("name", flat=True))
        user._hafnium_roles = [role for role in Role if role.value in names]
    return user._hafnium_roles


# Who may press "Sync now" (mirror MLflow into the portal): those who register versions and those who
# run them. Managers read, export and acknowledge; Model Risk and Compliance decide on the evidence.
SYNC_ROLES = frozenset({Role.DATA_SCIENTIST, Role.DATA_SCIENTIST_LEAD, Role.ML_ENGINEER})


def may_sync(user) -> bool:
    """Whether `user` may start a sync of the registry with MLflow (the registry's Sync now)."""
    if not user.is_authenticated:
        return False
    return user.is_superuser or bool(SYNC_ROLES.intersection(roles_of(user)))
