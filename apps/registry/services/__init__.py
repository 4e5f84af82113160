"""Actions on the registry, one module per concern; everything is importable from here too.

datasets: dataset versions. teams: models and the team that owns each. sync: the MLflow mirror.
versions: registering a version from a run, stage moves. aliases: MLflow's governance aliases.
cards: model card revisions and their publication to MLflow.
"""

from hafnium_portal.errors import Conflict, DomainError

from .aliases import aliases_publish, aliases_publish_pending
from .cards import model_card_edit, model_cards_publish
from .datasets import dataset_register
from .sync import registry_sync, registry_sync_request, version_mirror
from .teams import TEAM_PERMISSIONS, TEAM_TAG, model_ensure, model_team_set
from .versions import version_register, version_stage_set

__all__ = [
    "TEAM_PERMISSIONS",
    "TEAM_TAG",
    "Conflict",
    "DomainError",
    "aliases_publish",
    "aliases_publish_pending",
    "dataset_register",
    "model_card_edit",
    "model_cards_publish",
    "model_ensure",
    "model_team_set",
    "registry_sync",
    "registry_sync_request",
    "version_mirror",
    "version_register",
    "version_stage_set",
]
