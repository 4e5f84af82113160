"""What a finished drift run makes the portal do, under the model's monitoring policy (in force at the run):

- a feature at PSI >= psi_alert (verdict "drift") -> an alert to on-call ("page" when the drift is
  severe and persisting, else "ticket"); a later informative run without drift resolves it;
- a prediction shift >= prediction_shift_investigate -> an investigation for the model's owners;
- a realised AUC (labels) down >= auc_drop_retrain against the holdout AUC -> a retraining;
- severe drift (PSI >= psi_severe on severe_features features) in persistence_k of the last
  persistence_m windows of the version, or a realised AUC down >= auc_drop_rollback -> a rollback to
  the last good production version through the rollout controller.

The estimated AUC (labels lagging) is shown, never acted on (apps/monitoring/quality.py says why).
Each response is claimed once per run (DriftResponse is unique on run and kind), acted on as the
system actor, and audited; one that fails is recorded as failed with the reason, and audited too.
The calls to the alerts and the rollout controller are the module-level functions below.
"""

from __future__ import annotations

import logging

from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from apps.accounts.services import system_actor
from apps.audit.services import audit_record
from hafnium_portal.errors import Conflict, DomainError

from .. import drift
from ..models import DriftResponse, DriftRun, Investigation
from ..permissions import check_close_investigation
from .drift_retrain import retraining_request
from .drift_runs import plain

log = logging.getLogger(__name__)

ALERT_SOURCE = "monitoring.drift"
Kind = DriftResponse.Kind


def alert_raise(**fields):
    """Raise (or count again) an alert through the alerts app."""
    from apps.alerts.services import alert_raise as raise_alert

    return raise_alert(**fields)


def alert_resolve(**fields):
    from apps.alerts.services import alert_resolve as resolve_alert

    return resolve_alert(**fields)


def rollback_to_last_good(*, model, actor, reason: str):
    """The emergency rollback of the rollout controller (apps.deployments)."""
    from apps.deployments.services import rollback_to_last_good as rollback

    return rollback(model=model, actor=actor, reason=reason, source="monitoring")


def alert_key(run: DriftRun) -> str:
    return f"{run.model.name}:drift"


def _respond(run: DriftRun, kind: str, reason: str, act) -> DriftResponse:
    """Claim the response (once per run and kind), act, record and audit it; a failure is recorded too."""
    existing = DriftResponse.objects.filter(run=run, kind=kind).first()
    if existing is not None:
        return existing
    actor = system_actor()
    try:
        with transaction.atomic():
            response = DriftResponse.objects.create(run=run, kind=kind, reason=reason)
            response.detail = plain(act(actor) or {})
            response.save(update_fields=["detail"])
            audit_record(
                actor=actor,
                action=f"monitoring.response_{kind}",
                obj=run,
                after={"reason": reason, **response.detail},
            )
        return response
    except IntegrityError:  # another delivery responded first
        found = DriftResponse.objects.filter(run=run, kind=kind).first()
        if found is not None:
            return found
        raise
    except Exception as exc:
        log.exception("drift response %s of run %s failed", kind, run.pk)
        error = f"{type(exc).__name__}: {exc}"[:2000]
        with transaction.atomic():
            response, created = DriftResponse.objects.get_or_create(
                run=run,
                kind=kind,
                defaults={
                    "outcome": DriftResponse.Outcome.FAILED,
                    "reason": reason,
                    "detail": {"error": error},
                },
            )
            if created:
                audit_record(
                    actor=actor,
                    action=f"monitoring.response_{kind}_failed",
                    obj=run,
                    after={"reason": reason, "error": error},
                )
        return response


def _features_text(names: list[str]) -> str:
    return ", ".join(names) if names else "no feature"


def drift_run_respond(*, run: DriftRun) -> list[DriftResponse]:
    """Every response the run's results call for (safe to run twice: each is claimed once)."""
    run = DriftRun.objects.select_related("model", "version", "policy").get(pk=run.pk)
    if run.status != DriftRun.Status.SUCCEEDED:
        return []
    policy, summary = run.policy, run.summary
    link = reverse("monitoring:drift_report", args=[run.pk])
    responses = []
    persistent = bool(summary.get("persistent"))
    if run.drifted_features:
        severity = "page" if persistent else "ticket"
        reason = f"PSI >= {policy.psi_alert:g} on {_features_text(run.drifted_features)}"

        def raise_alert(actor):
            alert = alert_raise(
                source=ALERT_SOURCE,
                key=alert_key(run),
                severity=severity,
                title=f"Drift on {run.model.name} v{run.version.version}: "
                f"{_features_text(run.drifted_features)}",
                detail=f"Drift run #{run.pk} over {run.rows} transactions: {reason}.",
                model=run.model,
                link=link,
            )
            return {"alert": alert.pk, "severity": severity, "features": run.drifted_features}

        responses.append(_respond(run, Kind.ALERT, reason, raise_alert))
    elif run.verdict in (drift.NO_DRIFT, drift.WATCH):
        alert_resolve(source=ALERT_SOURCE, key=alert_key(run), note=f"drift run #{run.pk}: {run.verdict}")

    shift = summary.get("prediction_shift") or {}
    if shift.get("verdict") == "shift":
        reason = f"prediction shift: {shift.get('reason', '')}"

        def investigate(actor):
            investigation = Investigation.objects.filter(
                model=run.model, status=Investigation.Status.OPEN
            ).first()
            if investigation is None:
                investigation = Investigation.objects.create(model=run.model, run=run, reason=reason)
            owners = list(run.model.owners.values_list("username", flat=True))
            return {"investigation": investigation.pk, "owners": owners}

        responses.append(_respond(run, Kind.INVESTIGATE, reason, investigate))

    judged = summary.get("quality") or {}
    drop = judged.get("drop")
    realised = judged.get("kind") == "realised" and drop is not None
    if realised and policy.auto_retrain and drop >= policy.auc_drop_retrain:
        reason = (
            f"realised AUC {judged['auc']:.3f} is {drop:.1%} under the holdout AUC "
            f"{judged['holdout_auc']:.3f} (retrain from {policy.auc_drop_retrain:.0%})"
        )

        def retrain(actor):
            retraining = retraining_request(run=run, reason=reason)
            return {"retraining": retraining.pk}

        responses.append(_respond(run, Kind.RETRAIN, reason, retrain))

    severe_auc = realised and drop >= policy.auc_drop_rollback
    if policy.auto_rollback and (persistent or severe_auc):
        if persistent:
            reason = (
                f"severe drift (PSI >= {policy.psi_severe:g} on {policy.severe_features}+ features) in "
                f"{policy.persistence_k} of the last {policy.persistence_m} windows of v{run.version.version}"
            )
        else:
            reason = f"realised AUC {drop:.1%} under holdout (rollback from {policy.auc_drop_rollback:.0%})"

        def roll_back(actor):
            rollout = rollback_to_last_good(
                model=run.model, actor=actor, reason=f"drift run #{run.pk}: {reason}"
            )
            return {"rollout": getattr(rollout, "pk", None)}

        responses.append(_respond(run, Kind.ROLLBACK, reason, roll_back))
    return responses


def investigation_close(*, actor, investigation: Investigation, note: str) -> Investigation:
    """Close an open investigation with what was found (compare-and-set: closing twice is refused)."""
    check_close_investigation(actor, investigation.model)
    note = (note or "").strip()
    if not note:
        raise DomainError("Say what was found: a note is needed to close an investigation.")
    with transaction.atomic():
        closed = Investigation.objects.filter(pk=investigation.pk, status=Investigation.Status.OPEN).update(
            status=Investigation.Status.CLOSED, closed_by=actor, closed_at=timezone.now(), note=note
        )
        if not closed:
            raise Conflict("This investigation is already closed.")
        investigation.refresh_from_db()
        audit_record(
            actor=actor,
            action="monitoring.investigation_closed",
            obj=investigation,
            before={"status": Investigation.Status.OPEN},
            after={"status": investigation.status, "note": note, "model": investigation.model.name},
        )
    return investigation
