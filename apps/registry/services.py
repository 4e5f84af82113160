"""Actions on the registry: datasets, the MLflow mirror and its sync, stages and aliases, model cards."""

import hashlib
import logging
import shutil
from pathlib import Path

import pyarrow.parquet as pq
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from guardian.shortcuts import assign_perm, remove_perm

from apps.accounts.models import Team
from apps.audit.services import audit_record
from hafnium_portal.enqueue import enqueue_on_commit
from hafnium_portal.errors import DomainError

from . import gateway
from .models import (
    ALIAS_OF_STAGE,
    TRANSITIONS,
    AliasDrift,
    DatasetVersion,
    ModelCardRevision,
    ModelVersion,
    RegisteredModel,
    Stage,
    StageTransition,
    SyncRun,
)
from .signals import evidence_changed

log = logging.getLogger(__name__)

# The MLflow tag naming the team of a model registered outside the portal.
TEAM_TAG = "hafnium.team"
TEAM_PERMISSIONS = ["registry.view_registeredmodel", "registry.request_promotion"]


# --- datasets ------------------------------------------------------------------------------------


def _file_digests(path: Path) -> tuple[str, str]:
    sha256, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            sha256.update(chunk)
            md5.update(chunk)
    return sha256.hexdigest(), md5.hexdigest()


def _parquet_schema(path: Path) -> tuple[int, list[dict]]:
    metadata = pq.read_metadata(path)
    schema = pq.read_schema(path)
    return metadata.num_rows, [{"name": field.name, "type": str(field.type)} for field in schema]


def dataset_register(
    *, actor, name: str, source: Path, description: str = "", params: dict | None = None
) -> DatasetVersion:
    """Register a Parquet file as a dataset version; the same content twice is the same version.

    The file is copied into the dataset store under its content hash, with a DVC pointer (`.dvc`)
    beside it, so that DVC can track the very same file.
    """
    source = Path(source)
    if not source.is_file():
        raise DomainError(f"dataset file {source} does not exist")
    try:
        rows, schema = _parquet_schema(source)
    except Exception as exc:
        raise DomainError(f"{source} is not a readable Parquet file: {exc}") from exc
    sha256, md5 = _file_digests(source)
    existing = DatasetVersion.objects.filter(name=name, sha256=sha256).first()
    if existing is not None:
        return existing
    folder = Path(settings.DATASET_ROOT) / name
    folder.mkdir(parents=True, exist_ok=True)
    stored = folder / f"{sha256}.parquet"
    if not stored.exists():
        shutil.copyfile(source, stored)
    size = stored.stat().st_size
    pointer = stored.with_name(stored.name + ".dvc")
    pointer.write_text(f"outs:\n- md5: {md5}\n  size: {size}\n  hash: md5\n  path: {stored.name}\n")
    dataset, _ = DatasetVersion.objects.get_or_create(
        name=name,
        sha256=sha256,
        defaults={
            "md5": md5,
            "size_bytes": size,
            "row_count": rows,
            "schema": schema,
            "path": str(stored),
            "dvc_path": str(pointer),
            "description": description,
            "params": params or {},
            "created_by": actor,
        },
    )
    return dataset


# --- models and teams ----------------------------------------------------------------------------


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


# --- the mirror ----------------------------------------------------------------------------------


def _portal_user(mlflow_user: str):
    if not mlflow_user:
        return None
    return get_user_model().objects.filter(username=mlflow_user).first()


def version_mirror(
    *, model: RegisteredModel, remote: gateway.RemoteVersion, created_by=None, **fields
) -> tuple[ModelVersion, bool]:
    """Create or refresh the portal's row for an MLflow version. Stage is the portal's, never MLflow's."""
    values = {
        "run_id": remote.run_id,
        "source_uri": remote.source,
        "mlflow_user": remote.user_id,
        "registered_at": remote.registered_at,
        "description": remote.description,
        **fields,
    }
    version, created = ModelVersion.objects.update_or_create(
        model=model,
        version=remote.version,
        defaults=values,
        create_defaults={**values, "created_by": created_by or _portal_user(remote.user_id)},
    )
    if created:
        StageTransition.objects.create(
            version=version, to_stage=Stage.EXPERIMENT, actor=version.created_by, reason="registered"
        )
    return version, created


def _run_details(run_id: str) -> dict:
    """Metrics, params, curves and the dataset of a run, as far as MLflow has them."""
    if not run_id:
        return {}
    try:
        found = gateway.run(run_id)
    except gateway.RegistryNotFound:
        return {}
    details = {"metrics": found.metrics, "params": found.params}
    validation = gateway.run_json_artifact(run_id, "validation.json")
    if isinstance(validation, dict):
        details["curves"] = validation.get("curves", {})
        details["confidence_intervals"] = validation.get("confidence_intervals", {})
    dataset_sha = found.tags.get("hafnium.dataset_sha256")
    if dataset_sha:
        details["dataset"] = DatasetVersion.objects.filter(sha256=dataset_sha).first()
    return details


def expected_aliases(model: RegisteredModel) -> dict[str, int]:
    """The governance aliases as the portal's stages say they must be in MLflow."""
    expected = {}
    for stage, alias in ALIAS_OF_STAGE.items():
        holder = model.versions.filter(stage=stage).order_by("-version").first()
        if holder is not None:
            expected[alias] = holder.version
    return expected


def _check_aliases(model: RegisteredModel, found: dict[str, int]) -> int:
    """Record each governance alias that MLflow has where the portal did not put it; return how many."""
    expected = expected_aliases(model)
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
    description); a failure of MLflow leaves a failed SyncRun and the mirror as it was.
    """
    sync = SyncRun.objects.create(requested_by=actor)
    try:
        for remote_model in gateway.registered_models():
            sync.models_seen += 1
            team = Team.objects.filter(slug=remote_model.tags.get(TEAM_TAG, "")).first()
            model = model_ensure(name=remote_model.name, team=team, description=remote_model.description)
            known = set(model.versions.values_list("version", flat=True))
            for remote in gateway.model_versions(model.name):
                if remote.version in known:
                    continue
                with transaction.atomic():
                    version_mirror(model=model, remote=remote, **_run_details(remote.run_id))
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


def register_from_run(*, actor, model_name: str, run_id: str, team: Team | None = None) -> ModelVersion:
    """Register the model a run logged as a new version, in MLflow and in the portal.

    Everything the portal records is read from MLflow before the version is created, so a failure
    leaves nothing half-made; a mirror that fails after MLflow created the version is repaired by
    the next sync. Without a team, the model goes to the actor's team if they are in exactly one.
    """
    try:
        model_uri = gateway.run_model_uri(run_id)
    except gateway.RegistryNotFound as exc:
        raise DomainError(str(exc)) from exc
    if team is None:
        teams = list(Team.objects.filter(group__user=actor)[:2])
        team = teams[0] if len(teams) == 1 else None
    details = _run_details(run_id)
    details["signature"] = gateway.model_signature(model_uri)
    details["artifact_sha256"] = gateway.artifact_sha256(model_uri)
    remote = gateway.create_version(
        model_name, source=model_uri, run_id=run_id, tags={TEAM_TAG: team.slug} if team else None
    )
    with transaction.atomic():
        model = model_ensure(name=model_name, team=team, owners=[actor])
        version, _ = version_mirror(model=model, remote=remote, created_by=actor, **details)
        audit_record(
            actor=actor,
            action="registry.version_registered",
            obj=version,
            after={"run_id": run_id, "source": model_uri},
        )
    return version


# --- stages and aliases --------------------------------------------------------------------------


@transaction.atomic
def version_stage_set(*, actor, version: ModelVersion, stage: Stage, reason: str) -> ModelVersion:
    """Move a version to `stage` (compare-and-set), archiving the version that held it.

    The MLflow aliases follow (`aliases_publish`, by the caller's task or the periodic sync, which
    publishes every model marked as having aliases pending); until then a sync does not mistake the
    gap for a hand-made change.
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
                StageTransition.objects.create(
                    version=holder,
                    from_stage=stage,
                    to_stage=Stage.ARCHIVED,
                    actor=actor,
                    reason=f"replaced by v{version.version}",
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


def aliases_publish(*, model: RegisteredModel) -> dict[str, int]:
    """Make MLflow's governance aliases match the portal's stages. Safe to run any number of times."""
    expected = expected_aliases(model)
    found = gateway.aliases(model.name)
    for alias in ALIAS_OF_STAGE.values():
        if alias in expected and found.get(alias) != expected[alias]:
            gateway.set_alias(model.name, alias, expected[alias])
        elif alias not in expected and alias in found:
            gateway.delete_alias(model.name, alias)
    with transaction.atomic():
        RegisteredModel.objects.filter(pk=model.pk).update(aliases_pending=False)
        model.alias_drifts.filter(resolved_at__isnull=True).update(resolved_at=timezone.now())
        governed = {alias: version for alias, version in found.items() if alias in ALIAS_OF_STAGE.values()}
        if governed != expected:
            audit_record(
                actor=None, action="registry.aliases_published", obj=model, before=governed, after=expected
            )
    return expected


# --- model cards ---------------------------------------------------------------------------------


@transaction.atomic
def model_card_edit(*, actor, model: RegisteredModel, **narrative) -> ModelCardRevision:
    """Save a new revision of the card's narrative (earlier revisions are kept)."""
    unknown = set(narrative) - set(ModelCardRevision.NARRATIVE_FIELDS)
    if unknown:
        raise DomainError(f"unknown model card fields: {', '.join(sorted(unknown))}")
    previous = model.card_revisions.first()
    revision = ModelCardRevision.objects.create(
        model=model, author=actor, **{field: narrative.get(field, "").strip() for field in narrative}
    )
    audit_record(
        actor=actor,
        action="registry.model_card_edited",
        obj=model,
        before={f: getattr(previous, f) for f in narrative} if previous else None,
        after={f: getattr(revision, f) for f in narrative},
    )
    enqueue_on_commit("apps.registry.tasks.publish_model_cards", model.pk)
    evidence_changed.send(sender=RegisteredModel, model=model)
    return revision


def model_cards_publish(*, model: RegisteredModel) -> int:
    """Log the current card of each live version to its MLflow run as `model_card.md`."""
    from .cards import model_card

    published = 0
    for version in model.versions.exclude(stage__in=[Stage.ARCHIVED, Stage.REJECTED]).exclude(run_id=""):
        gateway.log_text(version.run_id, "model_card.md", model_card(version).markdown)
        published += 1
    return published
