from django.conf import settings
from django.core.management.base import BaseCommand

from apps.accounts.services import demo_users_ensure


class Command(BaseCommand):
    help = "Create the demo data of the embedded default (idempotent: existing users keep their passwords)."

    def handle(self, *args, **options):
        credentials = settings.VAR_DIR / "demo-credentials.txt"
        created = demo_users_ensure(credentials_file=credentials)
        if created:
            self.stdout.write(self.style.SUCCESS("Demo users created (username password):"))
            for username, password in created.items():
                self.stdout.write(f"  {username:<16} {password}")
        else:
            self.stdout.write("Demo users already exist; they keep their passwords.")
        self.stdout.write(f"Demo credentials are kept in {credentials}.")
