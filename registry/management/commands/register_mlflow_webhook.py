"""`manage.py register_mlflow_webhook URL`: have MLflow send registry events to Quorum.

MLflow has no CLI for webhooks, so this creates one through the client, signed with
MLFLOW_WEBHOOK_SECRET. Running it again is safe: a webhook with the same name and URL is reported,
not duplicated.
"""

from urllib.parse import urlparse

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from registry.mlflow_client import MlflowError, RegistryClient

# What the receiver turns into a model sync. MLflow has no stage-transition event: stage moves
# made in MLflow reach the mirror through the periodic sync.
MODEL_EVENTS = [
    "registered_model.created",
    "model_version.created",
    "model_version_tag.set",
    "model_version_tag.deleted",
    "model_version_alias.created",
    "model_version_alias.deleted",
]


class Command(BaseCommand):
    help = (
        "Create the MLflow webhook that sends model registry events to Quorum's receiver, "
        "e.g. https://quorum.example.com/webhooks/mlflow, signed with MLFLOW_WEBHOOK_SECRET."
    )

    def add_arguments(self, parser):
        parser.add_argument("url", help="the receiver's URL, ending in /webhooks/mlflow")
        parser.add_argument("--name", default="quorum", help="the webhook's name in MLflow")
        parser.add_argument(
            "--events",
            nargs="+",
            choices=MODEL_EVENTS,
            default=MODEL_EVENTS,
            metavar="EVENT",
            help=f"events to send (default: all of {', '.join(MODEL_EVENTS)})",
        )

    def handle(self, *args, url, name, events, **options):
        secret = settings.MLFLOW_WEBHOOK_SECRET
        if not secret:
            raise CommandError(
                "MLFLOW_WEBHOOK_SECRET is not set. Set it to a long random string in the "
                "environment of this command and of the Quorum web app (the receiver refuses "
                "unsigned deliveries), then run this again."
            )
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise CommandError(f"{url!r} is not an http(s) URL.")
        if not parsed.path.rstrip("/").endswith("/webhooks/mlflow"):
            self.stderr.write(
                self.style.WARNING(f"{url} does not end in /webhooks/mlflow, Quorum's receiver.")
            )

        client = RegistryClient()
        try:
            existing = client.list_webhooks()
            for webhook_id, webhook_name, webhook_url in existing:
                if webhook_name == name and webhook_url == url:
                    self.stdout.write(
                        f"MLflow already has webhook {name!r} ({webhook_id}) sending to {url}; "
                        "nothing changed. If the secret changed, delete it in MLflow and run "
                        "this again."
                    )
                    return
            webhook_id = client.create_webhook(name=name, url=url, events=events, secret=secret)
        except MlflowError as error:
            raise CommandError(
                f"MLflow at {client.tracking_uri} refused or could not be reached, "
                f"nothing was registered: {error}"
            ) from error

        for other_id, other_name, other_url in existing:
            if other_name == name:
                self.stderr.write(
                    self.style.WARNING(
                        f"Webhook {name!r} ({other_id}) still sends to {other_url}; delete it in "
                        "MLflow if that receiver is gone."
                    )
                )
        self.stdout.write(
            self.style.SUCCESS(
                f"Created webhook {name!r} ({webhook_id}) in MLflow at {client.tracking_uri}: "
                f"{', '.join(events)} -> {url}"
            )
        )
