"""What the controller makes true before a rollout leaves a state (machine.Effect), each idempotent.

Every effect runs inside the transaction of the move it prepares, under the rollout's row lock: the
routing table (PostgreSQL; Redis after the commit), stage moves, the outbox rows of mails, webhooks
and alerts all commit with the move or not at all. What talks to MLflow (aliases) is enqueued after
the commit and has its own sweep, so MLflow being away never holds a rollback.
"""

from django.conf import settings
from django.db import transaction
from django.urls import NoReverseMatch, reverse

from apps.registry.models import ModelVersion, Stage
from apps.registry.services import version_stage_set
from hafnium_portal.enqueue import enqueue_on_commit

from .. import machine
from ..models import AnalysisMeasurement, Rollout

Effect = machine.Effect
Cause = Rollout.Cause

STAGING, PRODUCTION = "staging", "production"
# A rollback, failure or deadline leaves the candidate Rolled back; a person's abort leaves it where it was.
MARKS_ROLLED_BACK = frozenset({Cause.ANALYSIS_FAILED, Cause.ANALYSIS_ERROR, Cause.DEADLINE, Cause.EMERGENCY})
ALERT_SOURCE = "deployments"


def rollout_path(rollout: Rollout) -> str:
    try:
        return reverse("deployments:rollout-detail", args=[rollout.pk])
    except NoReverseMatch:  # the pages are another module's; the API always exists
        return f"/api/v1/deployments/rollouts/{rollout.pk}"


def rollout_link(rollout: Rollout) -> str:
    return settings.PORTAL_BASE_URL.rstrip("/") + rollout_path(rollout)


def _routes(rollout: Rollout, environment: str, weights: dict[int, int], actor, reason: str) -> None:
    from apps.serving.routing import routes_set

    routes_set(model=rollout.model, environment=environment, weights=weights, actor=actor, reason=reason)


def _stage(rollout: Rollout, version: ModelVersion, stage: Stage, actor, reason: str) -> bool:
    """Move `version` to `stage` unless it is there already (a repeated effect); True when it moved."""
    locked = ModelVersion.objects.select_for_update().select_related("model").get(pk=version.pk)
    if locked.stage == stage:
        return False
    version_stage_set(actor=actor, version=locked, stage=stage, reason=reason)
    version.stage = stage
    return True


def _publish_governance_aliases(rollout: Rollout) -> None:
    enqueue_on_commit("apps.registry.tasks.publish_aliases", rollout.model_id)


def canary_alias_follow(rollout: Rollout) -> None:
    """The MLflow `canary` alias must now follow the rollout (set while a weight is live, else removed)."""
    Rollout.objects.filter(pk=rollout.pk).update(alias_pending=True)
    enqueue_on_commit("apps.deployments.tasks.publish_canary_alias", rollout.pk)


def _tell(rollout: Rollout, *, event: str, headline: str, detail: str) -> None:
    """The requester and the approvers of the promotion that started the rollout hear how it ended."""
    from apps.governance import notifications

    if rollout.promotion_request_id:
        notifications.deployment_outcome(
            rollout.promotion_request,
            event=event,
            headline=headline,
            detail=detail,
            link=rollout_link(rollout),
        )


def _alert(rollout: Rollout, *, title: str, detail: str) -> None:
    """On-call is paged (mail, webhook, banner: the alerts app), once per rollout."""
    from apps.alerts.services import alert_raise

    alert_raise(
        source=ALERT_SOURCE,
        key=f"rollout-{rollout.pk}",
        severity="page",
        title=title,
        detail=detail,
        model=rollout.model,
        link=rollout_path(rollout),
    )


def failing_measurements(rollout: Rollout) -> list[AnalysisMeasurement]:
    """The measurements of the current analysis run that failed or errored (the rollback's evidence)."""
    return list(
        rollout.measurements.filter(
            analysis_run=rollout.analysis_run,
            verdict__in=[AnalysisMeasurement.Verdict.FAILED, AnalysisMeasurement.Verdict.ERROR],
        ).order_by("measured_at", "id")
    )


def _evidence(rollout: Rollout) -> str:
    lines = [
        f"- step {m.step_index + 1} ({m.weight_bp / 100:g} %): {m.metric} {m.verdict}: {m.message}"
        for m in failing_measurements(rollout)
    ]
    return "\n".join(lines) or "(no failing measurement: see the reason)"


# --- the effects ---------------------------------------------------------------------------------


def deploy_to_staging(rollout: Rollout, decision: machine.Decision, actor) -> None:
    _routes(rollout, STAGING, {rollout.candidate.version: machine.FULL_WEIGHT_BP}, actor,
            f"staging deployment #{rollout.pk}")  # fmt: skip


def mark_staged(rollout: Rollout, decision: machine.Decision, actor) -> None:
    from apps.governance.services import promotions_supersede

    reason = f"staging tests passed (deployment #{rollout.pk})"
    if _stage(rollout, rollout.candidate, Stage.STAGING, actor, reason):
        promotions_supersede(actor=actor, model_id=rollout.model_id, why=f"{rollout.candidate} was staged")
        _publish_governance_aliases(rollout)
        _tell(rollout, event="deployment.staged", headline="staging tests passed, the version is in Staging",
              detail=decision.reason)  # fmt: skip


def mark_rejected(rollout: Rollout, decision: machine.Decision, actor) -> None:
    from ..selectors import staging_verdict

    reason = f"staging tests failed (deployment #{rollout.pk})"
    _routes(rollout, STAGING, {}, actor, reason)
    if _stage(rollout, rollout.candidate, Stage.REJECTED, actor, reason):
        verdict = staging_verdict(rollout.candidate)
        failed = "\n".join(
            f"- {r.get_test_display()}: {r.detail}" for r in verdict.results if r.passed is False
        )
        _tell(rollout, event="deployment.rejected", headline="staging tests failed, the version is Rejected",
              detail=failed or decision.reason)  # fmt: skip


def set_canary_weight(rollout: Rollout, decision: machine.Decision, actor) -> None:
    weight = int(decision.weight_bp)
    weights = {rollout.candidate.version: weight}
    if weight < machine.FULL_WEIGHT_BP:
        weights[rollout.stable.version] = machine.FULL_WEIGHT_BP - weight
    _routes(rollout, PRODUCTION, weights, actor, f"canary #{rollout.pk} at {weight / 100:g} %")
    if rollout.weight_bp == 0:
        canary_alias_follow(rollout)


def promote_fully(rollout: Rollout, decision: machine.Decision, actor) -> None:
    from apps.governance.services import promotions_supersede

    reason = f"canary #{rollout.pk} promoted: {rollout.reason or decision.reason}"
    moved = _stage(rollout, rollout.candidate, Stage.PRODUCTION, actor, reason)  # archives the stable
    # The Production version answers everything: no table left to carry.
    _routes(rollout, PRODUCTION, {}, actor, reason)
    canary_alias_follow(rollout)
    if moved:
        promotions_supersede(actor=actor, model_id=rollout.model_id, why=f"{rollout.candidate} was promoted")
        _publish_governance_aliases(rollout)
        headline = "the canary succeeded, the version is in Production"
        _tell(rollout, event="deployment.promoted", headline=headline, detail=decision.reason)


def restore_stable(rollout: Rollout, decision: machine.Decision, actor) -> None:
    """Traffic back on the stable version at once, the candidate Rolled back (unless a person aborted),
    the previous Production version restored if the candidate had replaced it, on-call alerted."""
    cause = Rollout.Cause(rollout.cause or Cause.ABORTED)
    why = f"{'rollout' if rollout.kind == Rollout.Kind.CANARY else 'staging deployment'} #{rollout.pk}: " + (
        rollout.reason or decision.reason
    )
    if rollout.kind == Rollout.Kind.STAGING:
        _routes(rollout, STAGING, {}, actor, why)
        return
    stable = rollout.stable
    _routes(rollout, PRODUCTION, {stable.version: machine.FULL_WEIGHT_BP} if stable else {}, actor, why)
    canary_alias_follow(rollout)
    moved = False
    if cause in MARKS_ROLLED_BACK:
        moved = _stage(rollout, rollout.candidate, Stage.ROLLED_BACK, actor, why)
    if stable is not None:
        stable.refresh_from_db(fields=["stage"])
        if stable.stage == Stage.ARCHIVED:  # the candidate had been promoted: the last good one returns
            moved = _stage(rollout, stable, Stage.PRODUCTION, actor, why) or moved
    if moved:
        _publish_governance_aliases(rollout)
    if cause in MARKS_ROLLED_BACK:
        title = f"{rollout.model}: v{rollout.candidate.version} rolled back ({Cause(cause).label.lower()})"
        detail = f"{why}\n\nFailing measurements:\n{_evidence(rollout)}"
        _alert(rollout, title=title, detail=detail)
        headline = f"v{rollout.candidate.version} was rolled back"
        _tell(rollout, event="deployment.rolled_back", headline=headline, detail=detail)


EFFECTS = {
    Effect.NONE: lambda rollout, decision, actor: None,
    Effect.DEPLOY_TO_STAGING: deploy_to_staging,
    Effect.MARK_STAGED: mark_staged,
    Effect.MARK_REJECTED: mark_rejected,
    Effect.SET_CANARY_WEIGHT: set_canary_weight,
    Effect.PROMOTE_FULLY: promote_fully,
    Effect.RESTORE_STABLE: restore_stable,
}


def effect_apply(rollout: Rollout, decision: machine.Decision, actor) -> None:
    """Make the decision's effect true (inside the caller's transaction, under the rollout's lock)."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("effects run inside the move's transaction")
    EFFECTS[Effect(decision.effect)](rollout, decision, actor)
