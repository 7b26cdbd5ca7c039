"""Mail as the notification tests send and read it: a request opened or a vote cast with its
on-commit work (the mail's enqueue) run, whom the mail went to and with which subjects, its HTML
part and its link to the request page, and the mail an event sends rendered without sending it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.urls import reverse

from tests.factories import open_request

if TYPE_CHECKING:
    from reviews.models import TransitionRequest

# Where the links in mail point (the notification tests' `mailroom` sets QUORUM_BASE_URL to it).
MAIL_BASE_URL = "https://quorum.example.com"
# Whom the standard policies ask to review a Production request: ml-leads and data-science.
STANDARD_APPROVERS = {"lead", "scientist1", "scientist2", "scientist3"}


def rendered_mail(event, kind: str) -> dict[str, str]:
    """The mail of `kind` that `event` sends, rendered (subject, text, html)."""
    from reviews import notify

    return notify.render(event, kind)


def mail_recipients(messages) -> set[str]:
    """The usernames the messages went to; each message has exactly one recipient."""
    assert all(len(m.to) == 1 for m in messages)
    names = [m.to[0].split("@")[0] for m in messages]
    assert len(names) == len(set(names)), f"someone got two mails: {sorted(names)}"
    return set(names)


def mail_subjects(messages) -> set[str]:
    return {m.subject for m in messages}


def mail_html(message) -> str:
    """A mail's HTML part."""
    [(content, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    return content


def mail_link(request) -> str:
    """The request page's address as a mail gives it."""
    return MAIL_BASE_URL + reverse("reviews:request_detail", args=[request.pk])


def request_committed(requester, committed, **kwargs) -> TransitionRequest:
    """`open_request` in a transaction whose on-commit work (the mail's enqueue) runs when it
    ends; `committed` is the fixture of that name."""
    with committed():
        return open_request(requester, **kwargs)


def vote_committed(request, user, committed, decision="approve", comment=""):
    """A vote through the engine, its on-commit work run as in `request_committed`."""
    from reviews.decisions import voting

    with committed():
        voting.vote_cast(request_id=request.pk, user=user, decision=decision, comment=comment)
