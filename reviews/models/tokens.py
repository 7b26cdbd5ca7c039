"""API tokens: how the REST API and the `quorum` CLI act as a user."""

from django.conf import settings
from django.db import models


class ApiToken(models.Model):
    """A bearer token for the REST API and the `quorum` CLI, acting as `user`.

    Only the SHA-256 of the secret is stored: the plaintext is shown once, when it is created
    (`manage.py create_api_token`). `prefix` is its first characters, enough to tell tokens apart
    in the admin without being usable.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, default="api")
    token_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=16)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name}, {self.user})"
