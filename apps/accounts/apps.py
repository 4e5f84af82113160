from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _ensure_roles(sender, **kwargs):
    # After every migrate, and after a test flush: the roles are part of the schema, not data.
    from django.contrib.auth.models import Group

    from .roles import Role

    for role in Role:
        Group.objects.get_or_create(name=role.value)


class AccountsConfig(AppConfig):
    name = "apps.accounts"
    label = "accounts"
    verbose_name = "Accounts, roles and teams"

    def ready(self):
        post_migrate.connect(_ensure_roles, sender=self)
