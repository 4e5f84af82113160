"""Object access to the registry: one helper per object, used by pages and API alike.

404 when the user may not see the object, 403 (PermissionDenied) when they may see but not act.
A name with a NUL byte names nothing (PostgreSQL cannot even compare it): 404, never a query.
"""

from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404

from hafnium_portal.converters import is_model_name

from .models import ModelVersion, RegisteredModel
from .selectors import models_visible_to, versions_visible_to


def _check_name(name) -> None:
    # A name from a form or a query string (not a URL's converter): no model has a name outside the rule,
    # and a NUL byte must not reach PostgreSQL.
    if not is_model_name(name):
        raise Http404("No such model.")


def model_for_user(user, name: str) -> RegisteredModel:
    _check_name(name)
    return get_object_or_404(models_visible_to(user), name=name)


def version_for_user(user, name: str, version: int) -> ModelVersion:
    _check_name(name)
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


def check_registering_into(user, model_name: str, team) -> None:
    """Registering a version into a model: an existing model must be one the user can see (404) and
    whose team they belong to (403); a team given for a new model, one they are in (403)."""
    _check_name(model_name)
    model = RegisteredModel.objects.filter(name=model_name).first()
    if model is not None:
        model_for_user(user, model_name)
        if not user.has_perm("registry.request_promotion", model):
            raise PermissionDenied(f"Only members of the team of {model_name} may register versions of it.")
    if team is not None and not user.is_superuser and not team.members.filter(pk=user.pk).exists():
        raise PermissionDenied(f"You are not a member of team {team.slug}.")


def run_not_found(run_id: str) -> Http404:
    """The one answer for a run that does not exist and a run of a team the user is not in: the
    second must not tell the first apart (it would confirm another team's run ids and their team)."""
    return Http404(f"There is no run {run_id} you may register.")


def check_run_source(user, *, run_id: str, team_slug: str, run_user: str, model_name: str) -> None:
    """The right to register a run: to its source, not only to the target model.

    A run of a known team (`services.versions.run_team_slug`): members of that team only, others get
    the same 404 as for a run that does not exist. A run of no known team (logged by hand to a shared
    experiment, untagged): only into a model that already exists, by one of its owners who is in its
    team, and only if MLflow says that same person logged the run (403 otherwise, saying so).
    """
    if user.is_superuser:
        return
    if team_slug:
        if not user.groups.filter(team__slug=team_slug).exists():
            raise run_not_found(run_id)
        return
    model = RegisteredModel.objects.filter(name=model_name).first()
    owner = model is not None and model.owners.filter(pk=user.pk).exists()
    if not (owner and user.has_perm("registry.request_promotion", model) and run_user == user.get_username()):
        raise PermissionDenied(
            f"Run {run_id} belongs to no team (no hafnium.team tag on the run or its experiment): only an "
            "owner of an existing model who logged the run themselves may register it."
        )
