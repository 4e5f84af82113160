from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _grant_cross_team_reading(sender, **kwargs):
    """Approver roles and managers read every model (a global permission); data scientists their team's."""
    from django.contrib.auth.models import Group, Permission

    from apps.accounts.selectors import CROSS_TEAM_ROLES

    view = Permission.objects.get(content_type__app_label="registry", codename="view_registeredmodel")
    for role in CROSS_TEAM_ROLES:
        Group.objects.get_or_create(name=role.value)[0].permissions.add(view)


class RegistryConfig(AppConfig):
    name = "apps.registry"
    label = "registry"
    verbose_name = "Model registry"

    def ready(self):
        # After the auth app's handler has created this app's permissions.
        post_migrate.connect(_grant_cross_team_reading, sender=self)
