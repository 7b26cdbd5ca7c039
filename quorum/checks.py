"""Deploy checks: `manage.py check --deploy` (run by the release step) fails on what would make a
deployment insecure or broken, and warns about what would make it wrong.

They are tagged `deploy`, so the demo and the tests, which run with development defaults, never
see them.
"""

from pathlib import Path

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.db import DatabaseError

from . import forwarded


@register(Tags.security, deploy=True)
def check_secret_key_set(app_configs, **kwargs):
    if settings.SECRET_KEY != settings.DEVELOPMENT_SECRET_KEY:
        return []
    return [
        Error(
            "SECRET_KEY is not set: the development key is in use, and anyone who knows it can "
            "forge sessions and password-reset links.",
            hint="Set SECRET_KEY to 50 or more random characters, e.g. the output of python -c "
            '"import secrets; print(secrets.token_urlsafe(50))", the same on every host.',
            id="quorum.E001",
        )
    ]


@register(Tags.staticfiles, deploy=True)
def check_static_files_collected(app_configs, **kwargs):
    if settings.WHITENOISE_USE_FINDERS:
        return []
    manifest = Path(settings.STATIC_ROOT) / "staticfiles.json"
    if manifest.exists():
        return []
    return [
        Error(
            f"WHITENOISE_USE_FINDERS is off but {manifest} does not exist: every page would fail "
            "on its first static file.",
            hint="Run `manage.py collectstatic --noinput` with the production environment on "
            "each host (or in the image build), or set STATIC_ROOT to where it wrote the files.",
            id="quorum.E002",
        )
    ]


@register(deploy=True)
def check_base_url(app_configs, **kwargs):
    base = settings.QUORUM_BASE_URL
    if base == settings.DEVELOPMENT_BASE_URL:
        return [
            Warning(
                "QUORUM_BASE_URL is the development default: links in emails point at 127.0.0.1.",
                hint="Set QUORUM_BASE_URL to the address users open, e.g. "
                "https://quorum.example.com.",
                id="quorum.W001",
            )
        ]
    if settings.QUORUM_HTTPS and base.startswith("http://"):
        return [
            Warning(
                "QUORUM_HTTPS is on but QUORUM_BASE_URL starts with http://: every link in an "
                "email goes through a redirect first.",
                hint="Use the https:// address in QUORUM_BASE_URL.",
                id="quorum.W002",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def check_proxy_count(app_configs, **kwargs):
    # A TLS proxy header says a proxy is in front; without QUORUM_PROXY_COUNT every request seems
    # to come from the proxy.
    if not getattr(settings, "SECURE_PROXY_SSL_HEADER", None) or settings.QUORUM_PROXY_COUNT:
        return []
    return [
        Warning(
            "SECURE_PROXY_SSL_HEADER says a proxy is in front of Quorum, but QUORUM_PROXY_COUNT is "
            f"0: {forwarded.CONSEQUENCE}.",
            hint=forwarded.HINT,
            id="quorum.W003",
        )
    ]


@register(Tags.security, deploy=True)
def check_forwarded_for_seen(app_configs, **kwargs):
    # The web processes note requests that came with X-Forwarded-For while the count is 0
    # (quorum/forwarded.py); this process reads their note from the database they share.
    if settings.QUORUM_PROXY_COUNT:
        return []
    try:
        sighting = forwarded.recent_sighting()
    except DatabaseError:
        return []  # no database, or not migrated yet: nothing was noted
    if sighting is None:
        return []
    return [
        Warning(
            f"Requests arrive with X-Forwarded-For (the last noted at "
            f"{sighting.last_seen_at:%Y-%m-%d %H:%M} UTC: {sighting.forwarded_for!r} from "
            f"{sighting.remote_addr}), so a proxy is in front of Quorum, but QUORUM_PROXY_COUNT "
            f"is 0: {forwarded.CONSEQUENCE}.",
            hint=forwarded.HINT,
            id="quorum.W004",
        )
    ]


@register(Tags.security, deploy=True)
def check_signing_key(app_configs, **kwargs):
    # Without a configured key each host generates its own under var/: proofs signed by one
    # worker would not verify with the key another host's web app publishes.
    from reviews.execution.proof_keys import SigningKeyError, signer

    hint = (
        "Make one key (openssl genpkey -algorithm ed25519 -out signing-key.pem), keep it secret, "
        "and set QUORUM_SIGNING_KEY to its path or its PEM text on every web and worker host."
    )
    if not settings.QUORUM_SIGNING_KEY.strip():
        return [
            Error(
                "QUORUM_SIGNING_KEY is not set: every host would sign approval proofs with a key "
                "of its own, generated under var/, and `quorum verify` would refuse them.",
                hint=hint,
                id="quorum.E003",
            )
        ]
    try:
        signer()
    except SigningKeyError as error:
        return [Error(str(error), hint=hint, id="quorum.E004")]
    return []
