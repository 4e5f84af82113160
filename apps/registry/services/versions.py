"""Model versions: registering one from an MLflow run (the one way, for the API and training alike),
and moving a version between stages."""

from dataclasses import dataclass

from django.db import transaction

from apps.accounts.models import Team
from apps.audit.services import audit_record
from hafnium_portal.errors import Conflict, DomainError

from .. import gateway, permissions, selectors
from ..models import ALIAS_OF_STAGE, TRANSITIONS, ModelVersion, RegisteredModel, Stage, StageTransition
from ..signals import version_registered
from .sync import run_details, version_mirror
from .teams import TEAM_TAG, model_ensure


@dataclass(frozen=True)
class Registration:
    version: ModelVersion
    created: bool


def run_team_slug(run: gateway.RemoteRun) -> str:
    """The team a run belongs to, as far as anyone recorded it; "" when nobody did.

    In order: its experiment's `hafnium.team` tag (a team's own experiment), the run's own tag (set by
    the training pipeline), the team of a portal model the run is already a version of.
    """
    for tags in (run.experiment_tags or {}, run.tags):
        if tags.get(TEAM_TAG):
            return tags[TEAM_TAG]
    return selectors.team_slug_of_run(run.run_id)


def _previous_registrations(run_id: str) -> list[tuple[str, int]]:
    """(model, version) of every registration of the run, in MLflow and in the portal's mirror."""
    found = {(remote.name, remote.version) for remote in gateway.run_versions(run_id)}
    found |= set(selectors.registrations_of_run(run_id))
    return sorted(found)


def version_register(
    *,
    actor,
    model_name: str,
    run_id: str,
    team: Team | None = None,
    reason: str = "",
    recorded: dict | None = None,
    own_run: bool = False,
) -> Registration:
    """Register the model a run logged as a version of `model_name`, in MLflow and in the portal.

    `actor` None is the portal itself (its training pipeline); a person needs the right to the target
    model and to the run's source (`permissions.check_registering_into`, `check_run_source`), except
    for a run the caller's own training just logged (`own_run`: training, never the API). A run
    already registered is not registered again: the same model gets its existing version back, another
    model only with a `reason`, recorded in the audit event. `recorded` is what the caller already
    knows of the run (metrics, curves, params, dataset); otherwise it is read from MLflow.

    Every MLflow read (artifact downloads included) happens before the one short transaction that
    writes the portal's rows, so a failure leaves nothing half-made; a mirror that fails after MLflow
    created the version is repaired by the next sync.
    """
    if actor is not None:
        permissions.check_registering_into(actor, model_name, team)
    try:
        run = gateway.run(run_id, with_experiment=True)
    except gateway.RegistryNotFound as exc:
        raise permissions.run_not_found(run_id) from exc
    run_team = run_team_slug(run)
    if actor is not None and not own_run:
        permissions.check_run_source(actor, run_id=run_id, team_slug=run_team, run_user=run.user_id,
                                     model_name=model_name)  # fmt: skip
    previous = _previous_registrations(run_id)
    same_model = [number for name, number in previous if name == model_name]
    elsewhere = [f"{name} v{number}" for name, number in previous if name != model_name]
    if same_model:
        existing = selectors.version_of(model_name, same_model[0])
        if existing is not None:
            _announce(existing, created=False)
            return Registration(version=existing, created=False)
    if elsewhere and not reason.strip():
        raise Conflict(
            f"run {run_id} is already registered as {', '.join(elsewhere)}; registering it under "
            f"{model_name} too needs a reason, which is recorded"
        )
    model_uri = gateway.run_model_uri(run_id, run.experiment_id)
    if team is None:
        team = _team_for_new_model(actor, run_team)
    details = dict(recorded) if recorded is not None else run_details(run_id)
    details.setdefault("mlflow_user", run.user_id)
    details["signature"] = gateway.model_signature(model_uri)
    details["artifact_sha256"] = gateway.artifact_sha256(model_uri)
    if same_model:  # in MLflow already (a redelivered training, a mirror that failed): mirror that one
        remote = next(v for v in gateway.model_versions(model_name) if v.version == same_model[0])
    else:
        remote = gateway.create_version(
            model_name, source=model_uri, run_id=run_id, tags={TEAM_TAG: team.slug} if team else None
        )
    with transaction.atomic():
        model = model_ensure(name=model_name, team=team, owners=[actor] if actor else [])
        version, created = version_mirror(model=model, remote=remote, created_by=actor, **details)
        audit_record(
            actor=actor,
            action="registry.version_registered",
            obj=version,
            after={
                "run_id": run_id,
                "source": model_uri,
                "run_team": run_team or None,
                "mlflow_user": version.mlflow_user,
                "already_registered_as": elsewhere,
                "reason": reason.strip(),
            },
        )
        _announce(version, created=created)
    return Registration(version=version, created=created)


def _announce(version: ModelVersion, *, created: bool) -> None:
    """`version_registered` once the registration is committed (listeners enqueue work on it)."""
    transaction.on_commit(
        lambda: version_registered.send(sender=ModelVersion, version=version, created=created)
    )


def _team_for_new_model(actor, run_team: str) -> Team | None:
    """A new model goes to the run's team, else to the actor's team if they are in exactly one."""
    if run_team:
        return Team.objects.filter(slug=run_team).first()
    if actor is None:
        return None
    teams = list(Team.objects.filter(group__user=actor)[:2])
    return teams[0] if len(teams) == 1 else None


@transaction.atomic
def version_stage_set(*, actor, version: ModelVersion, stage: Stage, reason: str) -> ModelVersion:
    """Move a version to `stage` (compare-and-set), archiving the version that held it.

    The MLflow aliases follow (`aliases_publish`, by the caller's task or the periodic sync, which
    publishes every model marked as having aliases pending); until then a sync does not mistake the
    gap for a hand-made change. The archived version gets a transition and an audit event of its own.
    """
    current = Stage(version.stage)
    if stage not in TRANSITIONS[current]:
        raise DomainError(f"{version} cannot move from {current.label} to {Stage(stage).label}")
    if not ModelVersion.objects.filter(pk=version.pk, stage=current).update(stage=stage):
        raise DomainError(f"{version} changed stage meanwhile; reload and try again")
    StageTransition.objects.create(
        version=version, from_stage=current, to_stage=stage, actor=actor, reason=reason
    )
    if stage in ALIAS_OF_STAGE:
        previous = version.model.versions.filter(stage=stage).exclude(pk=version.pk)
        for holder in previous.select_for_update():
            if ModelVersion.objects.filter(pk=holder.pk, stage=stage).update(stage=Stage.ARCHIVED):
                why = f"replaced by v{version.version}"
                StageTransition.objects.create(
                    version=holder, from_stage=stage, to_stage=Stage.ARCHIVED, actor=actor, reason=why
                )
                audit_record(
                    actor=actor,
                    action="registry.stage_changed",
                    obj=holder,
                    before={"stage": stage},
                    after={"stage": Stage.ARCHIVED, "reason": why, "replaced_by": version.pk},
                )
    RegisteredModel.objects.filter(pk=version.model_id).update(aliases_pending=True)
    audit_record(
        actor=actor,
        action="registry.stage_changed",
        obj=version,
        before={"stage": current},
        after={"stage": stage, "reason": reason},
    )
    version.stage = stage
    return version
