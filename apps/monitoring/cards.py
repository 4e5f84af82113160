"""Monitoring's cards on the home page (apps/accounts/home.py), registered when the app is ready."""

try:
    from apps.accounts.home import card_register
except ImportError:  # a checkout without the card registry: no card
    card_register = None


def latest_drift_verdicts(user) -> dict | None:
    """The latest drift verdict of each production model the user may see (None: nothing to show)."""
    from apps.registry.selectors import models_visible_to

    from .selectors import latest_verdicts

    rows = latest_verdicts(models_visible_to(user))
    return {"drift_verdicts": rows} if rows else None


if card_register is not None:
    card_register(template="monitoring/partials/_card_drift.html", context=latest_drift_verdicts, order=40)
