"""A sign-in through the provider: which Quorum user it is, and the groups it brings.

Applied at each sign-in, inside one transaction: the person's memberships of the groups the
provider manages become exactly what their group claim maps to (a person removed from a group at
the provider loses eligibility at their next sign-in), the staff flag follows the staff groups
when those are configured, and every change is appended to the audit chain with the provider as
actor. Votes already cast keep the groups they were counted for (`Vote.groups`).

A first sign-in's username is the provider's, normalised (NFKC, case-folded: "Alice" is "alice").
It is refused, with a `user.refused` audit event, when it is an existing account's name (that
account is someone else's until an administrator links them), when it looks like one ("аlice"
with a Cyrillic "а" beside "alice", compared by `registry.names.skeleton`), or when it hides
characters or mixes look-alike scripts itself (it would pass for a name that arrives later).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from registry import names

from . import events, mapping
from .models import ProviderIdentity

ACTOR = "identity-provider"


class SignInRefused(Exception):
    """The provider vouched for someone Quorum will not sign in; the message says why."""


class UsernameRefused(SignInRefused):
    """A first sign-in whose username would be taken for an existing account's, or could pass
    for one. `details` go into the `user.refused` audit event."""

    def __init__(self, message: str, **details: str):
        super().__init__(message)
        self.details = details


def provider_groups(claims: dict) -> list[str]:
    """The group claim as a list of names (a provider may send one name as a string)."""
    value = claims.get(settings.QUORUM_OIDC_GROUPS_CLAIM, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return []
    return sorted({str(item) for item in value})


def _username(claims: dict) -> str:
    for name in (settings.QUORUM_OIDC_USERNAME_CLAIM, "preferred_username", "email", "sub"):
        value = claims.get(name)
        if isinstance(value, str) and value.strip():
            return names.normalized(value.strip())[:150]
    raise SignInRefused("The provider sent no username, email or subject for you.")


def _username_check(username: str) -> None:
    """Raises `UsernameRefused` when `username` is, or looks like, an existing account's name,
    or could pass for another name itself."""
    User = get_user_model()
    wanted = names.skeleton(username)
    # Every name is compared (a first sign-in is rare): a look-alike can differ anywhere.
    for existing in User.objects.values_list("username", flat=True).iterator():
        if names.normalized(existing) == username:
            # Taking over an existing account because the provider uses its name would let
            # whoever controls that name at the provider become that user.
            raise UsernameRefused(
                f"A Quorum account named {names.as_text(existing)!r} already exists and is not "
                "linked to your sign-in at the provider. Ask an administrator to rename or "
                "remove it.",
                reason="taken",
                existing=existing,
            )
        if names.skeleton(existing) == wanted:
            raise UsernameRefused(
                f"Your username at the provider, {names.as_text(username)!r}, looks like the "
                f"existing Quorum account {names.as_text(existing)!r}, and two people must not "
                "pass for each other. Ask an administrator.",
                reason="looks alike",
                existing=existing,
            )
    found = names.check(username)
    if found.suspicious:
        raise UsernameRefused(
            f"Your username at the provider, {names.as_text(username)!r}, could pass for "
            f"someone else's: {found.explanation('person')} Ask an administrator.",
            reason="suspicious",
        )


def sign_in_apply(*, issuer: str, claims: dict):
    """The Quorum user for these verified claims, created on a first sign-in, with the groups
    and staff flag the provider gives them. Raises `SignInRefused` with a reason to show; a
    refused username is audited (`user.refused`) although nothing else is written."""
    try:
        return _sign_in(issuer=issuer, claims=claims)
    except UsernameRefused as refusal:
        events.record(
            "user.refused",
            actor=ACTOR,
            details={
                "issuer": issuer,
                "subject": str(claims.get("sub")),
                "user": _username(claims),
                **refusal.details,
            },
        )
        raise


@transaction.atomic
def _sign_in(*, issuer: str, claims: dict):
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise SignInRefused("The provider sent no subject (sub) for you.")
    User = get_user_model()
    link = (
        ProviderIdentity.objects.select_for_update()
        .select_related("user")
        .filter(issuer=issuer, subject=subject)
        .first()
    )
    if link is None:
        username = _username(claims)
        _username_check(username)
        user = User.objects.create_user(username, email=claims.get("email") or "")
        user.set_unusable_password()
        user.save(update_fields=["password"])
        link = ProviderIdentity.objects.create(user=user, issuer=issuer, subject=subject)
        events.record(
            "user.create",
            actor=ACTOR,
            details={"user": username, "issuer": issuer, "subject": subject},
        )
    user = link.user
    if not user.is_active:
        raise SignInRefused("Your Quorum account is deactivated; ask an administrator.")
    groups = provider_groups(claims)
    _apply_groups(user, groups, issuer)
    _apply_staff(user, groups, issuer)
    email = claims.get("email")
    if isinstance(email, str) and email and email != user.email:
        user.email = email
        user.save(update_fields=["email"])
    link.last_groups = groups
    link.last_sign_in_at = timezone.now()
    link.save(update_fields=["last_groups", "last_sign_in_at"])
    return user


def _apply_groups(user, provider_group_names: list[str], issuer: str) -> None:
    managed = mapping.managed_group_names()
    wanted = mapping.quorum_groups_for(provider_group_names) & managed
    current = set(user.groups.filter(name__in=managed).values_list("name", flat=True))
    username = user.get_username()
    for name in sorted(wanted - current):
        group, created = Group.objects.get_or_create(name=name)
        if created:
            events.record("group.create", actor=ACTOR, details={"group": name, "issuer": issuer})
        user.groups.add(group)
        events.record(
            "group.members",
            actor=ACTOR,
            details={"group": name, "added": [username], "removed": [], "issuer": issuer},
        )
    for name in sorted(current - wanted):
        user.groups.remove(Group.objects.get(name=name))
        events.record(
            "group.members",
            actor=ACTOR,
            details={"group": name, "added": [], "removed": [username], "issuer": issuer},
        )


def _apply_staff(user, provider_group_names: list[str], issuer: str) -> None:
    staff = mapping.staff_for(provider_group_names)
    if staff is None or staff == user.is_staff:
        return
    user.is_staff = staff
    user.save(update_fields=["is_staff"])
    events.record(
        "user.staff",
        actor=ACTOR,
        details={"user": user.get_username(), "staff": staff, "issuer": issuer},
    )


def managed_groups_ensure() -> None:
    """Creates the provider-managed groups that do not exist yet, so policies can name them
    before anyone from them has signed in."""
    for name in sorted(mapping.managed_group_names()):
        _, created = Group.objects.get_or_create(name=name)
        if created:
            events.record("group.create", actor=ACTOR, details={"group": name})
