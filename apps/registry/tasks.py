"""Celery entry points of the registry: load ids, call a service; retries live here."""

from celery import shared_task

from . import gateway, services
from .models import RegisteredModel

RETRY = {
    "autoretry_for": (gateway.RegistryUnavailable,),
    "retry_backoff": 5,
    "retry_backoff_max": 300,
    "retry_jitter": True,
}


@shared_task(max_retries=5, **RETRY)
def sync_registry(actor_id: int | None = None) -> int:
    """Mirror MLflow into the portal (every minute from beat, and on "Sync now")."""
    from django.contrib.auth import get_user_model

    actor = get_user_model().objects.filter(pk=actor_id).first() if actor_id else None
    sync = services.registry_sync(actor=actor)
    if sync.status == sync.Status.FAILED:
        raise gateway.RegistryUnavailable(sync.error)
    for model_id in RegisteredModel.objects.filter(aliases_pending=True).values_list("pk", flat=True):
        publish_aliases.delay(model_id)
    return sync.pk


@shared_task(max_retries=None, **RETRY)
def publish_aliases(model_id: int) -> None:
    """Set the MLflow aliases the portal's stages call for; retried until MLflow takes them."""
    model = RegisteredModel.objects.filter(pk=model_id).first()
    if model is not None:
        services.aliases_publish(model=model)


@shared_task(max_retries=10, **RETRY)
def publish_model_cards(model_id: int) -> None:
    model = RegisteredModel.objects.filter(pk=model_id).first()
    if model is not None:
        services.model_cards_publish(model=model)
