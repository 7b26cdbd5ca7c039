"""`manage.py export_audit [--since WHEN] > audit.csv`: the audit chain as CSV, oldest first.

Rows are streamed in batches, so exporting a long history costs the memory of one batch. The hash
columns are exported too, so the CSV can be checked against the chain later. Cells a spreadsheet
would run as formulas start with a `'` (`reviews.audit.export.csv_cell`).
"""

import csv
from datetime import UTC, datetime, time

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_date, parse_datetime

from reviews.audit.export import csv_rows
from reviews.models import AuditEvent

BATCH = 2000


def parse_since(text: str) -> datetime:
    """A date (midnight UTC) or an ISO datetime; a datetime without a zone is taken as UTC."""
    try:
        moment = parse_datetime(text)
        if moment is None and (day := parse_date(text)) is not None:
            moment = datetime.combine(day, time.min)
    except ValueError:
        # Well formed but impossible, e.g. 2024-02-30.
        moment = None
    if moment is None:
        raise CommandError(
            f"--since {text!r} is not a date (YYYY-MM-DD) or an ISO datetime "
            "(YYYY-MM-DDTHH:MM[:SS][+HH:MM])"
        )
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = "Write audit events as CSV to standard output, oldest first."

    def add_arguments(self, parser):
        parser.add_argument(
            "--since",
            help="only events at or after this date (YYYY-MM-DD, UTC) or ISO datetime",
        )

    def handle(self, *args, since=None, **options):
        events = AuditEvent.objects.order_by("sequence")
        if since:
            events = events.filter(created_at__gte=parse_since(since))
        csv.writer(self.stdout).writerows(csv_rows(events.iterator(chunk_size=BATCH)))
