"""Deployments on other apps' pages: the "Traffic" panel of a model page (the live split of production
traffic and the active rollout) and the home page's "your rollouts" card.

`register()` is called once from DeploymentsConfig.ready (registering again is a no-op).
"""

from apps.accounts.home import card_register
from apps.registry.panels import panel_register
from apps.registry.selectors import production_version

from . import permissions, selectors
from .machine import FULL_WEIGHT_BP

# How often a model page asks for its traffic split while a rollout moves it.
TRAFFIC_POLL_SECONDS = 5
CARD_ROWS = 5  # rows the home card lists; the rest are on the deployments page


def traffic_context(user, model) -> dict:
    """The routing table in force (version -> share) and the active rollout, for the model page.

    An empty table means the Production version answers everything (serving's rule), shown as such.
    Two or three queries, whatever the model's history (the model page's query budget counts them).
    """
    split = selectors.traffic_split(model)
    weights, rollout = split["weights"], split["rollout"]
    if not weights:
        production = production_version(model)
        weights = {production.version: FULL_WEIGHT_BP} if production is not None else {}
    canary = rollout.candidate.version if rollout is not None else None
    shares = sorted(weights.items(), key=lambda item: -item[1])
    return {
        "traffic": [
            {"version": number, "percent": weight / 100, "canary": number == canary}
            for number, weight in shares
        ],
        "traffic_rollout": rollout,
        "traffic_from_table": bool(split["weights"]),
        "traffic_polling": rollout is not None,
        "traffic_poll_seconds": TRAFFIC_POLL_SECONDS,
        # While a canary runs, aborting it is the way back (the rollback refuses); the panel links it instead.
        "may_roll_back": bool(weights) and rollout is None and permissions.may_roll_back(user),
    }


def your_rollouts(user) -> dict | None:
    """The home card: active rollouts of the models the user sees, then the latest finished ones, and the
    emergency rollbacks waiting for the user's review; None (no card) when there is none of either."""
    rollouts = selectors.rollouts_of_user_models(user, limit=CARD_ROWS)
    reviews = list(selectors.rollback_reviews_for(user)[:CARD_ROWS])
    if not rollouts and not reviews:
        return None
    return {"card_rollouts": rollouts, "card_reviews": reviews}


def register() -> None:
    panel_register(slot="model-actions", template="deployments/panels/_traffic.html", context=traffic_context)
    card_register(template="deployments/home/_your_rollouts.html", context=your_rollouts, order=30)
