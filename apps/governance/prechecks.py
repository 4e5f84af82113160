"""Pre-checks other apps contribute to a promotion (deployments: "Staging tests" before Production).

Governance sits below deployments and cannot import it: deployments registers its check here in its
AppConfig.ready, and `selectors.prechecks_for` runs every check registered for the target stage.
"""

from collections.abc import Callable

# target stage -> checks; a check takes the version and returns {"name", "hard", "passed", "detail"}.
_CHECKS: dict[str, list[Callable]] = {}


def precheck_register(*, stage: str, check: Callable) -> None:
    checks = _CHECKS.setdefault(str(stage), [])
    if check not in checks:
        checks.append(check)


def prechecks_registered(stage: str) -> list[Callable]:
    return list(_CHECKS.get(str(stage), ()))
