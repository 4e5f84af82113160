"""Governance's cards on the home page (registered in GovernanceConfig.ready): the decisions waiting for
an approver, and a requester's open and lately decided promotion requests."""

from datetime import timedelta

from django.utils import timezone

from apps.accounts.home import card_register
from apps.accounts.navigation import APPROVERS
from apps.accounts.roles import Role, roles_of

from . import selectors
from .models import PromotionRequest

SHOWN = 5  # rows a card lists; the rest are a link away
DECIDED_RECENTLY = timedelta(days=7)
REQUESTERS = frozenset({Role.DATA_SCIENTIST, Role.DATA_SCIENTIST_LEAD})


def pending_decisions(user) -> dict | None:
    """An approver's inbox, oldest first (the same selector as the Approvals page): three queries."""
    if not APPROVERS.intersection(roles_of(user)):
        return None
    inbox = selectors.inbox_for(user)
    return {
        "decisions": selectors.with_missing_roles(selectors.with_active_approvals(inbox)[:SHOWN]),
        "decisions_count": inbox.count(),
    }


def my_open_requests(user) -> dict | None:
    """A requester's requests still open, and those decided in the last week (they may need a new one)."""
    if not REQUESTERS.intersection(roles_of(user)):
        return None
    mine = selectors.my_requests(user)
    open_requests = mine.filter(status__in=PromotionRequest.OPEN)
    decided = mine.exclude(status__in=PromotionRequest.OPEN).filter(
        decided_at__gte=timezone.now() - DECIDED_RECENTLY
    )
    return {
        "open_requests": selectors.with_missing_roles(selectors.with_active_approvals(open_requests)[:SHOWN]),
        "open_requests_count": open_requests.count(),
        "decided_requests": list(decided.order_by("-decided_at", "-id")[:SHOWN]),
    }


def register() -> None:
    card_register(template="governance/home/_pending_decisions.html", context=pending_decisions, order=10)
    card_register(template="governance/home/_my_requests.html", context=my_open_requests, order=20)
