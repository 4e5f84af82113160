from django.core.management.base import BaseCommand, CommandError

from apps.registry import gateway
from hafnium_portal.health import check_mlflow


class Command(BaseCommand):
    help = "Create the MLflow store and the default experiment if they do not exist yet."

    def handle(self, *args, **options):
        try:
            check_mlflow()  # quick, without importing mlflow
        except Exception:
            try:
                experiment_id = gateway.ensure_store()
            except Exception as exc:
                raise CommandError(f"cannot initialise the MLflow store: {exc}") from exc
            self.stdout.write(self.style.SUCCESS(f"MLflow store created (experiment {experiment_id})."))
        else:
            self.stdout.write("MLflow store is ready.")
