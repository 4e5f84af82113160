from django.core.management.base import BaseCommand, CommandError

from apps.registry import gateway


class Command(BaseCommand):
    help = "Create the MLflow store (local) and the portal's experiment if they do not exist yet."

    def handle(self, *args, **options):
        try:
            experiment_id = gateway.ensure_store()
        except gateway.RegistryUnavailable as exc:
            raise CommandError(f"cannot reach or initialise the MLflow store: {exc}") from exc
        self.stdout.write(self.style.SUCCESS(f"MLflow store ready (experiment {experiment_id})."))
