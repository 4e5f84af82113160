"""Monitoring policies: a model's drift thresholds and responses, versioned and audited.

A model without a policy gets version 1 with the design's defaults the first time it is monitored; a
change is a new version (admins, through the admin site), and each drift run records the version it
was judged under.
"""

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction

from apps.audit.services import audit_record
from apps.registry.models import RegisteredModel
from hafnium_portal.errors import DomainError

from ..models import MonitoringPolicy

# The settings a new version may change (the rest is bookkeeping).
POLICY_FIELDS = [
    "window_hours",
    "psi_watch",
    "psi_alert",
    "psi_severe",
    "severe_features",
    "persistence_k",
    "persistence_m",
    "auc_drop_retrain",
    "auc_drop_rollback",
    "min_labels",
    "min_label_positives",
    "prediction_shift_investigate",
    "auto_rollback",
    "auto_retrain",
]


def policy_settings(policy: MonitoringPolicy) -> dict:
    return {name: getattr(policy, name) for name in POLICY_FIELDS}


def policy_in_force(model: RegisteredModel) -> MonitoringPolicy:
    """The model's newest policy; version 1 with the defaults if it has none yet (race-safe)."""
    policy = model.monitoring_policies.order_by("-version").first()
    if policy is not None:
        return policy
    try:
        with transaction.atomic():
            policy = MonitoringPolicy.objects.create(model=model, version=1, note="defaults")
            audit_record(
                actor=None, action="monitoring.policy_published", obj=policy, after=policy_settings(policy)
            )
            return policy
    except IntegrityError:
        return model.monitoring_policies.order_by("-version").first()


def policy_validate(values: dict) -> None:
    """Thresholds in order (watch <= alert <= severe, retrain <= rollback), persistence k of m."""
    if not 0 < values["psi_watch"] <= values["psi_alert"] <= values["psi_severe"]:
        raise DomainError("PSI thresholds must satisfy 0 < watch <= alert <= severe.")
    if not 0 < values["auc_drop_retrain"] <= values["auc_drop_rollback"] < 1:
        raise DomainError("AUC drops must satisfy 0 < retrain <= rollback < 1.")
    if not 1 <= values["persistence_k"] <= values["persistence_m"]:
        raise DomainError("Persistence needs 1 <= k <= m.")
    if values["severe_features"] < 1 or values["window_hours"] <= 0:
        raise DomainError("At least one severe feature and a window longer than zero are needed.")
    if not 0 < values["prediction_shift_investigate"] < 10:
        raise DomainError("The prediction shift threshold is a relative change, e.g. 0.1 for 10%.")


@transaction.atomic
def policy_publish(*, actor, model: RegisteredModel, note: str = "", **values) -> MonitoringPolicy:
    """A new version of the model's policy (administrators only); earlier versions stay for the record."""
    if not actor.is_superuser:
        raise PermissionDenied("Only an administrator may change a monitoring policy.")
    previous = policy_in_force(model)
    settings = {**policy_settings(previous), **{k: v for k, v in values.items() if k in POLICY_FIELDS}}
    policy_validate(settings)
    RegisteredModel.objects.select_for_update().filter(pk=model.pk).first()  # one publisher at a time
    latest = model.monitoring_policies.order_by("-version").first()
    policy = MonitoringPolicy.objects.create(
        model=model, version=latest.version + 1, note=note, created_by=actor, **settings
    )
    audit_record(
        actor=actor,
        action="monitoring.policy_published",
        obj=policy,
        before={"version": latest.version, **policy_settings(latest)},
        after={"version": policy.version, **settings},
    )
    return policy
