from django.core.management.base import BaseCommand, CommandError

from apps.registry.services import registry_sync


class Command(BaseCommand):
    help = "Mirror the MLflow registry into the portal and check the governance aliases."

    def handle(self, *args, **options):
        sync = registry_sync()
        if sync.status == sync.Status.FAILED:
            raise CommandError(f"sync failed: {sync.error}")
        self.stdout.write(
            self.style.SUCCESS(
                f"{sync.models_seen} models seen, {sync.versions_created} versions added, "
                f"{sync.alias_drifts} alias changes made outside the portal"
            )
        )
