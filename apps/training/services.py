"""Actions of the training pipeline: produce a dataset version, train, validate, log and register."""

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from django.db import transaction
from django.utils import timezone

from apps.registry import gateway
from apps.registry.cards import model_card
from apps.registry.models import LADDER, DatasetVersion, ModelVersion, Stage
from apps.registry.services import dataset_register, model_ensure, version_mirror
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
    frame = pd.read_parquet(dataset.path)
    missing = [column for column in [*synthetic.FEATURES, synthetic.LABEL] if column not in frame.columns]
    if missing:
        raise DomainError(f"dataset {dataset} lacks the columns {', '.join(missing)}")
    return frame


@dataclass
class TrainingOutcome:
    run: TrainingRun
    version: ModelVersion | None


def model_train(
    *, actor, model_name: str, dataset: DatasetVersion, team=None, min_auc: float = 0.75, seed: int = 0
) -> TrainingOutcome:
    """Train on a dataset version; when the quality gate passes, log one MLflow run and register a version.

    A failed gate records the run as failed (in MLflow and here) with the reason, and registers nothing.
    """
    run = TrainingRun.objects.create(model_name=model_name, dataset=dataset, requested_by=actor)
    try:
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
        run.metrics = result.metrics
        if not result.gate_passed:
            run.mlflow_run_id = gateway.log_failed_run(
                run_name=f"{model_name}-gate-failed", params=params, metrics=result.metrics,
                reason=result.gate_reason, tags=tags,
            )  # fmt: skip
            run.status, run.reason = TrainingRun.Status.FAILED_GATE, result.gate_reason
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
        version = _register(
            actor=actor, model_name=model_name, team=team, dataset=dataset, result=result, logged=logged
        )
        run.version, run.status, run.reason = version, TrainingRun.Status.REGISTERED, result.gate_reason
        return TrainingOutcome(run=run, version=version)
    except DomainError as exc:
        run.status, run.reason = TrainingRun.Status.ERROR, str(exc)
        raise
    except gateway.RegistryUnavailable as exc:
        run.status, run.reason = TrainingRun.Status.ERROR, str(exc)
        raise
    finally:
        run.finished_at = timezone.now()
        run.save()


def _register(*, actor, model_name, team, dataset, result, logged) -> ModelVersion:
    from apps.registry.models import ReferenceProfile
    from apps.registry.services import TEAM_TAG

    remote = gateway.create_version(
        model_name,
        source=logged.model_uri,
        run_id=logged.run_id,
        tags={TEAM_TAG: team.slug} if team else None,
    )
    with transaction.atomic():
        model = model_ensure(name=model_name, team=team, owners=[actor] if actor else [])
        version, _ = version_mirror(
            model=model,
            remote=remote,
            created_by=actor,
            metrics=result.metrics,
            confidence_intervals=result.confidence_intervals,
            curves=result.curves,
            params=result.params,
            signature=gateway.model_signature(logged.model_uri),
            artifact_sha256=gateway.artifact_sha256(logged.model_uri),
            dataset=dataset,
        )
        ReferenceProfile.objects.update_or_create(version=version, defaults={"data": result.profile})
    gateway.log_text(logged.run_id, "model_card.md", model_card(version).markdown)
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
