"""Governance's panels on the registry's pages (registered in GovernanceConfig.ready): the promotion
button and the promotion requests of a version, the link to a model's stage history."""

from apps.registry.models import next_stage
from apps.registry.panels import panel_register

from . import selectors
from .permissions import can_request_promotion


def _promotion_target(user, version) -> dict | None:
    """The stage the signed-in user may request for `version` (the next rung), if any."""
    if user is None or not can_request_promotion(user, version.model):
        return None
    target = next_stage(version.stage)
    return {"promotion_target": target} if target else None


def _version_requests(user, version) -> dict:
    return {"promotion_requests": selectors.requests_of_version(user, version).select_related("requested_by")}


def register() -> None:
    panel_register(slot="version-actions", template="governance/panels/_request_promotion.html",
                   context=_promotion_target)  # fmt: skip
    panel_register(slot="version-sections", template="governance/panels/_version_requests.html",
                   context=_version_requests)  # fmt: skip
    panel_register(slot="model-actions", template="governance/panels/_model_history_link.html")
