"""Template tags for registry pages that show governance: what a version can be promoted to, its requests."""

from django import template

from apps.governance.permissions import can_request_promotion
from apps.registry.models import next_stage

register = template.Library()


@register.simple_tag(takes_context=True)
def promotion_target(context, version):
    """The stage the signed-in user may request for `version` (the next rung), or None."""
    user = context.get("user")
    if user is None or not can_request_promotion(user, version.model):
        return None
    return next_stage(version.stage)


@register.simple_tag
def promotion_requests_of(version):
    """The promotion requests of a version the page's reader already sees, newest first."""
    return version.promotion_requests.select_related("requested_by").order_by("-created_at", "-id")
