from django.core.management.base import BaseCommand, CommandError

from apps.audit.models import AuditEvent
from apps.audit.services import audit_verify


class Command(BaseCommand):
    help = "Check the whole hash chain of the audit trail and name the first broken event."

    def handle(self, *args, **options):
        broken, checked = audit_verify()
        if broken is not None:
            event = AuditEvent.objects.get(pk=broken)
            raise CommandError(
                f"audit chain broken at event #{broken} ({event}); {checked - 1} events before it are intact"
            )
        self.stdout.write(self.style.SUCCESS(f"audit chain intact: {checked} events verified"))
