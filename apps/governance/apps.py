from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _ensure_default_policy(sender, **kwargs):
    from django.contrib.auth.models import Group, Permission

    from apps.accounts.roles import Role

    from .selectors import policy_current

    policy_current()
    # Those who answer for decisions read the audit trail.
    view_audit = Permission.objects.get(content_type__app_label="audit", codename="view_auditevent")
    for role in (Role.COMPLIANCE, Role.MODEL_RISK, Role.MANAGER):
        Group.objects.get_or_create(name=role.value)[0].permissions.add(view_audit)


def _evidence_changed(sender, model, **kwargs):
    from .services import evidence_refresh_for_model

    evidence_refresh_for_model(model=model)


class GovernanceConfig(AppConfig):
    name = "apps.governance"
    label = "governance"
    verbose_name = "Governance"

    def ready(self):
        from apps.registry.signals import evidence_changed

        from . import home, panels

        post_migrate.connect(_ensure_default_policy, sender=self)
        evidence_changed.connect(_evidence_changed)
        panels.register()  # governance's panels on the registry's model and version pages
        home.register()  # and its cards on the home page
