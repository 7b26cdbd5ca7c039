"""Absolute links to Quorum's pages, for mail, outgoing webhooks and the API.

They start with QUORUM_BASE_URL, the address users open, because whoever follows them is not on
the request that produced them.
"""

from django.conf import settings
from django.urls import NoReverseMatch, reverse


def absolute(path: str) -> str:
    return settings.QUORUM_BASE_URL + path


def request_url(pk: int) -> str:
    """The request's page in the dashboard."""
    try:
        path = reverse("reviews:request_detail", args=[pk])
    except NoReverseMatch:  # the review pages are not mounted: their documented address
        path = f"/reviews/{pk}/"
    return absolute(path)
