"""Registered models and the team that owns each (its members may see the model and request promotion)."""

from guardian.shortcuts import assign_perm, remove_perm

from apps.accounts.models import Team
from apps.audit.services import audit_record

from ..models import RegisteredModel

# The MLflow tag naming the team of a model, an experiment or a run (set by the training pipeline).
TEAM_TAG = "hafnium.team"
TEAM_PERMISSIONS = ["registry.view_registeredmodel", "registry.request_promotion"]


def model_team_set(*, model: RegisteredModel, team: Team | None) -> None:
    """Give the model to a team: its members may see it and request promotion of its versions."""
    if model.team_id and (team is None or model.team_id != team.pk):
        for permission in TEAM_PERMISSIONS:
            remove_perm(permission, model.team.group, model)
    before = model.team.slug if model.team_id else None
    model.team = team
    model.save(update_fields=["team", "updated_at"])
    if team is not None:
        for permission in TEAM_PERMISSIONS:
            assign_perm(permission, team.group, model)
    audit_record(
        actor=None,
        action="registry.model_team_set",
        obj=model,
        before={"team": before},
        after={"team": team.slug if team else None, "permissions": TEAM_PERMISSIONS},
    )


def model_ensure(*, name: str, team: Team | None = None, owners=(), description: str = "") -> RegisteredModel:
    model, created = RegisteredModel.objects.get_or_create(name=name, defaults={"description": description})
    if created and team is not None:
        model_team_set(model=model, team=team)
    if owners:
        model.owners.add(*owners)
    return model
