"""Administering MLflow's webhooks: the one that tells Quorum about registry changes."""

from __future__ import annotations

from .connection import Connection


class Webhooks(Connection):
    """Creates, lists and deletes MLflow's webhooks."""

    def create_webhook(self, *, name: str, url: str, events: list[str], secret: str) -> str:
        webhook = self._call(self._client.create_webhook, name, url, events, secret=secret)
        return str(webhook.webhook_id)

    def list_webhooks(self, page_size: int = 1000) -> list[tuple[str, str, str]]:
        """(id, name, url) of every webhook MLflow knows, across all pages.

        1,000 is the largest page MLflow's webhook store accepts."""
        webhooks: list[tuple[str, str, str]] = []
        token = None
        while True:
            page = self._call(self._client.list_webhooks, max_results=page_size, page_token=token)
            webhooks.extend((str(w.webhook_id), w.name, w.url) for w in page)
            token = page.token
            if not token:
                return webhooks

    def delete_webhook(self, webhook_id: str) -> None:
        self._call(self._client.delete_webhook, webhook_id)
