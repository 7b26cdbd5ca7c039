"""`manage.py create_api_token USER [--name ci]`: issue an API token and print it, once."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from reviews.api.auth import token_create


class Command(BaseCommand):
    help = (
        "Create a bearer token for the REST API and the quorum CLI, acting as USER. The token is "
        "printed once and only its hash is stored: copy it into your CI secrets now."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="api", help="what the token is for, e.g. ci")

    def handle(self, *args, username, name, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user {username!r}")
        if not user.is_active:
            raise CommandError(f"user {username!r} is deactivated: its tokens would not work")
        name = name.strip()
        if not name or len(name) > 100:
            raise CommandError("--name must be 1 to 100 characters")
        token, plaintext = token_create(user=user, name=name, actor="manage.py")
        # The token alone on stdout, so `TOKEN=$(manage.py create_api_token ci)` works.
        self.stdout.write(plaintext)
        self.stderr.write(
            f"API token {token.prefix}… ({name!r}) for {username}: shown once, stored hashed."
        )
