"""Actions of the training pipeline: produce a dataset version, train, validate, log and register."""

import logging
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pandas as pd
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.registry import gateway
from apps.registry.cards import model_card
from apps.registry.models import LADDER, DatasetVersion, ModelVersion, ReferenceProfile, Stage
from apps.registry.services import TEAM_TAG, dataset_register, version_register
from hafnium_portal.errors import DomainError

from . import pipeline, synthetic
from .models import TrainingRun

log = logging.getLogger(__name__)

SYNTHETIC_DATASET = "hafnium-transactions"


def synthetic_dataset_create(
    *, actor, rows: int, seed: int = 0, start: str = "2026-01-01", days: int = 30, shift: float = 0.0
) -> DatasetVersion:
    """Generate a synthetic period of Hafnium transactions and register it as a dataset version."""
    frame = synthetic.generate_transactions(rows, seed=seed, start=start, days=days, shift=shift or None)
    params = {
        "generator": "apps.training.synthetic",
        "rows": rows,
        "seed": seed,
        "start": start,
        "days": days,
    }
    params["shift"] = shift
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "transactions.parquet"
        frame.to_parquet(path, index=False)
        description = f"Synthetic transactions: {rows} rows, seed {seed}, from {start} for {days} days"
        if shift:
            description += f", shifted (severity {shift})"
        return dataset_register(
            actor=actor, name=SYNTHETIC_DATASET, source=path, description=description, params=params
        )


def _load(dataset: DatasetVersion) -> pd.DataFrame:
    frame = pd.read_parquet(dataset.file)
    missing = [column for column in [*synthetic.FEATURES, synthetic.LABEL] if column not in frame.columns]
    if missing:
        raise DomainError(f"dataset {dataset} lacks the columns {', '.join(missing)}")
    return frame


@dataclass
class TrainingOutcome:
    run: TrainingRun
    version: ModelVersion | None
    # True when another delivery of the same task holds the run: this one did nothing.
    elsewhere: bool = False


def _claim(*, actor, model_name: str, dataset: DatasetVersion, key: str | None, lease: timedelta):
    """The run to work on, and whether this delivery may work on it.

    With a key (the task id), a second delivery finds the first one's run: finished, it is left as it
    is; running, it is taken over only once the first delivery's lease (its time limit) has passed,
    i.e. when that delivery is dead for sure. The takeover is a compare-and-set.
    """
    now = timezone.now()
    defaults = {
        "model_name": model_name,
        "dataset": dataset,
        "requested_by": actor,
        "claimed_until": now + lease,
    }
    with transaction.atomic():
        if key is None:
            run, created = TrainingRun.objects.create(**defaults), True
        else:
            run, created = TrainingRun.objects.get_or_create(idempotency_key=key, defaults=defaults)
        if created:
            audit_record(
                actor=actor,
                action="training.run_started",
                obj=run,
                after={"model": model_name, "dataset": dataset.sha256, "key": key},
            )
            return run, True
    if run.status != TrainingRun.Status.RUNNING:
        return run, False
    taken = TrainingRun.objects.filter(
        pk=run.pk, status=TrainingRun.Status.RUNNING, claimed_until__lt=now
    ).update(claimed_until=now + lease)
    run.refresh_from_db()
    return run, bool(taken)


def _finish(
    run: TrainingRun, *, actor, status: str, reason: str, version: ModelVersion | None = None
) -> None:
    """End a running run (compare-and-set: a run ends once) with its audit event."""
    now = timezone.now()
    with transaction.atomic():
        ended = TrainingRun.objects.filter(pk=run.pk, status=TrainingRun.Status.RUNNING).update(
            status=status,
            reason=reason,
            version=version,
            metrics=run.metrics,
            mlflow_run_id=run.mlflow_run_id,
            finished_at=now,
        )
        if ended:
            audit_record(
                actor=actor,
                action="training.run_finished",
                obj=run,
                before={"status": TrainingRun.Status.RUNNING},
                after={
                    "status": status,
                    "reason": reason,
                    "mlflow_run_id": run.mlflow_run_id,
                    "version": version.pk if version else None,
                },
            )
    run.refresh_from_db()


def model_train(
    *,
    actor,
    model_name: str,
    dataset: DatasetVersion,
    team=None,
    min_auc: float = 0.75,
    seed: int = 0,
    key: str | None = None,
    lease: timedelta | None = None,
) -> TrainingOutcome:
    """Train on a dataset version; when the quality gate passes, log one MLflow run and register a version.

    A failed gate records the run as failed (in MLflow and here) with the reason, and registers nothing.
    Any error ends the run as ERROR with the reason, then propagates. With a `key` (the task id), a
    second delivery of the same task does not train or register again (`_claim`); one that takes over
    a dead delivery's run after it logged to MLflow registers that MLflow run instead of training anew.
    """
    lease = lease or timedelta(seconds=settings.TRAINING_TASK_TIME_LIMIT)
    run, claimed = _claim(actor=actor, model_name=model_name, dataset=dataset, key=key, lease=lease)
    if not claimed:
        return TrainingOutcome(
            run=run, version=run.version, elsewhere=run.status == TrainingRun.Status.RUNNING
        )
    try:
        if run.mlflow_run_id:  # a dead delivery logged it already: register that run, do not train again
            version = _register(actor=actor, model_name=model_name, team=team, run_id=run.mlflow_run_id)
            _finish(run, actor=actor, status=TrainingRun.Status.REGISTERED, reason="resumed", version=version)
            return TrainingOutcome(run=run, version=version)
        result = pipeline.train(_load(dataset), seed=seed, min_auc=min_auc)
        params = {
            **result.params,
            "dataset": dataset.name,
            "dataset_sha256": dataset.sha256,
            "min_auc": min_auc,
        }
        tags = {
            "hafnium.dataset_sha256": dataset.sha256,
            "hafnium.requested_by": actor.username if actor else "",
        }
        if actor is not None:
            tags["mlflow.user"] = actor.get_username()  # who MLflow says made it (ModelVersion.mlflow_user)
        if team is not None:
            tags[TEAM_TAG] = team.slug  # the run's source: only this team may register it
        run.metrics = result.metrics
        if not result.gate_passed:
            run.mlflow_run_id = gateway.log_failed_run(
                run_name=f"{model_name}-gate-failed", params=params, metrics=result.metrics,
                reason=result.gate_reason, tags=tags,
            )  # fmt: skip
            _finish(run, actor=actor, status=TrainingRun.Status.FAILED_GATE, reason=result.gate_reason)
            return TrainingOutcome(run=run, version=None)
        validation = {"confidence_intervals": result.confidence_intervals, "curves": result.curves}
        logged = gateway.log_training(
            run_name=model_name,
            pipeline=result.pipeline,
            input_example=result.input_example,
            params=params,
            metrics=result.metrics,
            json_artifacts={"validation.json": validation, "reference_profile.json": result.profile},
            text_artifacts={},
            tags=tags,
        )
        run.mlflow_run_id = logged.run_id
        # Recorded at once: a delivery that takes over after a crash registers this run, not a new one.
        TrainingRun.objects.filter(pk=run.pk).update(mlflow_run_id=logged.run_id, metrics=result.metrics)
        recorded = {
            "metrics": result.metrics,
            "confidence_intervals": result.confidence_intervals,
            "curves": result.curves,
            "params": result.params,
            "dataset": dataset,
        }
        version = _register(
            actor=actor, model_name=model_name, team=team, run_id=logged.run_id, recorded=recorded,
            profile=result.profile,
        )  # fmt: skip
        _finish(
            run, actor=actor, status=TrainingRun.Status.REGISTERED, reason=result.gate_reason, version=version
        )
        return TrainingOutcome(run=run, version=version)
    except Exception as exc:
        # Whatever stopped it (a domain error, MLflow down, a bug, the soft time limit), the run ends
        # here with the reason instead of staying RUNNING.
        _finish(
            run, actor=actor, status=TrainingRun.Status.ERROR, reason=f"{type(exc).__name__}: {exc}"[:2000]
        )
        raise


def _register(*, actor, model_name, team, run_id, recorded=None, profile=None) -> ModelVersion:
    """Register the run through the registry's one service, then the profile and the card."""
    registration = version_register(
        actor=actor, model_name=model_name, run_id=run_id, team=team, recorded=recorded, own_run=True
    )
    version = registration.version
    if profile is None:
        profile = gateway.run_json_artifact(run_id, "reference_profile.json")
    if profile is not None:
        ReferenceProfile.objects.update_or_create(version=version, defaults={"data": profile})
    gateway.log_text(run_id, "model_card.md", model_card(version).markdown)
    return version


DEMO_MODEL = "fraud-scorer"
DEMO_ROWS = 40_000
# Each demo version is trained on its own dataset version (another seed); then moved up the ladder.
DEMO_STAGES = [Stage.PRODUCTION, Stage.STAGING, Stage.CANDIDATE, Stage.EXPERIMENT]
DEMO_CARD = {
    "intended_use": "Score Hafnium card and payment transactions for fraud risk, in real time, to decide "
    "whether to approve, step up authentication or decline. Scores feed the rules engine; they never "
    "decline a customer on their own.",
    "out_of_scope_use": "Credit decisions, customer profiling, or any use outside card payments.",
    "limitations": "Trained on synthetic transactions with a 1.5% fraud rate; new merchant categories and "
    "shifts in amounts degrade it (watch PSI). Scores are calibrated on the holdout only.",
    "ethical_considerations": "Country mismatch is a feature: review false-positive rates by card "
    "country before each promotion to Production.",
}


def demo_model_ensure(*, team_slug: str, rows: int = DEMO_ROWS, log=print) -> list[ModelVersion]:
    """The demo fraud-scorer: one version per stage, each on a different dataset. Idempotent."""
    from django.contrib.auth import get_user_model

    from apps.accounts.models import Team
    from apps.registry.services import aliases_publish, model_card_edit, version_stage_set

    existing = list(ModelVersion.objects.filter(model__name=DEMO_MODEL).order_by("version"))
    if existing:
        return existing
    users = get_user_model().objects
    author = users.filter(username="data_scientist").first()
    team = Team.objects.get(slug=team_slug)
    versions = []
    for seed, target in enumerate(DEMO_STAGES, 1):
        log(f"Training demo version {seed} of {len(DEMO_STAGES)} ({rows} rows)...")
        dataset = synthetic_dataset_create(actor=author, rows=rows, seed=seed)
        version = model_train(
            actor=author, model_name=DEMO_MODEL, dataset=dataset, team=team, seed=seed
        ).version
        ladder = LADDER[1 : LADDER.index(target) + 1]
        for stage in ladder:
            version = version_stage_set(actor=None, version=version, stage=stage, reason="demo data")
        versions.append(version)
    model_card_edit(actor=author, model=versions[0].model, **DEMO_CARD)
    aliases_publish(model=versions[0].model)
    return versions
