"""Serving's actions: scoring clients, serving policies, fallback rules, labels, logs, breaker events."""

import json
import logging
import math
from datetime import UTC, date, datetime, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token

from apps.accounts.roles import Role, roles_of
from apps.alerts.services import alert_raise, alert_resolve
from apps.audit.services import audit_record
from apps.registry.models import RegisteredModel
from hafnium_portal.errors import Conflict, DomainError

from . import config, partitions
from .models import (
    SCORING_CLIENT_GROUP,
    BreakerTransition,
    Decision,
    FallbackRule,
    Feedback,
    PredictionLog,
    ServingPolicy,
)

log = logging.getLogger(__name__)

# --- scoring clients -----------------------------------------------------------------------------


# The group of the staging environment's clients; it holds `serving.score_staging` only.
STAGING_SCORING_CLIENT_GROUP = "Staging scoring client"
# The client a worker scores the staging environment with (a rollout's staging tests).
STAGING_TESTS_CLIENT = "staging-tests"


def _client_group(name: str, codename: str) -> Group:
    group, _ = Group.objects.get_or_create(name=name)
    group.permissions.set([Permission.objects.get(content_type__app_label="serving", codename=codename)])
    return group


def scoring_group() -> Group:
    """The "Scoring client" group, holding the `serving.score` permission and nothing else."""
    return _client_group(SCORING_CLIENT_GROUP, "score")


def staging_scoring_group() -> Group:
    """The "Staging scoring client" group, holding the `serving.score_staging` permission and nothing else."""
    return _client_group(STAGING_SCORING_CLIENT_GROUP, "score_staging")


@transaction.atomic
def scoring_client_create(*, actor, name: str, staging: bool = False) -> tuple[object, str]:
    """A service account allowed to score (and nothing else), with its API token; idempotent by name.

    `staging`: a client of the staging environment (`?environment=staging`) instead of production.
    Returns (user, token key). An existing client keeps its token.
    """
    if not name or len(name) > 150 or "\x00" in name or not name.replace("-", "").replace("_", "").isalnum():
        raise DomainError("A scoring client's name is letters, digits, '-' and '_' (at most 150).")
    User = get_user_model()
    user = User.objects.filter(username=name).first()
    if user is not None and (user.is_staff or user.is_superuser or user.has_usable_password()):
        raise Conflict(f"{name} is a person's account, not a scoring client.")
    created = user is None
    if created:
        user = User.objects.create_user(username=name, email="")  # no password: it cannot sign in
    group = staging_scoring_group() if staging else scoring_group()
    joined = not user.groups.filter(pk=group.pk).exists()
    user.groups.add(group)
    token, _ = Token.objects.get_or_create(user=user)
    if created or joined:
        audit_record(
            actor=actor,
            action="serving.client_created",
            obj=user,
            after={"name": name, "environment": "staging" if staging else "production"},
        )
    config.bump()
    return user, token.key


def staging_client_token() -> str:
    """The token of the `staging-tests` client (created the first time), for workers scoring staging."""
    return scoring_client_create(actor=None, name=STAGING_TESTS_CLIENT, staging=True)[1]


@transaction.atomic
def scoring_client_rotate(*, actor, name: str) -> str:
    """A new token for the client; the old one stops working at once (in every process)."""
    groups = [SCORING_CLIENT_GROUP, STAGING_SCORING_CLIENT_GROUP]
    user = get_user_model().objects.filter(username=name, groups__name__in=groups).distinct().first()
    if user is None:
        raise DomainError(f"No scoring client named {name}.")
    Token.objects.filter(user=user).delete()
    token = Token.objects.create(user=user)
    audit_record(actor=actor, action="serving.client_token_rotated", obj=user)
    config.bump()
    return token.key


# --- serving policy (thresholds, breaker) --------------------------------------------------------


def can_edit_serving(actor) -> bool:
    return actor is not None and (actor.is_superuser or Role.ML_ENGINEER in roles_of(actor))


def policy_current(model: RegisteredModel) -> ServingPolicy:
    """The policy in force (an unsaved default one if the model has none yet)."""
    return ServingPolicy.objects.filter(model=model).first() or ServingPolicy(
        model=model, version=0, **config.DEFAULT_POLICY
    )


def policy_validate(
    *, review_at: float, decline_at: float, breaker_failures: int, breaker_reset_after: float,
    latency_budget_ms: float,
) -> None:  # fmt: skip
    if not 0.0 <= review_at <= decline_at <= 1.0:
        raise DomainError("Thresholds must satisfy 0 <= review_at <= decline_at <= 1.")
    if not 1 <= breaker_failures <= 1000:
        raise DomainError("breaker_failures must be between 1 and 1000.")
    if not 1.0 <= breaker_reset_after <= 3600.0:
        raise DomainError("breaker_reset_after must be between 1 and 3600 seconds.")
    if not 1.0 <= latency_budget_ms <= 60_000.0:
        raise DomainError("latency_budget_ms must be between 1 and 60000.")


@transaction.atomic
def policy_publish(
    *,
    actor,
    model: RegisteredModel,
    review_at: float,
    decline_at: float,
    breaker_failures: int = 5,
    breaker_reset_after: float = 30.0,
    latency_budget_ms: float = 100.0,
    note: str = "",
) -> ServingPolicy:
    """A new version of the model's serving policy (ML Engineers and admins). Earlier versions stay."""
    if not can_edit_serving(actor):
        raise PermissionDenied("Only an ML Engineer may change a model's serving policy.")
    values = {
        "review_at": float(review_at),
        "decline_at": float(decline_at),
        "breaker_failures": int(breaker_failures),
        "breaker_reset_after": float(breaker_reset_after),
        "latency_budget_ms": float(latency_budget_ms),
    }
    policy_validate(**values)
    RegisteredModel.objects.select_for_update().get(pk=model.pk)  # one new version at a time
    previous = policy_current(model)
    policy = ServingPolicy.objects.create(
        model=model, version=previous.version + 1, note=note, created_by=actor, **values
    )
    audit_record(
        actor=actor,
        action="serving.policy_published",
        obj=policy,
        before={"version": previous.version, **{key: getattr(previous, key) for key in values}},
        after={"version": policy.version, **values, "note": note},
    )
    config.bump()
    return policy


# --- fallback rules ------------------------------------------------------------------------------

RULE_FIELDS = ["order", "feature", "operator", "threshold", "score", "decision"]


@transaction.atomic
def rule_save(*, actor, rule: FallbackRule) -> FallbackRule:
    """Create or change a rule of the rules-only scorer (audited with its before and after)."""
    if not can_edit_serving(actor):
        raise PermissionDenied("Only an ML Engineer may change the fallback rules.")
    rule.full_clean()
    if rule.decision not in Decision.values:
        raise DomainError(f"Unknown decision {rule.decision!r}.")
    before = None
    if rule.pk:
        old = FallbackRule.objects.select_for_update().get(pk=rule.pk)
        before = {key: getattr(old, key) for key in RULE_FIELDS}
    rule.save()
    audit_record(
        actor=actor,
        action="serving.rule_changed" if before else "serving.rule_added",
        obj=rule,
        object_repr=f"{rule.model}: rule {rule.pk}",
        before=before,
        after={key: getattr(rule, key) for key in RULE_FIELDS},
    )
    config.bump()
    return rule


@transaction.atomic
def rule_delete(*, actor, rule: FallbackRule) -> None:
    if not can_edit_serving(actor):
        raise PermissionDenied("Only an ML Engineer may change the fallback rules.")
    before = {key: getattr(rule, key) for key in RULE_FIELDS}
    audit_record(
        actor=actor,
        action="serving.rule_deleted",
        obj=rule,
        object_repr=f"{rule.model}: rule {rule.pk}",
        before=before,
    )
    rule.delete()
    config.bump()


# --- feedback ------------------------------------------------------------------------------------


def feedback_record(
    *, client_id: int, model_id: int, transaction_id: str, label: bool
) -> tuple[Feedback, bool]:
    """The label of a transaction; the same label again is a no-op, a different one a Conflict."""
    existing = Feedback.objects.filter(model_id=model_id, transaction_id=transaction_id).first()
    if existing is None:
        try:
            with transaction.atomic():
                return Feedback.objects.create(
                    model_id=model_id, transaction_id=transaction_id, label=label, client_id=client_id
                ), True
        except IntegrityError:  # the same label arrived twice at once
            existing = Feedback.objects.get(model_id=model_id, transaction_id=transaction_id)
    if existing.label != label:
        raise Conflict(
            f"Transaction {transaction_id} is already labelled {'fraud' if existing.label else 'genuine'}."
        )
    return existing, False


# --- prediction logs (from the stream) -----------------------------------------------------------


def _at(millis: str) -> datetime:
    return datetime.fromtimestamp(int(millis) / 1000, tz=UTC)


def _field(fields: dict, name: str) -> str:
    value = fields.get(name, fields.get(name.encode(), b""))
    return value.decode() if isinstance(value, bytes) else str(value)


def _embedding(text: str) -> list[float] | None:
    """An entry's embedding: a JSON list of finite numbers, or nothing (older entries have no field)."""
    if not text:
        return None
    values = json.loads(text)
    if not isinstance(values, list) or not all(
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        for value in values
    ):
        raise ValueError("embedding is not a list of finite numbers")
    return [float(value) for value in values] or None


def logs_write(entries: list[dict]) -> int:
    """Insert a batch of log entries (multi-row INSERT ... ON CONFLICT DO NOTHING: a replayed entry has the
    same request_id and created_at, so it is not written twice).

    On PostgreSQL, a batch holding a day without a partition creates it and is inserted again
    (`partitions` says why on demand rather than a default partition).
    """
    rows = []
    for fields in entries:
        try:
            rows.append(
                PredictionLog(
                    request_id=_field(fields, "request_id"),
                    transaction_id=_field(fields, "transaction_id"),
                    entity_id=_field(fields, "entity_id"),
                    model_id=int(_field(fields, "model_id")),
                    version=int(_field(fields, "version")),
                    numeric_features=json.loads(_field(fields, "numeric")),
                    categorical_features=json.loads(_field(fields, "categorical")),
                    score=float(_field(fields, "score")),
                    decision=_field(fields, "decision"),
                    fallback=_field(fields, "fallback") == "1",
                    latency_ms=float(_field(fields, "latency_ms")),
                    status=_field(fields, "status"),
                    created_at=_at(_field(fields, "created_at")),
                    environment=_field(fields, "environment") or "production",
                    embedding=_embedding(_field(fields, "embedding")),
                )
            )
        except (ValueError, TypeError) as exc:  # a malformed entry is skipped, not retried forever
            log.error("dropping a malformed prediction log entry %r: %s", fields, exc)
    if not rows:
        return 0
    try:
        with transaction.atomic():
            PredictionLog.objects.bulk_create(rows, batch_size=1000, ignore_conflicts=True)
    except IntegrityError as exc:
        if not (partitions.partitioned() and partitions.is_missing_partition(exc)):
            raise
        created = partitions.partitions_ensure({row.created_at.astimezone(UTC).date() for row in rows})
        log.warning("created prediction log partitions on demand for %s", ", ".join(map(str, created)))
        with transaction.atomic():
            PredictionLog.objects.bulk_create(rows, batch_size=1000, ignore_conflicts=True)
    return len(rows)


def logs_maintain(*, days_ahead: int, retention_days: int, today: date | None = None) -> dict:
    """Keep the prediction log's days: on PostgreSQL create the partitions of today and the next
    `days_ahead` days and drop those of the days wholly older than `retention_days` (a dropped
    partition, not a DELETE); on SQLite delete the rows older than the retention.

    Safe to run twice or at once (the DDL takes an advisory lock and skips what is done).
    Returns what it did: {"created": [days], "dropped": [days]} or {"deleted": rows}.
    """
    today = today or timezone.now().astimezone(UTC).date()
    if not partitions.partitioned():
        deleted = 0
        if retention_days > 0:
            cutoff = timezone.now() - timedelta(days=retention_days)
            deleted, _ = PredictionLog.objects.filter(created_at__lt=cutoff).delete()
        return {"deleted": deleted}
    created = partitions.partitions_ensure(today + timedelta(days=ahead) for ahead in range(days_ahead + 1))
    # A day's partition goes once all of it is older than the retention: rows live retention_days to
    # retention_days + 1 days.
    dropped = (
        partitions.partitions_drop_before(today - timedelta(days=retention_days))
        if retention_days > 0
        else []
    )
    if created or dropped:
        log.info("prediction log partitions: created %s, dropped %s", created, dropped)
    return {"created": created, "dropped": dropped}


# --- breaker events and their alerts --------------------------------------------------------------


@transaction.atomic
def breaker_event_record(*, event_id: str, fields: dict) -> BreakerTransition | None:
    """One breaker transition seen by an inference process: a row, an audit event, an alert while open.

    Idempotent on the stream entry id (a replay after a crash records nothing twice).
    """
    model = RegisteredModel.objects.filter(name=_field(fields, "model")).first()
    if model is None or BreakerTransition.objects.filter(event_id=event_id).exists():
        return None
    to_state = _field(fields, "to_state")
    transition = BreakerTransition.objects.create(
        model=model,
        version=int(_field(fields, "version")),
        from_state=_field(fields, "from_state"),
        to_state=to_state,
        reason=_field(fields, "reason"),
        at=_at(_field(fields, "at")),
        event_id=event_id,
    )
    audit_record(
        actor=None,
        action=f"serving.breaker_{to_state}",
        obj=model,
        before={"state": transition.from_state, "version": transition.version},
        after={"state": to_state, "version": transition.version, "reason": transition.reason,
               "process": _field(fields, "host")},
    )  # fmt: skip
    _breaker_alert(transition)
    return transition


BREAKER_ALERT_SOURCE = "serving.breaker"


def _breaker_alert(transition: BreakerTransition) -> None:
    """Opening pages on-call (one alert per model version while open); closing resolves it."""
    key = f"{transition.model.name}:{transition.version}"
    if transition.to_state == "open":
        alert_raise(
            source=BREAKER_ALERT_SOURCE,
            key=key,
            severity="page",
            title=f"Circuit breaker open: {transition.model.name} v{transition.version}",
            detail=(
                f"The circuit breaker of {transition.model.name} v{transition.version} opened at "
                f"{transition.at:%Y-%m-%d %H:%M:%S} UTC: {transition.reason}\n"
                "The rules-only scorer answers its transactions until a probe succeeds."
            ),
            model=transition.model,
            link=reverse("registry:model-detail", args=[transition.model.name]),
        )
    elif transition.to_state == "closed":
        alert_resolve(source=BREAKER_ALERT_SOURCE, key=key, note="A probe succeeded: the breaker closed.")
