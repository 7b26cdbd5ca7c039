"""`manage.py export_policies > policies.yaml`: groups and policies in the loadable format."""

from django.core.management.base import BaseCommand

from reviews.policies.loading import policies_export


class Command(BaseCommand):
    help = "Write approver groups and approval policies as YAML that load_policies reads back."

    def handle(self, *args, **options):
        self.stdout.write(policies_export(), ending="")
