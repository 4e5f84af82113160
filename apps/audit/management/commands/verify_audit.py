import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apps.audit import chain, checkpoints
from apps.audit.models import AuditEvent
from apps.audit.services import audit_verify
from hafnium_portal.csv_safe import csv_read


class Command(BaseCommand):
    help = (
        "Check the whole hash chain of the audit trail and name the first broken event, then compare its "
        "head with the latest signed checkpoint (a cut tail or a rewrite past it is reported). "
        "With --export FILE, check an exported CSV or JSON file instead."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--checkpoint",
            metavar="JSON",
            help="compare with this checkpoint (a line of checkpoints.jsonl, e.g. the webhook "
            "receiver's copy) instead of the latest in AUDIT_CHECKPOINT_DIR",
        )
        parser.add_argument("--export", metavar="FILE", help="verify an export (.csv or .json) of the trail")

    def handle(self, *args, checkpoint=None, export=None, **options):
        if export:
            return self._export(Path(export))
        given = None
        if checkpoint:
            try:
                given = checkpoints.parse(checkpoint)
            except checkpoints.CheckpointError as exc:
                raise CommandError(f"audit checkpoint refused: {exc}") from exc
        result = audit_verify(checkpoint=given)
        if result.broken is not None:
            event = AuditEvent.objects.get(pk=result.broken)
            raise CommandError(
                f"audit chain broken at event #{result.broken} ({event}); "
                f"{result.checked - 1} events before it are intact"
            )
        if result.problem:
            raise CommandError(result.problem)
        against = (
            f"; head matches the checkpoint of event #{result.checkpoint['event_id']} "
            f"written at {result.checkpoint['written_at']}"
            if result.checkpoint
            else "; no checkpoint written yet (run `manage.py audit_checkpoint`)"
        )
        self.stdout.write(
            self.style.SUCCESS(f"audit chain intact: {result.checked} events verified{against}")
        )

    def _export(self, path: Path):
        """The export's rows as a chain from its first row's link (an unfiltered export: from genesis)."""
        try:
            with path.open(newline="", encoding="utf-8") as stream:
                if path.suffix.lower() == ".csv":
                    rows = [chain.event_from_export(cells) for cells in csv_read(stream)]
                else:
                    rows = json.load(stream)
        except (OSError, ValueError, KeyError) as exc:
            raise CommandError(f"cannot read the export {path}: {exc}") from exc
        if not rows:
            raise CommandError(f"the export {path} holds no events")
        start = rows[0]["prev_hash"]
        broken, checked = chain.first_break(rows, start=start)
        if broken is not None:
            raise CommandError(
                f"export broken at event #{broken}: it, or its link to the row before it, differs from what "
                f"was hashed; {checked - 1} rows before it are intact"
            )
        origin = (
            "genesis" if start == chain.GENESIS else f"the event before #{rows[0]['id']} (hash {start[:16]}…)"
        )
        self.stdout.write(
            self.style.SUCCESS(f"export intact: {checked} events verified as a chain from {origin}")
        )
