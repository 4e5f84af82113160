"""The navigation bar: each page the portal has, and who sees it. Apps add their pages here."""

from dataclasses import dataclass

from django.urls import reverse

from .roles import Role, may_sync, roles_of


@dataclass(frozen=True)
class NavItem:
    label: str
    url_name: str
    roles: frozenset[Role] | None = None  # None: every signed-in user
    staff_only: bool = False
    badge: str = ""  # name of a template context variable holding a count to show beside the label

    def visible_to(self, user, roles: list[Role]) -> bool:
        if self.staff_only:
            return user.is_staff
        return self.roles is None or user.is_superuser or bool(self.roles.intersection(roles))


APPROVERS = frozenset({Role.DATA_SCIENTIST_LEAD, Role.ML_ENGINEER, Role.MODEL_RISK, Role.COMPLIANCE})

NAVIGATION = [
    NavItem("Home", "home"),
    NavItem("Models", "registry:model-list"),
    NavItem("Approvals", "governance:inbox", roles=APPROVERS, badge="inbox_count"),
    NavItem(
        "My requests",
        "governance:my-requests",
        roles=frozenset({Role.DATA_SCIENTIST, Role.DATA_SCIENTIST_LEAD}),
    ),
    NavItem("Alerts", "alerts:list", badge="open_alerts_count"),
    NavItem("Drift", "monitoring:drift_reports"),
    NavItem("Audit", "audit:event-list", roles=frozenset({Role.COMPLIANCE, Role.MODEL_RISK, Role.MANAGER})),
    NavItem("Teams", "accounts:teams"),
    NavItem("API", "api-docs"),
    NavItem("Admin", "admin:index", staff_only=True),
]


def items_for(user) -> list[dict]:
    roles = roles_of(user)
    return [
        {"label": item.label, "url": reverse(item.url_name), "url_name": item.url_name, "badge": item.badge}
        for item in NAVIGATION
        if item.visible_to(user, roles)
    ]


def navigation(request) -> dict:
    """Template context processor: the signed-in user's navigation and roles, and whether they may sync
    the registry (pages show "Sync now" to them only; the view asks `may_sync` itself)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav_items": [], "user_roles": [], "may_sync": False}
    return {"nav_items": items_for(user), "user_roles": roles_of(user), "may_sync": may_sync(user)}
