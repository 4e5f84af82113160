from django.core.management.base import BaseCommand, CommandError

from apps.serving.services import scoring_client_create, scoring_client_rotate
from hafnium_portal.errors import DomainError


class Command(BaseCommand):
    help = (
        "Create a scoring client (a service account that may only call the scoring API) and print its "
        "API token. Idempotent: an existing client's token is printed again (--rotate makes a new one)."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help="e.g. java-backend")
        parser.add_argument(
            "--rotate", action="store_true", help="replace the token (the old one stops working)"
        )
        parser.add_argument(
            "--staging",
            action="store_true",
            help="a client of the staging environment (?environment=staging) instead of production",
        )

    def handle(self, *args, name, rotate, staging, **options):
        try:
            _, key = scoring_client_create(actor=None, name=name, staging=staging)
            if rotate:
                key = scoring_client_rotate(actor=None, name=name)
        except DomainError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(key)
