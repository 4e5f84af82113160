import logging

from django.apps import AppConfig

log = logging.getLogger(__name__)


def _promotion_completed(sender, request, **kwargs):
    """Governance's seam: a completed promotion to Staging or Production starts its rollout.

    A failure here is logged, not raised: the controller's tick starts the rollouts it finds missing.
    """
    from .services import rollout_start

    try:
        rollout_start(request=request)
    except Exception:
        log.exception(
            "the rollout of promotion request #%s did not start; the next tick starts it", request.pk
        )


def _staging_tests_check(version) -> dict:
    """The Production pre-check "Staging tests": the result of the version's staging deployment."""
    from .selectors import staging_verdict

    verdict = staging_verdict(version)
    return {
        "name": "Staging tests",
        "hard": True,
        # Not recorded, or still running, is not a pass: a Production request needs them passed.
        "passed": verdict.passed is True,
        "detail": verdict.detail,
    }


class DeploymentsConfig(AppConfig):
    name = "apps.deployments"
    label = "deployments"
    verbose_name = "Deployments"

    def ready(self):
        from apps.governance.prechecks import precheck_register
        from apps.governance.signals import promotion_completed
        from apps.registry.models import Stage

        promotion_completed.connect(_promotion_completed, dispatch_uid="deployments-promotion-completed")
        precheck_register(stage=Stage.PRODUCTION, check=_staging_tests_check)

        from . import panels

        panels.register()
