"""What the project package keeps in the database: the note of a proxy nobody declared
(quorum/forwarded.py)."""

from django.db import models


class ForwardedForSighting(models.Model):
    """Requests came with X-Forwarded-For while QUORUM_PROXY_COUNT was 0: one row (pk 1), written
    by the web processes on every host, read by `manage.py check --deploy`."""

    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    # The header and the connection's address of the last request noted, as they arrived.
    forwarded_for = models.CharField(max_length=255)
    remote_addr = models.CharField(max_length=64)

    def __str__(self) -> str:
        return f"X-Forwarded-For {self.forwarded_for!r} from {self.remote_addr}"
