"""`manage.py verify_audit`: recompute the audit hash chain; exit 1 naming where it breaks."""

from django.core.management.base import BaseCommand, CommandError

from reviews.audit.verification import verify


class Command(BaseCommand):
    help = (
        "Recompute every audit event's hash from the first one. Exits 0 when the chain holds, "
        "1 naming the first sequence number that was edited, removed or inserted. Records the "
        "outcome on the chain head (the verified checkpoint the audit page starts from, and any "
        "break, which the page then shows) unless --read-only is given."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--read-only",
            action="store_true",
            help="only report: leave the verified checkpoint as it is (e.g. on a replica)",
        )

    def handle(self, *args, **options):
        result = verify(checkpoint=not options["read_only"])
        if not result.ok:
            # CommandError exits with status 1 and prints the message on stderr.
            raise CommandError(str(result))
        self.stdout.write(str(result))
