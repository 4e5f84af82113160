"""Template context of every page: the open alerts count (navigation badge) and the paging banner."""

from .permissions import may_respond
from .selectors import alerts_summary


def alerts(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    summary = alerts_summary(user)
    return {
        "open_alerts_count": summary["open_count"],
        "paging_alerts": summary["paging"],
        "may_respond_to_alerts": may_respond(user),
    }
