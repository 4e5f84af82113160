""" "Verify chain" as a Celery task with its progress on a VerificationRun, claimed with a compare-and-set;
the periodic checkpoint written by beat and a worker. Real worker and beat processes (start_celery)."""

import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.audit import services
from apps.audit.models import AuditEvent, VerificationRun
from apps.audit.services import audit_record, verification_run
from hafnium_portal.celery import app

Status = VerificationRun.Status


def record(count: int) -> list[AuditEvent]:
    return [audit_record(actor="system", action="test.event", after={"n": n}) for n in range(count)]


@pytest.mark.django_db(transaction=True)
def test_verify_chain_runs_in_a_worker_and_the_page_shows_the_outcome(start_celery, client, compliance):
    record(30)
    worker = start_celery("worker")
    client.force_login(compliance)

    started = client.post(reverse("audit:verify"), HTTP_HX_REQUEST="true")

    run = VerificationRun.objects.get()
    assert f'hx-get="{reverse("audit:verification", args=[run.pk])}"' in started.content.decode()
    worker.wait_for(lambda: VerificationRun.objects.filter(pk=run.pk, status=Status.INTACT).exists())
    run.refresh_from_db()
    assert (run.claims, run.checked, run.total) == (1, AuditEvent.objects.count(), AuditEvent.objects.count())
    polled = client.get(reverse("audit:verification", args=[run.pk]), HTTP_HX_REQUEST="true").content.decode()
    assert f"Audit chain intact: {run.checked} events verified" in polled
    assert "hx-trigger" not in polled


@pytest.mark.django_db(transaction=True)
def test_a_redelivered_verification_task_does_not_run_it_again(start_celery, compliance):
    record(5)
    run = VerificationRun.objects.create(requested_by=compliance)
    worker = start_celery("worker")

    # The same run delivered twice (as after a broker redelivery), then a marker task behind them.
    for n in range(2):
        app.send_task("apps.audit.tasks.verify_trail", args=[run.pk], task_id=f"verify-{run.pk}-{n}")
    worker.wait_for(lambda: VerificationRun.objects.filter(pk=run.pk, status=Status.INTACT).exists())
    second = app.AsyncResult(f"verify-{run.pk}-1")
    worker.wait_for(lambda: second.ready())

    assert second.get(timeout=5) is False  # found it claimed
    assert app.AsyncResult(f"verify-{run.pk}-0").get(timeout=5) is True
    run.refresh_from_db()
    assert run.claims == 1


@pytest.mark.django_db(transaction=True)
def test_beat_and_a_worker_write_checkpoints_periodically(start_celery, tmp_path, settings):
    (*_, head) = record(4)
    folder = tmp_path / "checkpoints"
    env = {
        "AUDIT_CHECKPOINT_INTERVAL": "1",
        "AUDIT_CHECKPOINT_DIR": str(folder),
        "AUDIT_CHECKPOINT_KEY": "a key from the secret store",
    }
    worker = start_celery("worker", env=env)
    start_celery("beat", env=env)

    written = folder / "checkpoints.jsonl"
    worker.wait_for(lambda: written.exists() and written.read_text().strip(), timeout=90)

    checkpoint = json.loads(written.read_text().splitlines()[-1])
    assert (checkpoint["event_id"], checkpoint["hash"]) == (head.pk, head.hash)
    settings.AUDIT_CHECKPOINT_DIR, settings.AUDIT_CHECKPOINT_KEY = str(folder), env["AUDIT_CHECKPOINT_KEY"]
    assert services.audit_verify().checkpoint == checkpoint  # signed with the key the worker was given


# --- the claim and the progress, in process ------------------------------------------------------


@pytest.mark.django_db
def test_a_running_verification_is_not_claimed_again_unless_it_stalled():
    record(3)
    run = VerificationRun.objects.create(status=Status.RUNNING, progressed_at=timezone.now(), claims=1)

    assert verification_run(run_id=run.pk) is False
    run.refresh_from_db()
    assert (run.status, run.claims) == (Status.RUNNING, 1)

    VerificationRun.objects.filter(pk=run.pk).update(progressed_at=timezone.now() - timedelta(hours=1))
    assert verification_run(run_id=run.pk) is True
    run.refresh_from_db()
    assert (run.status, run.claims, run.checked) == (Status.INTACT, 2, 3)
    assert verification_run(run_id=run.pk) is False  # finished: nothing to claim


@pytest.mark.django_db
def test_progress_is_written_to_the_run_as_the_walk_goes(monkeypatch):
    record(7)
    run = VerificationRun.objects.create()
    seen = []
    walk = services.audit_verify

    def watched(*, progress, **options):
        def progress_then_read(checked):
            progress(checked)
            seen.append(VerificationRun.objects.values_list("status", "checked").get(pk=run.pk))

        return walk(progress=progress_then_read, **options)

    monkeypatch.setattr(services, "PROGRESS_EVERY", 2)
    monkeypatch.setattr(services, "audit_verify", watched)

    assert verification_run(run_id=run.pk) is True

    total = AuditEvent.objects.count()
    assert seen == [(Status.RUNNING, n) for n in range(2, total + 1, 2)]
    run.refresh_from_db()
    assert (run.status, run.checked, run.total) == (Status.INTACT, total, total)


@pytest.mark.django_db
def test_a_running_verification_shows_its_progress_and_keeps_polling(client, compliance):
    run = VerificationRun.objects.create(status=Status.RUNNING, checked=400_000, total=1_000_000)
    client.force_login(compliance)

    html = client.get(reverse("audit:verification", args=[run.pk]), HTTP_HX_REQUEST="true").content.decode()

    assert "verified 400,000 of 1,000,000 events" in html
    assert 'hx-trigger="every 1s"' in html
    assert 'aria-valuenow="400000"' in html


@pytest.mark.django_db
def test_a_failed_verification_is_recorded_and_says_so(client, compliance, monkeypatch):
    run = VerificationRun.objects.create()

    def broken_database(**options):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(services, "audit_verify", broken_database)
    with pytest.raises(RuntimeError):
        verification_run(run_id=run.pk)

    run.refresh_from_db()
    assert (run.status, run.message) == (Status.FAILED, "RuntimeError: the database went away")
    client.force_login(compliance)
    html = client.get(reverse("audit:verification", args=[run.pk])).content.decode()
    assert "failed before it finished: RuntimeError: the database went away" in html
