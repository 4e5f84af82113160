import io

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from apps.accounts.services import DEMO_TEAM, demo_users_ensure
from apps.deployments.selectors import policy_in_force
from apps.deployments.services import rollout_policy_publish
from apps.training.services import DEMO_ROWS, demo_model_ensure


class Command(BaseCommand):
    help = (
        "Create the demo data of the embedded default: one user per role, and the fraud-scorer model "
        "with versions in each stage. Idempotent: existing users keep their passwords."
    )

    def add_arguments(self, parser):
        parser.add_argument("--rows", type=int, default=DEMO_ROWS, help="rows of each demo training set")

    def handle(self, *args, rows, **options):
        from hafnium_portal.celery import app

        # `make run` seeds before the worker and the embedded Redis start: run queued work inline.
        app.conf.task_always_eager = True
        credentials = settings.VAR_DIR / "demo-credentials.txt"
        created = demo_users_ensure(credentials_file=credentials)
        if created:
            self.stdout.write(self.style.SUCCESS("Demo users created (username password):"))
            for username, password in created.items():
                self.stdout.write(f"  {username:<16} {password}")
        else:
            self.stdout.write("Demo users already exist; they keep their passwords.")
        self.stdout.write(f"Demo credentials are kept in {credentials}.")
        versions = demo_model_ensure(team_slug=DEMO_TEAM["slug"], rows=rows, log=self.stdout.write)
        self.stdout.write(
            f"Demo model: {', '.join(f'v{v.version} {v.get_stage_display()}' for v in versions)}"
        )
        # The Java backend's stand-in: a scoring client whose token the demo traffic and curl use.
        token_file = settings.VAR_DIR / "scoring-token.txt"
        out = io.StringIO()
        call_command("create_scoring_client", "java-backend", stdout=out)
        token_file.write_text(out.getvalue().strip() + "\n")
        token_file.chmod(0o600)
        self.stdout.write(f"Scoring client java-backend: its token is in {token_file}.")
        # The demo traffic (Procfile `traffic`, 10 requests a second) gives a 5 % canary about 30 answers a
        # minute. Measured in `make run` on 2026-12-03: with a 20 s interval the score shift (30 answers a
        # side) stayed inconclusive and the canary paused; so one measurement a minute. Published once; the
        # admin may change it.
        model = versions[0].model
        if policy_in_force(model).model_id is None:
            rollout_policy_publish(
                actor=None,
                model=model,
                note="demo: sized for the simulator's 10 requests per second",
                analysis_interval_s=60.0,
                min_samples=10,
                score_shift_min_samples=25,
            )
            self.stdout.write("Demo rollout policy: a measurement a minute on at least 10 canary answers.")
