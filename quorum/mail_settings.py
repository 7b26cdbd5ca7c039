"""Django's mail settings from one EMAIL_URL, parsed by dj-email-url.

"submission://user:password@smtp.example.com" (SMTP with STARTTLS on port 587),
"smtp://user:password@host:465?ssl=True" (implicit TLS), "console://" (the default: the worker
prints each mail), "file:///var/mail" (one .eml file per mail, under var/mail of the project
directory; "file:////srv/mail" for an absolute path), "memory://" (locmem).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import dj_email_url
from django.core.exceptions import ImproperlyConfigured

FILE_BACKEND = "django.core.mail.backends.filebased.EmailBackend"


@dataclass(frozen=True)
class MailSettings:
    backend: str
    host: str
    port: int
    user: str
    password: str
    use_tls: bool
    use_ssl: bool
    timeout: int
    file_path: str
    default_from_email: str
    server_email: str


def mail_settings(email_url: str, *, project_dir: Path, var_dir: Path) -> MailSettings:
    """The settings `email_url` means; an unknown scheme stops startup, naming the known ones."""
    parsed = dj_email_url.parse(email_url)
    if "EMAIL_BACKEND" not in parsed:
        raise ImproperlyConfigured(
            f"EMAIL_URL scheme {email_url.partition(':')[0]!r} is not one of "
            + ", ".join(sorted(dj_email_url.SCHEMES))
        )
    backend = parsed["EMAIL_BACKEND"]
    default_from = parsed.get(
        "DEFAULT_FROM_EMAIL", os.environ.get("DEFAULT_FROM_EMAIL", "Quorum <quorum@localhost>")
    )
    return MailSettings(
        # One .eml file per mail rather than Django's .log files of several.
        backend="reviews.notify.EmlFileBackend" if backend == FILE_BACKEND else backend,
        host=parsed["EMAIL_HOST"] or "localhost",
        port=parsed["EMAIL_PORT"] or 25,
        user=parsed["EMAIL_HOST_USER"] or "",
        password=parsed["EMAIL_HOST_PASSWORD"] or "",
        use_tls=parsed["EMAIL_USE_TLS"],
        use_ssl=parsed["EMAIL_USE_SSL"],
        # An SMTP server that stops answering must not hold a worker forever.
        timeout=parsed["EMAIL_TIMEOUT"] or int(os.environ.get("EMAIL_TIMEOUT", "30")),
        file_path=str(project_dir / (parsed["EMAIL_FILE_PATH"] or var_dir / "mail")),
        default_from_email=default_from,
        server_email=parsed.get("SERVER_EMAIL", default_from),
    )
