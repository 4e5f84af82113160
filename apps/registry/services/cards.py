"""Model cards: revisions of the owners' narrative, and the card published to each live version's run."""

from django.db import transaction

from apps.audit.services import audit_record
from hafnium_portal.enqueue import enqueue_on_commit
from hafnium_portal.errors import DomainError

from .. import gateway
from ..models import ModelCardRevision, RegisteredModel, Stage
from ..signals import evidence_changed


@transaction.atomic
def model_card_edit(*, actor, model: RegisteredModel, **narrative) -> ModelCardRevision:
    """Save a new revision of the card's narrative (earlier revisions are kept)."""
    unknown = set(narrative) - set(ModelCardRevision.NARRATIVE_FIELDS)
    if unknown:
        raise DomainError(f"unknown model card fields: {', '.join(sorted(unknown))}")
    previous = model.card_revisions.first()
    revision = ModelCardRevision.objects.create(
        model=model, author=actor, **{field: narrative.get(field, "").strip() for field in narrative}
    )
    audit_record(
        actor=actor,
        action="registry.model_card_edited",
        obj=model,
        before={f: getattr(previous, f) for f in narrative} if previous else None,
        after={f: getattr(revision, f) for f in narrative},
    )
    enqueue_on_commit("apps.registry.tasks.publish_model_cards", model.pk)
    evidence_changed.send(sender=RegisteredModel, model=model)
    return revision


def model_cards_publish(*, model: RegisteredModel) -> int:
    """Log the current card of each live version to its MLflow run as `model_card.md`."""
    from ..cards import model_card

    published = 0
    for version in model.versions.exclude(stage__in=[Stage.ARCHIVED, Stage.REJECTED]).exclude(run_id=""):
        gateway.log_text(version.run_id, "model_card.md", model_card(version).markdown)
        published += 1
    return published
