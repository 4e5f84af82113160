"""The retrain loop: the latest labelled window becomes a dataset version, the training pipeline trains on
it and registers a version, and the system actor files its Candidate promotion request. People approve.

Lineage: the dataset version's params name the model, the window and the drift run that asked; the
new version's dataset is that dataset version (training records it); the request's justification names
the run. The system actor is given the right to request promotion of this one model (a django-guardian
object permission), nothing else; separation of duties holds as for anyone (it never approves).
"""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from guardian.shortcuts import assign_perm

from apps.accounts.services import system_actor
from apps.audit.services import audit_record
from apps.registry.models import Stage
from apps.registry.services import dataset_register
from apps.training import synthetic
from apps.training.services import model_train
from hafnium_portal.enqueue import enqueue_on_commit
from hafnium_portal.errors import DomainError

from ..models import DriftRun, Retraining

Status = Retraining.Status


def retraining_request(*, run: DriftRun, reason: str) -> Retraining:
    """Queue the retraining a run asked for (once per run), over the last DRIFT_RETRAIN_WINDOW_DAYS."""
    existing = Retraining.objects.filter(run=run).first()
    if existing is not None:
        return existing
    retraining = Retraining.objects.create(
        model=run.model,
        run=run,
        reason=reason,
        window_start=run.window_end - timedelta(days=settings.DRIFT_RETRAIN_WINDOW_DAYS),
        window_end=run.window_end,
    )
    enqueue_on_commit(
        "apps.monitoring.tasks_drift.retrain_model", retraining.pk, task_id=f"retrain-{retraining.pk}"
    )
    return retraining


def labelled_frame(model, *, since, until) -> pd.DataFrame:
    """The window's logged transactions that have a label, as a training frame (features, label...)."""
    from apps.serving.models import Feedback
    from apps.serving.selectors import log_window

    window = log_window(model, since=since, until=until)
    ids = [str(value) for value in window.transaction_id]
    labels = dict(
        Feedback.objects.filter(model=model, transaction_id__in=ids).values_list("transaction_id", "label")
    )
    keep = np.array([value in labels for value in ids], dtype=bool)
    columns = {
        "transaction_id": np.asarray(ids, dtype=object)[keep],
        "event_time": pd.to_datetime(window.created_at[keep], utc=True),
    }
    for name in synthetic.NUMERIC_FEATURES:
        if name not in window.numeric:
            raise DomainError(f"the logs of {model} lack the feature {name}")
        columns[name] = window.numeric[name][keep]
    for name in synthetic.CATEGORICAL_FEATURES:
        if name not in window.categorical:
            raise DomainError(f"the logs of {model} lack the feature {name}")
        columns[name] = window.categorical[name][keep].astype(str)
    if window.embedding is not None and window.embedding.shape[1] == synthetic.EMBEDDING_DIM:
        for i, name in enumerate(synthetic.EMBEDDING_COLUMNS):
            columns[name] = window.embedding[keep, i]
    columns[synthetic.LABEL] = np.array(
        [int(labels[value]) for value in ids if value in labels], dtype=np.int8
    )
    return pd.DataFrame(columns)


def _claim(retraining: Retraining) -> bool:
    now = timezone.now()
    lease = now + timedelta(seconds=settings.TRAINING_TASK_TIME_LIMIT)
    claimed = Retraining.objects.filter(pk=retraining.pk, status=Status.QUEUED).update(
        status=Status.RUNNING, claimed_until=lease
    ) or Retraining.objects.filter(pk=retraining.pk, status=Status.RUNNING, claimed_until__lt=now).update(
        claimed_until=lease
    )
    retraining.refresh_from_db()
    return bool(claimed)


def _finish(retraining: Retraining, *, status: str, actor, **fields) -> None:
    with transaction.atomic():
        ended = Retraining.objects.filter(pk=retraining.pk, status=Status.RUNNING).update(
            status=status, finished_at=timezone.now(), **fields
        )
        if ended:
            retraining.refresh_from_db()
            audit_record(
                actor=actor,
                action="monitoring.retraining_finished",
                obj=retraining,
                after={
                    "status": status,
                    "dataset": retraining.dataset_id,
                    "version": retraining.version_id,
                    "promotion_request": retraining.promotion_request_id,
                    "error": retraining.error,
                },
            )


def retraining_execute(*, retraining: Retraining) -> Retraining:
    """Train on the labelled window, register the version, file its Candidate request (once)."""
    from apps.governance.services import promotion_request_create

    if not _claim(retraining):
        return retraining
    actor = system_actor()
    model = retraining.model
    try:
        frame = labelled_frame(model, since=retraining.window_start, until=retraining.window_end)
        frauds = int(frame[synthetic.LABEL].sum()) if len(frame) else 0
        if len(frame) < settings.DRIFT_RETRAIN_MIN_ROWS or frauds < 10:
            raise DomainError(
                f"{len(frame)} labelled transactions ({frauds} frauds) in the window: at least "
                f"{settings.DRIFT_RETRAIN_MIN_ROWS} and 10 frauds are needed to retrain"
            )
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "labelled-window.parquet"
            frame.to_parquet(path, index=False)
            dataset = dataset_register(
                actor=actor,
                name=f"{model.name}-labelled",
                source=path,
                description=f"Labelled prediction logs of {model.name}, "
                f"{retraining.window_start:%Y-%m-%d %H:%M} to {retraining.window_end:%Y-%m-%d %H:%M} UTC "
                f"(retraining after drift run #{retraining.run_id})",
                params={
                    "source": "prediction logs + feedback labels",
                    "model": model.name,
                    "since": retraining.window_start.isoformat(),
                    "until": retraining.window_end.isoformat(),
                    "drift_run": retraining.run_id,
                    "rows": len(frame),
                },
            )
        Retraining.objects.filter(pk=retraining.pk).update(dataset=dataset)
        outcome = model_train(
            actor=None,
            model_name=model.name,
            dataset=dataset,
            team=model.team,
            key=f"retraining-{retraining.pk}",
        )
        if outcome.version is None:
            raise DomainError(f"the retrained model did not pass the quality gate: {outcome.run.reason}")
        version = outcome.version
        if not version.created_by_id:
            version.__class__.objects.filter(pk=version.pk).update(created_by=actor)
            version.refresh_from_db()
        assign_perm("registry.request_promotion", actor, model)
        request = promotion_request_create(
            actor=actor,
            version=version,
            to_stage=Stage.CANDIDATE,
            justification=(
                f"Automatic retraining after drift run #{retraining.run_id}: {retraining.reason}. Trained on "
                f"{len(frame)} labelled transactions ({frauds} frauds), dataset {dataset}."
            ),
        )
        _finish(
            retraining,
            status=Status.DONE,
            actor=actor,
            dataset=dataset,
            version=version,
            promotion_request=request,
        )
    except Exception as exc:
        _finish(retraining, status=Status.FAILED, actor=actor, error=f"{type(exc).__name__}: {exc}"[:2000])
        if not isinstance(exc, DomainError):
            raise
    retraining.refresh_from_db()
    return retraining
