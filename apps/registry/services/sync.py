"""The portal's mirror of MLflow: versions mirrored as portal rows, the periodic sync, alias drift."""

import logging

from django.db import transaction
from django.utils import timezone

from apps.accounts.models import Team
from apps.audit.services import audit_record
from hafnium_portal.converters import is_model_name
from hafnium_portal.enqueue import enqueue
from hafnium_portal.errors import DomainError

from .. import gateway, selectors
from ..models import (
    ALIAS_OF_STAGE,
    AliasDrift,
    DatasetVersion,
    ModelVersion,
    RegisteredModel,
    Stage,
    StageTransition,
    SyncRun,
)
from .teams import TEAM_TAG, model_ensure

log = logging.getLogger(__name__)


def version_mirror(
    *, model: RegisteredModel, remote: gateway.RemoteVersion, created_by=None, mlflow_user: str = "", **fields
) -> tuple[ModelVersion, bool]:
    """Create or refresh the portal's row for an MLflow version. Stage is the portal's, never MLflow's.

    `mlflow_user` is who MLflow says made it: the version's user, else the run's (`mlflow_user`,
    read from the run by the caller); governance compares on it when the creator is not a portal user.
    """
    values = {
        "run_id": remote.run_id,
        "source_uri": remote.source,
        "mlflow_user": remote.user_id or mlflow_user,
        "registered_at": remote.registered_at,
        "description": remote.description,
        **fields,
    }
    creator = created_by or selectors.portal_user_named(values["mlflow_user"])
    version, created = ModelVersion.objects.update_or_create(
        model=model,
        version=remote.version,
        defaults=values,
        create_defaults={**values, "created_by": creator},
    )
    if created:
        StageTransition.objects.create(
            version=version, to_stage=Stage.EXPERIMENT, actor=version.created_by, reason="registered"
        )
    return version, created


def run_details(run_id: str) -> dict:
    """Metrics, params, curves, the dataset and the user of a run, as far as MLflow has them.

    Slow (an artifact download): call it outside any transaction.
    """
    if not run_id:
        return {}
    try:
        found = gateway.run(run_id)
    except gateway.RegistryNotFound:
        return {}
    details = {"metrics": found.metrics, "params": found.params, "mlflow_user": found.user_id}
    validation = gateway.run_json_artifact(run_id, "validation.json")
    if isinstance(validation, dict):
        details["curves"] = validation.get("curves", {})
        details["confidence_intervals"] = validation.get("confidence_intervals", {})
    dataset_sha = found.tags.get("hafnium.dataset_sha256")
    if dataset_sha:
        details["dataset"] = DatasetVersion.objects.filter(sha256=dataset_sha).first()
    return details


def _check_aliases(model: RegisteredModel, found: dict[str, int]) -> int:
    """Record each governance alias that MLflow has where the portal did not put it; return how many."""
    expected = selectors.expected_aliases(model)
    new_drifts = 0
    for alias in ALIAS_OF_STAGE.values():
        want, have = expected.get(alias), found.get(alias)
        open_drifts = model.alias_drifts.filter(alias=alias, resolved_at__isnull=True)
        if want == have:
            open_drifts.update(resolved_at=timezone.now())
            continue
        if not open_drifts.filter(expected_version=want, found_version=have).exists():
            open_drifts.update(resolved_at=timezone.now())
            drift = AliasDrift.objects.create(
                model=model, alias=alias, expected_version=want, found_version=have
            )
            audit_record(
                actor=None,
                action="registry.alias_changed_outside_portal",
                obj=model,
                before={"alias": alias, "version": want},
                after={"alias": alias, "version": have, "drift": drift.pk},
            )
            log.warning("alias %s of %s is on v%s in MLflow, the portal says v%s", alias, model, have, want)
            new_drifts += 1
    return new_drifts


def registry_sync(*, actor=None) -> SyncRun:
    """Mirror every MLflow model and version into the portal, and check the governance aliases.

    Versions already mirrored are not fetched again (MLflow versions are immutable but for their
    description); a failure of MLflow leaves a failed SyncRun and the mirror as it was. MLflow is
    read outside transactions; each new version is written in a short one of its own.
    """
    sync = SyncRun.objects.create(requested_by=actor)
    try:
        for remote_model in gateway.registered_models():
            sync.models_seen += 1
            if not is_model_name(remote_model.name):
                # The portal's URLs address a model by its name: one outside the rule could not be shown.
                log.warning(
                    "not mirroring MLflow model %r: its name is outside the portal's rule", remote_model.name
                )
                continue
            team = Team.objects.filter(slug=remote_model.tags.get(TEAM_TAG, "")).first()
            model = model_ensure(name=remote_model.name, team=team, description=remote_model.description)
            known = set(model.versions.values_list("version", flat=True))
            for remote in gateway.model_versions(model.name):
                if remote.version in known:
                    continue
                details = run_details(remote.run_id)
                with transaction.atomic():
                    version_mirror(model=model, remote=remote, **details)
                sync.versions_created += 1
            if not model.aliases_pending:
                sync.alias_drifts += _check_aliases(model, remote_model.aliases)
    except (gateway.RegistryUnavailable, DomainError) as exc:
        sync.status, sync.error = SyncRun.Status.FAILED, str(exc)
    else:
        sync.status = SyncRun.Status.SUCCEEDED
    sync.finished_at = timezone.now()
    sync.save()
    if sync.versions_created or sync.alias_drifts or sync.status == SyncRun.Status.FAILED:
        audit_record(
            actor=actor,
            action=f"registry.sync_{sync.status}",
            obj=sync,
            after={
                "models_seen": sync.models_seen,
                "versions_created": sync.versions_created,
                "alias_drifts": sync.alias_drifts,
                "error": sync.error,
            },
        )
    return sync


def registry_sync_request(*, actor) -> bool:
    """ "Sync now": enqueue a mirror of MLflow for the actor; False when the task queue cannot take it."""
    return enqueue("apps.registry.tasks.sync_registry", actor.pk)
