"""`manage.py seed_registry`: fill MLflow with registered models to review (registry.seeding)."""

import logging
import warnings

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from registry.mlflow_client import MlflowError, RegistryClient
from registry.seeding import model_names, registry_has_models, seed_registry


class Command(BaseCommand):
    help = (
        "Register scikit-learn models trained on scikit-learn's bundled datasets in MLflow "
        "(or synthetic ones with --synthetic), with stages, a champion alias, tags and "
        "descriptions. Refuses a registry that already has models unless --force."
    )

    def add_arguments(self, parser):
        parser.add_argument("--models", type=int, default=4, help="registered models (4)")
        parser.add_argument("--versions", type=int, default=5, help="versions per model (5)")
        parser.add_argument(
            "--synthetic",
            action="store_true",
            help="invent metrics instead of training: fast, for large test registries",
        )
        parser.add_argument(
            "--artifacts", action="store_true", help="store each trained model in its run"
        )
        parser.add_argument("--prefix", default="", help="put this before every model name")
        parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
        existing = parser.add_mutually_exclusive_group()
        existing.add_argument(
            "--force", action="store_true", help="seed even if the registry has models"
        )
        existing.add_argument(
            "--if-empty",
            action="store_true",
            help="seed only an empty registry; otherwise say so and succeed",
        )

    def handle(self, *args, **options):
        if options["models"] < 1 or options["versions"] < 1:
            raise CommandError("--models and --versions must be at least 1")
        if options["artifacts"] and options["synthetic"]:
            raise CommandError("--artifacts needs trained models: drop --synthetic")
        client = RegistryClient()
        try:
            has_models = registry_has_models(client)
        except MlflowError as error:
            raise CommandError(
                f"cannot read the registry at {client.tracking_uri}: {error}"
            ) from error
        if has_models and options["if_empty"]:
            self.stdout.write(f"MLflow at {client.tracking_uri} already has models: not seeding")
            return
        if has_models and not options["force"]:
            raise CommandError(
                f"MLflow at {client.tracking_uri} already has registered models; "
                "run again with --force to add more (and --prefix if the names are taken)"
            )
        train = not options["synthetic"]
        names = model_names(options["models"], options["prefix"])
        self.stdout.write(
            f"seeding {len(names)} models x {options['versions']} versions into "
            f"{settings.MLFLOW_TRACKING_URI} "
            f"({'training scikit-learn models' if train else 'synthetic metrics'})"
        )
        self._quiet_mlflow()
        try:
            summary = seed_registry(
                client,
                models=options["models"],
                versions=options["versions"],
                train=train,
                artifacts=options["artifacts"],
                prefix=options["prefix"],
                seed=options["seed"],
                progress=lambda name, versions: self.stdout.write(f"  {name}: {versions} versions"),
            )
        except MlflowError as error:
            raise CommandError(f"seeding stopped: {error}") from error
        self.stdout.write(self.style.SUCCESS(str(summary)))

    @staticmethod
    def _quiet_mlflow() -> None:
        # What MLflow says while logging a model concerns the model's consumer, not this command.
        logging.getLogger("mlflow.sklearn").setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", module=r"mlflow\..*")
        warnings.filterwarnings("ignore", category=FutureWarning)
