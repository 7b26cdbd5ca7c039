"""Reading Quorum's pages in view tests: a signed-in client, the text a user sees, the messages
shown, and the request page's URLs."""

from __future__ import annotations

import html
import re

from django.urls import reverse


def login(client, user):
    client.force_login(user)
    return client


def text_of(response) -> str:
    """The page's visible text: scripts dropped, tags turned into spaces, whitespace collapsed,
    entities decoded."""
    body = response.content.decode()
    body = re.sub(r"<script.*?</script>", " ", body, flags=re.S)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)))


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def detail_url(request) -> str:
    return reverse("reviews:request_detail", args=[request.pk])


def action_url(name: str, request) -> str:
    return reverse(f"reviews:{name}", args=[request.pk])


def request_url(name: str, version: int) -> str:
    """Where the promotion form for model `name`, `version` posts."""
    return reverse("reviews:request_new", args=[name, version])
