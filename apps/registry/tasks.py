"""Celery entry points of the registry: load ids, call a service; retries live here.

Every task retries on an unreachable MLflow with exponential backoff, a bounded number of times; each
MLflow call inside is bounded too (gateway). What is still undone after the last retry is picked up
by the periodic sync (`aliases_publish_pending`), never by retrying forever.
"""

from celery import shared_task
from django.conf import settings

from . import gateway, services
from .models import RegisteredModel

RETRY = {
    "autoretry_for": (gateway.RegistryUnavailable,),
    "retry_backoff": settings.REGISTRY_RETRY_BACKOFF,
    "retry_backoff_max": settings.REGISTRY_RETRY_BACKOFF_MAX,
    "retry_jitter": True,
    "max_retries": settings.REGISTRY_MAX_RETRIES,
}


@shared_task(**RETRY)
def sync_registry(actor_id: int | None = None) -> int:
    """Mirror MLflow into the portal (every minute from beat, and on "Sync now")."""
    from django.contrib.auth import get_user_model

    actor = get_user_model().objects.filter(pk=actor_id).first() if actor_id else None
    sync = services.registry_sync(actor=actor)
    if sync.status == sync.Status.FAILED:
        raise gateway.RegistryUnavailable(sync.error)
    services.aliases_publish_pending()
    return sync.pk


@shared_task(**RETRY)
def publish_aliases(model_id: int) -> None:
    """Set the MLflow aliases the portal's stages call for (the sync sweep enqueues it again later)."""
    model = RegisteredModel.objects.filter(pk=model_id).first()
    if model is not None:
        services.aliases_publish(model=model)


@shared_task(**RETRY)
def publish_model_cards(model_id: int) -> None:
    model = RegisteredModel.objects.filter(pk=model_id).first()
    if model is not None:
        services.model_cards_publish(model=model)
