"""python manage.py compile_scorer --model fraud-scorer --version 1 [--force]"""

import json

from django.core.management.base import BaseCommand, CommandError

from apps.registry import gateway
from apps.registry.models import ModelVersion
from apps.serving.compile import scorer_compile


class Command(BaseCommand):
    help = (
        "Compile a registered version's fast scorer, check parity on its holdout, log it to its MLflow run."
    )

    def create_parser(self, prog_name, subcommand, **kwargs):
        # `--version` is the version number here, not Django's --version (which prints Django's).
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("--model", required=True, help="registered model name")
        parser.add_argument("--version", required=True, type=int, help="version number")
        parser.add_argument("--force", action="store_true", help="compile again even if the run has one")

    def handle(self, *args, model, version, force, **options):
        if "\x00" in model:
            raise CommandError("the model name contains a NUL byte")
        found = (
            ModelVersion.objects.select_related("model", "dataset")
            .filter(model__name=model, version=version)
            .first()
        )
        if found is None:
            raise CommandError(f"no version {version} of model {model!r} in the portal (sync the registry?)")
        try:
            result = scorer_compile(version=found, force=force)
        except gateway.RegistryUnavailable as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(json.dumps({"model": model, "version": version, **result}))
