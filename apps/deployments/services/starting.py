"""Where rollouts come from: a completed promotion to Staging or Production, and the rollout policy."""

from datetime import timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from apps.audit.services import audit_record
from apps.registry.models import Stage
from apps.registry.selectors import production_version
from hafnium_portal.enqueue import enqueue_on_commit
from hafnium_portal.errors import DomainError

from ..models import Rollout, RolloutPolicy
from ..selectors import policy_in_force

KIND_OF_STAGE = {Stage.STAGING: Rollout.Kind.STAGING, Stage.PRODUCTION: Rollout.Kind.CANARY}
# Completed promotions older than this are history, not work the sweep should pick up.
START_SWEEP_WINDOW = timedelta(days=2)


def rollout_start(*, request) -> Rollout | None:
    """The rollout of a completed promotion request to Staging (staging tests) or Production (canary).

    Idempotent: one rollout per request (a second call returns the first). None when the request is
    not a completed promotion to one of those stages. The controller's next tick takes it from there.
    """
    from apps.governance.models import PromotionRequest

    kind = KIND_OF_STAGE.get(request.to_stage)
    if kind is None or request.status != PromotionRequest.Status.COMPLETED:
        return None
    existing = Rollout.objects.filter(promotion_request=request.pk).first()
    if existing is not None:
        return existing
    version = request.version
    stable = production_version(version.model) if kind == Rollout.Kind.CANARY else None
    try:
        with transaction.atomic():
            rollout = Rollout.objects.create(
                model=version.model,
                candidate=version,
                stable=stable if stable is not None and stable.pk != version.pk else None,
                kind=kind,
                policy=policy_in_force(version.model),
                promotion_request=request,
                started_by=request.requested_by,
                reason=f"promotion request #{request.pk} completed",
            )
            audit_record(
                actor=None,
                action="deployment.created",
                obj=rollout,
                after={
                    "kind": kind,
                    "candidate": version.version,
                    "stable": rollout.stable.version if rollout.stable else None,
                    "policy": rollout.policy.version,
                    "request": request.pk,
                },
            )
            enqueue_on_commit("apps.deployments.tasks.advance_rollout", rollout.pk)
    except IntegrityError:
        # The same request started meanwhile (its one rollout), or another deployment of the same kind
        # is still active for the model: the sweep tries again once that one has finished.
        return Rollout.objects.filter(promotion_request=request.pk).first()
    return rollout


def rollouts_start_missing(*, now=None) -> int:
    """Sweep (each tick): completed promotions to Staging or Production that have no rollout yet
    (the signal was lost to a crash after the commit, or another rollout of the model was running)."""
    from apps.governance.models import PromotionRequest

    now = now or timezone.now()
    waiting = (
        PromotionRequest.objects.filter(
            status=PromotionRequest.Status.COMPLETED,
            to_stage__in=list(KIND_OF_STAGE),
            rollout__isnull=True,
            decided_at__gte=now - START_SWEEP_WINDOW,
            # Promotions completed before rollouts existed moved the version at once: nothing to do.
            version__stage=F("from_stage"),
        )
        .select_related("version", "version__model", "requested_by")
        .order_by("decided_at", "pk")[:50]
    )
    return sum(rollout_start(request=request) is not None for request in waiting)


POLICY_FIELDS = [
    "steps",
    "analysis_interval_s",
    "min_samples",
    "required_successes",
    "failure_limit",
    "inconclusive_limit",
    "consecutive_error_limit",
    "error_rate_max",
    "latency_p99_max_ms",
    "fallback_share_max",
    "score_shift_max",
    "score_shift_min_samples",
    "progress_deadline_s",
    "staging_latency_requests",
    "staging_auc_gate",
    "staging_holdout_size",
    "staging_parity_tolerance",
]


@transaction.atomic
def rollout_policy_publish(*, actor, model=None, note: str = "", **fields) -> RolloutPolicy:
    """A new version of a model's rollout policy (or of the default, `model` None); admins only.

    Fields not given keep the values of the version in force. Running rollouts keep their version.
    """
    if actor is not None and not getattr(actor, "is_superuser", False):
        raise PermissionDenied("Only an administrator may change a rollout policy.")
    unknown = set(fields) - set(POLICY_FIELDS)
    if unknown:
        raise DomainError(f"unknown rollout policy fields: {', '.join(sorted(unknown))}")
    current = policy_in_force(model)
    values = {name: getattr(current, name) for name in POLICY_FIELDS} | fields
    previous = RolloutPolicy.objects.filter(model=model).order_by("-version").first()
    policy = RolloutPolicy(
        model=model,
        version=(previous.version if previous else 0) + 1,
        note=note,
        created_by=actor if getattr(actor, "is_authenticated", False) else None,
        **values,
    )
    try:
        policy.full_clean(exclude=["model", "created_by"])
    except ValidationError as exc:
        raise DomainError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from exc
    policy.save()
    audit_record(
        actor=actor,
        action="deployment.policy_published",
        obj=policy,
        before={name: getattr(current, name) for name in POLICY_FIELDS} | {"version": current.version},
        after=values | {"version": policy.version, "model": model.name if model else None},
    )
    return policy
