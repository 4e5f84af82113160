"""Celery entry points of drift monitoring: scheduled and on-demand runs (a chord over large windows),
their responses, retraining, and the sweep that keeps schedules and resumes stuck runs.

Every task is safe to run twice: the run (or retraining) is claimed with a compare-and-set first, and a
run finishes once (`drift_run_complete`), so a redelivered task or chord part changes nothing.
"""

from celery import chord, shared_task
from django.conf import settings

from .models import DriftRun, Retraining
from .services import drift_responses, drift_retrain, drift_runs, drift_schedule


@shared_task(acks_late=True)
def drift_run_scheduled(model_id: int) -> int | None:
    """The beat entry of one model (its schedule is editable in the admin)."""
    run = drift_runs.drift_runs_schedule_due(model_id=model_id)
    return run.pk if run is not None else None


@shared_task(bind=True, acks_late=True)
def drift_run_execute(self, run_id: int) -> int | None:
    """Claim the run, plan its chunks; one chunk is done here, more go to a chord of workers."""
    run = DriftRun.objects.select_related("model", "version", "policy").filter(pk=run_id).first()
    if run is None or not drift_runs.drift_run_claim(run=run):
        return None
    try:
        chunks = drift_runs.drift_run_plan(run=run)
        if chunks == 1:
            summary = drift_runs.drift_chunk_summarise(run=run, index=0)
            drift_runs.drift_run_complete(run=run, summaries=[summary])
            return run.pk
    except Exception as exc:
        drift_runs.drift_run_fail(run=run, error=f"{type(exc).__name__}: {exc}")
        raise
    chord(drift_chunk_summarise.s(run.pk, index) for index in range(chunks))(drift_run_finish.s(run.pk))
    return run.pk


@shared_task(acks_late=True)
def drift_chunk_summarise(run_id: int, index: int) -> dict:
    """One slice of the window, summarised (its result is plain JSON for the chord's callback)."""
    run = DriftRun.objects.select_related("model", "version").get(pk=run_id)
    return drift_runs.drift_chunk_summarise(run=run, index=index)


@shared_task(acks_late=True)
def drift_run_finish(summaries: list[dict], run_id: int) -> int:
    run = DriftRun.objects.select_related("model", "version", "policy").get(pk=run_id)
    try:
        drift_runs.drift_run_complete(run=run, summaries=summaries)
    except Exception as exc:
        drift_runs.drift_run_fail(run=run, error=f"{type(exc).__name__}: {exc}")
        raise
    return run.pk


@shared_task(acks_late=True)
def drift_run_respond(run_id: int) -> list[str]:
    run = DriftRun.objects.get(pk=run_id)
    return [f"{response.kind}:{response.outcome}" for response in drift_responses.drift_run_respond(run=run)]


@shared_task(acks_late=True, time_limit=settings.TRAINING_TASK_TIME_LIMIT,
             soft_time_limit=settings.TRAINING_TASK_TIME_LIMIT - 60)  # fmt: skip
def retrain_model(retraining_id: int) -> str:
    retraining = Retraining.objects.get(pk=retraining_id)
    return drift_retrain.retraining_execute(retraining=retraining).status


@shared_task
def drift_schedules_sweep() -> dict:
    return drift_schedule.drift_schedules_sweep()
