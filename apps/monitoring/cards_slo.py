"""The "SLO budgets" card of the home page, for those who watch production (managers and ML engineers), and
the link to a model's SLO dashboard on its registry page.

Per production model the user may see: the error and latency budgets left over 30 days and whether a
burn-rate alert fires, as the last evaluation tick recorded them (two queries, no log read).
"""

from apps.accounts.home import card_register
from apps.accounts.roles import Role, roles_of
from apps.registry.panels import panel_register
from apps.registry.selectors import models_visible_to

from .selectors_slo import slo_statuses

WATCHERS = frozenset({Role.MANAGER, Role.ML_ENGINEER})


def slo_budgets(user) -> dict | None:
    if not WATCHERS.intersection(roles_of(user)):
        return None
    return {"slo_rows": slo_statuses(models_visible_to(user))}


card_register(template="monitoring/partials/_card_slo.html", context=slo_budgets, order=50)


# On every model's page (no query: a model never in Production gets the dashboard's empty state).
panel_register(slot="model-actions", template="monitoring/panels/_slo_link.html")
