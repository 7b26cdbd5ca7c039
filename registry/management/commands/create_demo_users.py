"""`manage.py create_demo_users`: the demo's reviewers, requester and admin, in their groups.

Idempotent: a second run adds what is missing and leaves existing users' passwords alone, unless
--reset, so a password changed in the demo survives restarting it.
"""

from django.core.management.base import BaseCommand
from django.db import transaction

# Importable without Django set up (the auth models are imported in `handle`): `quorum.demo`
# prints these logins.
DEMO_PASSWORD = "quorum-demo"  # noqa: S105 - a demo's published password, not a secret

# username -> (groups, role shown to the person trying the demo)
DEMO_USERS: dict[str, tuple[tuple[str, ...], str]] = {
    "admin": ((), "administrator: policies, groups, retries"),
    "alice": (("ml-leads",), "ML lead"),
    "bob": (("data-science",), "data scientist"),
    "carol": (("data-science",), "data scientist"),
    "dave": (("data-science",), "data scientist"),
    # A second ML lead: a break-glass move by alice can be ratified by someone else.
    "frank": (("ml-leads",), "ML lead"),
    "erin": ((), "requester, in no approver group"),
}
DEMO_GROUPS = ("ml-leads", "data-science")


class Command(BaseCommand):
    help = "Create the demo users and the ml-leads and data-science groups (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--password", default=DEMO_PASSWORD, help="(default: %(default)s)")
        parser.add_argument(
            "--reset", action="store_true", help="set the password of users that already exist"
        )

    @transaction.atomic
    def handle(self, *args, password=DEMO_PASSWORD, reset=False, **options):
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group

        User = get_user_model()
        groups = {name: Group.objects.get_or_create(name=name)[0] for name in DEMO_GROUPS}
        created, reset_count = [], 0
        for username, (group_names, _role) in DEMO_USERS.items():
            user, is_new = User.objects.get_or_create(
                username=username,
                defaults={"email": f"{username}@quorum.example", "first_name": username.title()},
            )
            if username == "admin" and not (user.is_superuser and user.is_staff):
                user.is_superuser = user.is_staff = True
                user.save(update_fields=["is_superuser", "is_staff"])
            if is_new or reset:
                user.set_password(password)
                user.save(update_fields=["password"])
                reset_count += not is_new
            if is_new:
                created.append(username)
            user.groups.add(*(groups[name] for name in group_names))
        self.stdout.write(
            f"demo users: {len(created)} created"
            + (f" ({', '.join(created)})" if created else "")
            + (f", {reset_count} passwords reset" if reset else "")
            + f"; groups {', '.join(DEMO_GROUPS)}"
        )
