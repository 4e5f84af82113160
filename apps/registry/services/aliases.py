"""MLflow's governance aliases (candidate, staging, production): the portal alone sets them."""

from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.audit.services import audit_record
from hafnium_portal.enqueue import enqueue

from .. import gateway, selectors
from ..models import ALIAS_OF_STAGE, RegisteredModel

# A publication enqueued longer ago than this has given up (its retries are bounded): enqueue another.
PUBLISH_GIVES_UP_AFTER = timedelta(minutes=15)


def aliases_publish(*, model: RegisteredModel) -> dict[str, int]:
    """Make MLflow's governance aliases match the portal's stages. Safe to run any number of times."""
    expected = selectors.expected_aliases(model)
    found = gateway.aliases(model.name)
    for alias in ALIAS_OF_STAGE.values():
        if alias in expected and found.get(alias) != expected[alias]:
            gateway.set_alias(model.name, alias, expected[alias])
        elif alias not in expected and alias in found:
            gateway.delete_alias(model.name, alias)
    with transaction.atomic():
        RegisteredModel.objects.filter(pk=model.pk).update(aliases_pending=False, aliases_enqueued_at=None)
        model.alias_drifts.filter(resolved_at__isnull=True).update(resolved_at=timezone.now())
        governed = {alias: version for alias, version in found.items() if alias in ALIAS_OF_STAGE.values()}
        if governed != expected:
            audit_record(
                actor=None, action="registry.aliases_published", obj=model, before=governed, after=expected
            )
    return expected


def aliases_publish_pending() -> list[int]:
    """The sweep: enqueue one publication per model whose aliases wait, unless one is already on its way.

    The "enqueued at" marker is claimed with a compare-and-set, so an MLflow outage does not pile up a
    copy per sweep: a model is enqueued again only once the previous task has had time to give up.
    Returns the ids of the models enqueued.
    """
    now = timezone.now()
    stale = Q(aliases_enqueued_at__isnull=True) | Q(aliases_enqueued_at__lt=now - PUBLISH_GIVES_UP_AFTER)
    enqueued = []
    for model_id, marker in RegisteredModel.objects.filter(stale, aliases_pending=True).values_list(
        "pk", "aliases_enqueued_at"
    ):
        claimed = RegisteredModel.objects.filter(pk=model_id, aliases_enqueued_at=marker).update(
            aliases_enqueued_at=now
        )
        if claimed and enqueue(
            "apps.registry.tasks.publish_aliases",
            model_id,
            task_id=f"publish-aliases-{model_id}-{int(now.timestamp())}",
        ):
            enqueued.append(model_id)
    return enqueued
