"""`manage.py reconcile`: what the periodic reconciler does, once, now."""

from django.core.management.base import BaseCommand

from reviews.execution.reconciler import reconcile


class Command(BaseCommand):
    help = (
        "Expire overdue requests, re-queue approved transitions whose job was lost, classify "
        "registry changes as Quorum's or out-of-band, and extend the audit chain's verified "
        "checkpoint."
    )

    def handle(self, *args, **options):
        summary = reconcile()
        self.stdout.write(
            f"expired {summary['expired']}, re-queued {summary['requeued']}, "
            f"classified {summary['classified']} changes"
        )
