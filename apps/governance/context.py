"""Template context: the approvals inbox count shown in the navigation."""

from apps.accounts.navigation import APPROVERS
from apps.accounts.roles import roles_of

from .selectors import inbox_for


def inbox(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not APPROVERS.intersection(roles_of(user)):
        return {}
    return {"inbox_count": inbox_for(user).count()}
