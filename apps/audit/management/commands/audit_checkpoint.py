from django.core.management.base import BaseCommand, CommandError

from apps.audit import checkpoints
from apps.audit.services import audit_checkpoint
from hafnium_portal.errors import DomainError


class Command(BaseCommand):
    help = "Sign the audit chain's head (event id and hash) and append it to the checkpoint sinks."

    def handle(self, *args, **options):
        try:
            checkpoint = audit_checkpoint()
        except (DomainError, checkpoints.CheckpointError) as exc:
            raise CommandError(f"no checkpoint written: {exc}") from exc
        except OSError as exc:
            raise CommandError(f"a checkpoint sink could not be written: {exc}") from exc
        if checkpoint is None:
            self.stdout.write("the audit trail is empty: nothing to checkpoint")
            return
        sinks = ", ".join(str(sink) for sink in checkpoints.sinks())
        self.stdout.write(
            self.style.SUCCESS(
                f"audit checkpoint: event #{checkpoint['event_id']} hash {checkpoint['hash'][:16]}… "
                f"signed at {checkpoint['written_at']} ({sinks})"
            )
        )
