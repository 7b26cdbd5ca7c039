"""`manage.py verify_audit`: recompute the audit hash chain; exit 1 naming where it breaks."""

from django.core.management.base import BaseCommand, CommandError

from reviews.audit import verify


class Command(BaseCommand):
    help = (
        "Recompute every audit event's hash from the first one. Exits 0 when the chain holds, "
        "1 naming the first sequence number that was edited, removed or inserted."
    )

    def handle(self, *args, **options):
        result = verify()
        if not result.ok:
            # CommandError exits with status 1 and prints the message on stderr.
            raise CommandError(str(result))
        self.stdout.write(str(result))
