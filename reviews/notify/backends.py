"""The demo's mail transport: one `.eml` file per mail (`EMAIL_URL=file://...`)."""

from __future__ import annotations

import uuid
from pathlib import Path

from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend
from django.utils import timezone


class EmlFileBackend(BaseEmailBackend):
    """Writes each mail to its own `.eml` file under EMAIL_FILE_PATH (`EMAIL_URL=file://...`).

    The demo's mailbox: any mail client opens the files. Django's own file backend appends mails
    sent in the same second to one `.log` file.
    """

    def send_messages(self, email_messages) -> int:
        folder = Path(settings.EMAIL_FILE_PATH)
        folder.mkdir(parents=True, exist_ok=True)
        for message in email_messages:
            name = f"{timezone.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:8]}.eml"
            partial = folder / f".{name}.part"
            partial.write_bytes(message.message().as_bytes())
            partial.rename(folder / name)  # a reader never sees half a mail
        return len(email_messages)
