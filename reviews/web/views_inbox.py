"""The inbox: what awaits my review, my requests, and what was decided lately, each list paged on
its own and filtered alike (the queries are `reviews.web.inbox`).
"""

from __future__ import annotations

from typing import Any, cast

from django.contrib.auth.decorators import login_required
from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from infra.http import AuthenticatedHttpRequest
from infra.page_cache import cached_page

from ..models import Decision, TransitionRequest
from .forms import InboxFilterForm
from .inbox import awaiting_for, awaiting_ids, decorate, group_names, mark_rereviews, rows_of

ROWS_PER_PAGE = 20


def _pager(request: HttpRequest, page, param: str) -> dict:
    """Previous/next links for one of several paginated lists, keeping the other parameters."""

    def link(number: int) -> str:
        query = request.GET.copy()
        query[param] = str(number)
        return f"?{query.urlencode()}#{param}"

    return {
        "page": page,
        "previous": link(page.previous_page_number()) if page.has_previous() else "",
        "next": link(page.next_page_number()) if page.has_next() else "",
    }


INBOX_LISTS: list[dict[str, Any]] = [
    {
        "key": "awaiting",
        "title": "Awaiting my review",
        "empty": "No requests await you.",
        "hint": "When someone asks for a promotion one of your groups signs off, it shows up "
        "here, oldest first.",
        "time_left": True,
    },
    {
        "key": "mine",
        "title": "My requests",
        "empty": "You have not requested any promotion.",
        "hint": "Open a model version and use “Request promotion”.",
        "show_reason": True,
    },
    {
        "key": "decided",
        "title": "Recently decided",
        "empty": "Nothing has been decided yet.",
        "hint": "Approved, rejected, cancelled and expired requests appear here.",
        "show_reason": True,
    },
]


@require_GET
@login_required
@cached_page
def inbox(request: AuthenticatedHttpRequest) -> HttpResponse:
    user = request.user
    filters = InboxFilterForm(request.GET)
    base = filters.apply(TransitionRequest.objects.all())
    filtered = bool(filters.is_valid() and any(filters.cleaned_data.values()))
    # What awaits me is a list of ids (the policy's groups are checked in Python): paged as a
    # list, and only the page's rows read, so thousands of them cost one cheap query, not an
    # IN list of thousands twice (the count and the page).
    awaiting = (
        awaiting_ids(user, within=base, groups=group_names(request))
        if filtered
        else awaiting_for(request)
    )
    querysets: dict[str, Any] = {
        "awaiting": awaiting,
        "mine": base.filter(requester=user).order_by("-created_at", "-id"),
        "decided": base.exclude(decision=Decision.PENDING).order_by("-decided_at", "-id"),
    }
    # Per list: its page, and the page's rows as a query.
    pages: list[Page] = []
    shown: list[QuerySet[TransitionRequest]] = []
    for spec in INBOX_LISTS:
        key = spec["key"]
        page = Paginator(querysets[key], ROWS_PER_PAGE).get_page(request.GET.get(key))
        pages.append(page)
        if key == "awaiting":
            # The ids are oldest first, as the rows are read.
            awaited = TransitionRequest.objects.filter(pk__in=list(page.object_list))
            shown.append(awaited.order_by("created_at", "id"))
        else:
            # The page's rows are a slice of the queryset; the stubs only know it can be sliced.
            shown.append(cast(QuerySet[TransitionRequest], page.object_list))
    lists = []
    # The three lists' votes in one query.
    for spec, page, loaded in zip(INBOX_LISTS, pages, rows_of(*shown), strict=True):
        key = spec["key"]
        rows = decorate(loaded)
        if key == "awaiting":
            mark_rereviews(rows, user)
        lists.append({**spec, "rows": rows, "pager": _pager(request, page, key), "page": page})
    return render(
        request,
        "reviews/inbox.html",
        {"filters": filters, "filtered": filtered, "lists": lists, "now": timezone.now()},
    )
