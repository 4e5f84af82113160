"""The MLflow `canary` alias: on the candidate while a canary weight is live, gone otherwise.

The governance aliases (staging, production) follow the stages (apps.registry's aliases_publish);
this one follows the rollout. Published by a task after the commit, with a sweep in the controller's
tick for a publication lost to an outage. Safe to run any number of times.
"""

from django.db import transaction

from apps.audit.services import audit_record
from apps.registry import gateway

from .. import machine
from ..models import Rollout

CANARY_ALIAS = "canary"
# States in which the candidate takes canary traffic (a paused canary keeps its weight).
LIVE = frozenset(
    {machine.State.ANALYSING, machine.State.PAUSED, machine.State.CANARY, machine.State.PROMOTING}
)


def canary_alias_expected(rollout: Rollout) -> int | None:
    if rollout.kind == Rollout.Kind.CANARY and rollout.state in LIVE and rollout.weight_bp > 0:
        return rollout.candidate.version
    return None


def canary_alias_publish(*, rollout_id: int) -> int | None:
    """Make MLflow's `canary` alias of the rollout's model match the rollout; RegistryUnavailable retries."""
    rollout = Rollout.objects.select_related("model", "candidate").get(pk=rollout_id)
    seen_revision = rollout.revision
    expected = canary_alias_expected(rollout)
    try:
        found = gateway.aliases(rollout.model.name).get(CANARY_ALIAS)
    except gateway.RegistryNotFound:
        # A model the portal knows and MLflow does not (made in the portal only): no alias to keep.
        Rollout.objects.filter(pk=rollout.pk, revision=seen_revision).update(alias_pending=False)
        return None
    if expected is None:
        # Remove the alias only if it is this rollout's candidate: another rollout of the model may hold it.
        if found is not None and found == rollout.candidate.version:
            gateway.delete_alias(rollout.model.name, CANARY_ALIAS)
    elif found != expected:
        gateway.set_alias(rollout.model.name, CANARY_ALIAS, expected)
    with transaction.atomic():
        # Done unless the rollout moved meanwhile (then the next publication follows the new state).
        done = Rollout.objects.filter(pk=rollout.pk, revision=seen_revision).update(
            alias_pending=False, alias_enqueued_at=None
        )
        changed = found != expected and not (expected is None and found != rollout.candidate.version)
        if changed:
            audit_record(
                actor=None,
                action="deployment.canary_alias_set"
                if expected is not None
                else "deployment.canary_alias_removed",
                obj=rollout,
                before={"alias": CANARY_ALIAS, "version": found},
                after={"alias": CANARY_ALIAS, "version": expected, "settled": bool(done)},
            )
    return expected
