"""Drift runs: requesting one (schedule or on demand), claiming it, summarising its window in chunks,
comparing the merged summaries with the version's references, storing the results.

How a large window scales: the window [start, end) is cut into `chunks_total` equal time slices of
about DRIFT_CHUNK_ROWS rows each, read from PostgreSQL (`apps.serving.selectors.log_window`) and
summarised on as many workers as there are (a Celery chord, apps/monitoring/tasks.py); the summaries
add exactly (drift.py: bin counts, and for KS the counts of the window at each distinct reference
value), so the merged result is the unsplit window's. KS never needs the window's values sorted
together: a chunk costs one sort of its own rows and a search against the U reference values, and
its summary is O(U + B) numbers per feature whatever its size, so the merge and the comparison cost
O(chunks x U), not O(window).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.audit.services import audit_record
from apps.registry.models import ModelVersion, RegisteredModel, Stage
from hafnium_portal.enqueue import enqueue_on_commit
from hafnium_portal.errors import DomainError

from .. import drift, quality
from ..models import DriftRun, FeatureResult, MonitoringPolicy
from .drift_policy import policy_in_force
from .drift_references import EMBEDDING, References, drift_reference_load

Status = DriftRun.Status


def production_version(model: RegisteredModel) -> ModelVersion | None:
    return model.versions.filter(stage=Stage.PRODUCTION).order_by("-version").first()


def drift_run_request(*, actor, model: RegisteredModel, trigger: str = DriftRun.Trigger.MANUAL) -> DriftRun:
    """Queue a drift run of the model's production version over the policy's window ending now."""
    version = production_version(model)
    if version is None:
        raise DomainError(f"{model} has no version in Production: there is nothing to monitor.")
    policy = policy_in_force(model)
    end = timezone.now()
    start = end - timedelta(hours=policy.window_hours)
    with transaction.atomic():
        run = DriftRun.objects.create(
            model=model,
            version=version,
            policy=policy,
            trigger=trigger,
            requested_by=actor,
            window_start=start,
            window_end=end,
        )
        audit_record(
            actor=actor,
            action="monitoring.drift_run_requested",
            obj=run,
            after={"version": version.version, "trigger": trigger, "window": [start, end]},
        )
        enqueue_on_commit(
            "apps.monitoring.tasks_drift.drift_run_execute", run.pk, task_id=f"drift-run-{run.pk}"
        )
    return run


def drift_runs_schedule_due(*, model_id: int) -> DriftRun | None:
    """The scheduled run of one model (its beat entry); nothing when it has no production version."""
    model = RegisteredModel.objects.filter(pk=model_id).first()
    if model is None or production_version(model) is None:
        return None
    return drift_run_request(actor=None, model=model, trigger=DriftRun.Trigger.SCHEDULE)


def _lease() -> timedelta:
    return timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT)


def drift_run_claim(*, run: DriftRun) -> bool:
    """Compare-and-set the run from queued to running (or take over a running one whose lease ended).

    False when another delivery holds it or it is finished: a redelivered task does nothing.
    """
    now = timezone.now()
    claimed = DriftRun.objects.filter(pk=run.pk, status=Status.QUEUED).update(
        status=Status.RUNNING, started_at=now, claimed_until=now + _lease()
    )
    if not claimed:
        claimed = DriftRun.objects.filter(pk=run.pk, status=Status.RUNNING, claimed_until__lt=now).update(
            claimed_until=now + _lease(), chunks_done=0
        )
    run.refresh_from_db()
    return bool(claimed)


def _rows_in_window(run: DriftRun) -> int:
    from apps.serving.selectors import version_stats

    stats = version_stats(
        run.model, since=run.window_start, until=run.window_end, versions=[run.version.version]
    )
    found = stats.get(run.version.version)
    return int(found.requests) if found is not None else 0


def drift_run_plan(*, run: DriftRun) -> int:
    """Count the window's rows and cut it into chunks (stored on the run): the number of chunks."""
    rows = _rows_in_window(run)
    chunks = max(1, math.ceil(rows / settings.DRIFT_CHUNK_ROWS))
    DriftRun.objects.filter(pk=run.pk).update(rows=rows, chunks_total=chunks)
    run.refresh_from_db()
    return chunks


def chunk_bounds(run: DriftRun, index: int):
    """[since, until) of chunk `index`: equal slices of the window, the last ending at its end exactly."""
    span = run.window_end - run.window_start
    since = run.window_start + span * index / run.chunks_total
    until = (
        run.window_end
        if index == run.chunks_total - 1
        else run.window_start + span * (index + 1) / run.chunks_total
    )
    return since, until


def decline_threshold(model: RegisteredModel) -> float:
    from apps.serving.models import ServingPolicy

    policy = ServingPolicy.objects.filter(model=model).order_by("-version").first()
    return policy.decline_at if policy is not None else 0.9


def summarise_window(references: References, window, *, decline_at: float) -> dict:
    """The mergeable summary of one chunk of the window (plain JSON, a chord's result)."""
    columns = {name: window.numeric.get(name, np.empty(0)) for name in references.numeric}
    columns |= {
        name: window.categorical.get(name, np.empty(0, dtype=object)) for name in references.categorical
    }
    summaries = drift.summarise_table({**references.numeric, **references.categorical}, columns)
    features = {name: summary.to_dict() for name, summary in summaries.items()}
    embedding = None
    if references.embedding is not None:
        rows = window.embedding
        width = references.embedding.centroid.size
        if rows is None or rows.ndim != 2 or rows.shape[1] != width:
            rows = np.empty((0, width))
        embedding = references.embedding.summarise(rows).to_dict()
    scored = (np.asarray(window.status) == "ok") & ~np.asarray(window.fallback, dtype=bool)
    scores = np.asarray(window.score, dtype=float)[scored]
    counts, sums = quality.score_histogram(scores)
    return {
        "rows": int(window.n),
        "features": features,
        "embedding": embedding,
        "score": references.score.summarise(scores).to_dict(),
        "declines": int((scores >= decline_at).sum()),
        "histogram": {"counts": counts.tolist(), "sums": sums.tolist()},
    }


def drift_chunk_summarise(*, run: DriftRun, index: int) -> dict:
    """Read chunk `index` of the run's window and summarise it; counts it as done (progress)."""
    from apps.serving.selectors import log_window

    since, until = chunk_bounds(run, index)
    window = log_window(run.model, since=since, until=until, version=run.version.version)
    references = drift_reference_load(version=run.version)
    summary = summarise_window(references, window, decline_at=decline_threshold(run.model))
    DriftRun.objects.filter(pk=run.pk, status=Status.RUNNING).update(chunks_done=F("chunks_done") + 1)
    return summary


def merge_summaries(summaries: list[dict]) -> dict:
    """The whole window's summary from its chunks' (exact: every part adds)."""
    first = summaries[0]
    features = {
        name: sum_column([drift.ColumnSummary.from_dict(s["features"][name]) for s in summaries])
        for name in first["features"]
    }
    embedding = None
    if first["embedding"] is not None:
        parts = [drift.EmbeddingSummary.from_dict(s["embedding"]) for s in summaries]
        embedding = parts[0]
        for part in parts[1:]:
            embedding = embedding + part
    return {
        "rows": sum(s["rows"] for s in summaries),
        "features": features,
        "embedding": embedding,
        "score": sum_column([drift.ColumnSummary.from_dict(s["score"]) for s in summaries]),
        "declines": sum(s["declines"] for s in summaries),
        "histogram": (
            np.sum([s["histogram"]["counts"] for s in summaries], axis=0),
            np.sum([s["histogram"]["sums"] for s in summaries], axis=0),
        ),
    }


def sum_column(parts: list[drift.ColumnSummary]) -> drift.ColumnSummary:
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


def _number(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def plain(value):
    """JSON for PostgreSQL: NaN and infinities become null (jsonb refuses them), numpy becomes Python."""
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return _number(value)
    return value


def _numeric_labels(edges) -> list[str]:
    edges = [f"{edge:.4g}" for edge in edges]
    if not edges:
        return ["all"]
    inner = [f"({low}, {high}]" for low, high in itertools.pairwise(edges)]
    return [f"<= {edges[0]}", *inner, f"> {edges[-1]}"]


def _feature_row(run: DriftRun, name: str, result, references: References) -> FeatureResult:
    if isinstance(result, drift.EmbeddingDrift):
        parts = [*result.components, result.distance]
        detail = {
            "explained_variance_ratio": list(result.explained_variance_ratio),
            "distance_mean_reference": result.distance_mean_reference,
            "distance_mean_current": result.distance_mean_current,
            "distance_shift": result.distance_shift,
            "parts": [
                {
                    "name": part.kind,
                    "psi": part.psi,
                    "js": part.js,
                    "ks": part.ks,
                    "verdict": part.verdict,
                    "labels": _numeric_labels(bins.edges),
                    "reference_shares": list(part.reference_shares),
                    "current_shares": list(part.current_shares),
                }
                for part, bins in zip(
                    parts, [*references.embedding.projections, references.embedding.distance], strict=True
                )
            ],
        }
        return FeatureResult(
            run=run, feature=name, kind="embedding", verdict=result.verdict, reason=result.reason,
            psi=_number(result.psi), js=_number(result.js), n_reference=result.n_reference,
            n_current=result.n_current, detail=plain(detail),
        )  # fmt: skip
    if result.kind == "categorical":
        labels = list(references.categorical[name].labels)
    else:
        labels = _numeric_labels(references.numeric[name].edges)
    return FeatureResult(
        run=run, feature=name, kind=result.kind, verdict=result.verdict, reason=result.reason,
        psi=_number(result.psi), js=_number(result.js), ks=_number(result.ks),
        ks_pvalue=_number(result.ks_pvalue), chi2=_number(result.chi2),
        chi2_pvalue=_number(result.chi2_pvalue), pvalue_adjusted=_number(result.pvalue_adjusted),
        n_reference=result.n_reference, n_current=result.n_current, min_rows=result.min_rows_psi,
        detail=plain({"labels": labels, "reference_shares": list(result.reference_shares),
                      "current_shares": list(result.current_shares),
                      "missing_current": result.missing_current, "psi_null": result.psi_null}),
    )  # fmt: skip


def thresholds_of(policy: MonitoringPolicy) -> drift.Thresholds:
    return drift.Thresholds(psi_watch=policy.psi_watch, psi_drift=policy.psi_alert)


def severe_count(results: dict, policy: MonitoringPolicy) -> int:
    """Features whose PSI reached the severe level, with enough data to say so."""
    return sum(
        1
        for result in results.values()
        if result.verdict != drift.NOT_ENOUGH_DATA
        and result.psi is not None
        and result.psi >= policy.psi_severe
    )


def severe_history(run: DriftRun, policy: MonitoringPolicy) -> list[str]:
    """The persistence rule's input: one level per finished window of the same version, oldest first."""
    earlier = (
        DriftRun.objects.filter(
            model_id=run.model_id, version_id=run.version_id, status=Status.SUCCEEDED,
            window_end__lte=run.window_end,
        )
        .exclude(pk=run.pk)
        .order_by("-window_end", "-id")
        .values_list("verdict", "severe")[: max(policy.persistence_m - 1, 0)]
    )  # fmt: skip
    levels = [
        drift.NOT_ENOUGH_DATA
        if verdict == drift.NOT_ENOUGH_DATA
        else (drift.DRIFT if severe else drift.NO_DRIFT)
        for verdict, severe in reversed(list(earlier))
    ]
    return levels


def compare_run(run: DriftRun, merged: dict, references: References) -> dict:
    """Every statistic of the window: per feature, the embedding, the score, the prediction shift, the AUC."""
    policy = run.policy
    thresholds = thresholds_of(policy)
    summaries = dict(merged["features"])
    if merged["embedding"] is not None:
        summaries[EMBEDDING] = merged["embedding"]
    results = drift.compare_summaries(references.features, summaries, thresholds=thresholds)
    score_summary = merged["score"]
    score = references.score.compare(score_summary, thresholds=thresholds)
    decline_at = decline_threshold(run.model)
    n_scored = score_summary.n
    shift = drift.prediction_shift_of_rates(
        mean_reference=references.score_mean,
        decline_rate_reference=references.decline_rate(decline_at),
        n_reference=references.score.n,
        mean_current=score_summary.mean,
        decline_rate_current=merged["declines"] / n_scored if n_scored else math.nan,
        n_current=n_scored,
        threshold=policy.prediction_shift_investigate,
    )
    return {"results": results, "score": score, "shift": shift, "decline_at": decline_at}


def _labelled(run: DriftRun):
    from apps.serving.selectors import labelled_window

    return labelled_window(
        run.model, since=run.window_start, until=run.window_end, version=run.version.version
    )


def drift_run_complete(*, run: DriftRun, summaries: list[dict]) -> DriftRun:
    """Compare the merged window with the references, store the results and finish the run (once).

    A delivery that finds the run finished already does nothing. The responses (alert, investigation,
    retraining, rollback) are a task of their own, enqueued after the commit.
    """
    run.refresh_from_db()
    if run.status != Status.RUNNING:
        return run
    references = drift_reference_load(version=run.version)
    merged = merge_summaries(summaries)
    compared = compare_run(run, merged, references)
    results, score, shift = compared["results"], compared["score"], compared["shift"]
    policy = run.policy
    scores, labels = _labelled(run)
    holdout_auc = _number((run.version.metrics or {}).get("roc_auc"))
    judged = quality.window_quality(
        scores=scores, labels=labels, holdout_auc=holdout_auc, histogram=merged["histogram"],
        min_labels=policy.min_labels, min_positives=policy.min_label_positives,
    )  # fmt: skip
    verdict = drift.worst([result.verdict for result in results.values()])
    drifted = sorted(name for name, result in results.items() if result.verdict == drift.DRIFT)
    severe_features = severe_count(results, policy)
    severe = verdict != drift.NOT_ENOUGH_DATA and severe_features >= policy.severe_features
    history = [*severe_history(run, policy), drift.NOT_ENOUGH_DATA if verdict == drift.NOT_ENOUGH_DATA
               else (drift.DRIFT if severe else drift.NO_DRIFT)]  # fmt: skip
    persistent = drift.persistent(history, k=policy.persistence_k, m=policy.persistence_m)
    summary = {
        "rows": merged["rows"],
        "thresholds": asdict(thresholds_of(policy)),
        "score": {
            "psi": score.psi, "js": score.js, "ks": score.ks, "verdict": score.verdict,
            "labels": _numeric_labels(references.score.edges),
            "reference_shares": list(score.reference_shares), "current_shares": list(score.current_shares),
            "n": score.n_current,
        },
        "prediction_shift": asdict(shift),
        "decline_at": compared["decline_at"],
        "quality": judged.as_dict(),
        "severe_features": severe_features,
        "severe_history": history,
        "persistent": persistent,
        "references": references.source,
    }  # fmt: skip
    now = timezone.now()
    with transaction.atomic():
        finished = DriftRun.objects.filter(pk=run.pk, status=Status.RUNNING).update(
            status=Status.SUCCEEDED, verdict=verdict, severe=severe, drifted_features=drifted,
            summary=plain(summary), rows=merged["rows"], finished_at=now, chunks_done=run.chunks_total,
        )  # fmt: skip
        if not finished:
            run.refresh_from_db()
            return run
        FeatureResult.objects.bulk_create(
            [_feature_row(run, name, result, references) for name, result in results.items()]
        )
        audit_record(
            actor=None,
            action="monitoring.drift_run_finished",
            obj=run,
            before={"status": Status.RUNNING},
            after={"status": Status.SUCCEEDED, "verdict": verdict, "drifted": drifted, "severe": severe,
                   "persistent": persistent, "rows": merged["rows"]},
        )  # fmt: skip
        enqueue_on_commit(
            "apps.monitoring.tasks_drift.drift_run_respond", run.pk, task_id=f"drift-respond-{run.pk}"
        )
    run.refresh_from_db()
    return run


def drift_run_fail(*, run: DriftRun, error: str) -> None:
    """End an unfinished run as failed with the reason (compare-and-set: a finished run stays as it is)."""
    with transaction.atomic():
        ended = DriftRun.objects.filter(pk=run.pk, status__in=[Status.QUEUED, Status.RUNNING]).update(
            status=Status.FAILED, error=error[:2000], finished_at=timezone.now()
        )
        if ended:
            audit_record(
                actor=None, action="monitoring.drift_run_failed", obj=run, after={"error": error[:2000]}
            )
