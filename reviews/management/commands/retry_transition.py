"""`manage.py retry_transition ID --as USER`: re-run a failed MLflow transition."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from reviews.decisions import deciding
from reviews.errors import QuorumError


class Command(BaseCommand):
    help = "Queue the MLflow transition of an approved request whose execution failed, again."

    def add_arguments(self, parser):
        parser.add_argument("request_id", type=int)
        parser.add_argument(
            "--as",
            dest="username",
            help="the admin on whose behalf (recorded in the audit trail); "
            "default: the first active superuser",
        )

    def handle(self, *args, request_id, username=None, **options):
        users = get_user_model().objects.filter(is_active=True, is_staff=True)
        user = (
            users.filter(username=username).first()
            if username
            else users.filter(is_superuser=True).order_by("pk").first()
        )
        if user is None:
            raise CommandError(
                f"no active staff user {username!r}" if username else "no active superuser"
            )
        try:
            request = deciding.transition_retry(request_id=request_id, user=user)
        except QuorumError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(
            f"request #{request.pk} queued again ({request.version} → {request.target})"
        )
