"""`manage.py demo_setup`: what `python -m quorum.demo` prepares before it starts the services.

Migrate, seed MLflow if its registry is empty, mirror the registry, create the demo users and
load the demo's policies if none exist: the same commands, in this order, in one process, so the
demo starts Django (and loads MLflow) once for all of them instead of once a step.
"""

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Prepares the demo: migrate, seed MLflow if empty, sync, demo users, demo policies."

    def add_arguments(self, parser):
        parser.add_argument("--models", type=int, default=4, help="models to seed if empty (4)")
        parser.add_argument("--versions", type=int, default=5, help="versions per model (5)")
        parser.add_argument("--policies", required=True, help="policy file loaded if none exist")

    def handle(self, *args, models, versions, policies, **options):
        steps = [
            ("migrate", ["migrate", "--no-input"]),
            (
                "seed",
                [
                    "seed_registry",
                    "--if-empty",
                    "--artifacts",
                    f"--models={models}",
                    f"--versions={versions}",
                ],
            ),
            ("sync", ["sync_registry", "--full", "--no-progress"]),
            ("users", ["create_demo_users"]),
            ("policies", ["load_policies", "--if-empty", policies]),
        ]
        for name, command in steps:
            self.stdout.write(f"{name}: manage.py {' '.join(command)}")
            try:
                call_command(*command, stdout=self.stdout, stderr=self.stderr)
            except CommandError as error:
                raise CommandError(f"{name} (manage.py {' '.join(command)}): {error}") from error
