from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError
from django.http import Http404

from apps.accounts.models import Team
from apps.registry.services import dataset_register
from apps.training import services
from hafnium_portal.errors import DomainError, ServiceUnavailable


class Command(BaseCommand):
    help = "Train a model on a dataset (a Parquet file, or freshly generated synthetic data) and register it."

    def add_arguments(self, parser):
        parser.add_argument("--model", required=True, help="registered model name, e.g. fraud-scorer")
        parser.add_argument(
            "--dataset", type=Path, help="a Parquet file of transactions (default: synthetic)"
        )
        parser.add_argument("--rows", type=int, default=50_000, help="rows of synthetic data (default 50000)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--shift", type=float, default=0.0, help="synthetic drift severity, 0 to 1")
        parser.add_argument("--min-auc", type=float, default=0.75, help="quality gate on holdout ROC AUC")
        parser.add_argument("--team", help="slug of the team that owns the model")
        parser.add_argument("--user", help="username recorded as the creator")

    def handle(self, *args, model, dataset, rows, seed, shift, min_auc, team, user, **options):
        actor = get_user_model().objects.filter(username=user).first() if user else None
        if user and actor is None:
            raise CommandError(f"no user named {user!r}")
        owner_team = Team.objects.filter(slug=team).first() if team else None
        if team and owner_team is None:
            raise CommandError(f"no team with slug {team!r}")
        if rows < 100:
            raise CommandError("--rows must be at least 100")
        try:
            if dataset is not None:
                if not dataset.is_file():
                    raise CommandError(f"dataset file {dataset} does not exist")
                version = dataset_register(actor=actor, name=dataset.stem, source=dataset)
            else:
                version = services.synthetic_dataset_create(actor=actor, rows=rows, seed=seed, shift=shift)
            self.stdout.write(f"Dataset {version} ({version.row_count} rows)")
            outcome = services.model_train(
                actor=actor, model_name=model, dataset=version, team=owner_team, min_auc=min_auc, seed=seed
            )
        except (DomainError, ServiceUnavailable, ValueError, PermissionDenied, Http404) as exc:
            raise CommandError(str(exc)) from exc
        if outcome.version is None:
            raise CommandError(
                f"quality gate failed: {outcome.run.reason} (MLflow run {outcome.run.mlflow_run_id})"
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Registered {outcome.version} ({outcome.run.reason}; run {outcome.run.mlflow_run_id})"
            )
        )
