"""The audit trail for staff: the page, with the chain's state, and the CSV download."""

from __future__ import annotations

import csv

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from infra.http import AuthenticatedHttpRequest

from ..audit import export, verification
from ..models import AuditEvent
from .forms import AuditFilterForm

EVENTS_PER_PAGE = 50


def _staff_only(user) -> None:
    if not user.is_staff:
        raise PermissionDenied("Only admins can see the audit trail.")


@require_GET
@login_required
def audit_log(request: AuthenticatedHttpRequest) -> HttpResponse:
    _staff_only(request.user)
    filters = AuditFilterForm(request.GET, actions=AuditEvent.objects.actions())
    events = filters.apply(AuditEvent.objects.order_by("-sequence"))
    filtered = any(value for key, value in request.GET.items() if key != "page")
    chain_state = verification.chain_status()
    paginator = Paginator(events, EVENTS_PER_PAGE)
    if not filtered and chain_state.state != "broken":
        # A chain that holds has as many events as its head counts: no COUNT over the history.
        paginator.count = chain_state.events
    return render(
        request,
        "reviews/audit.html",
        {
            "filters": filters,
            "page": paginator.get_page(request.GET.get("page")),
            "verification": chain_state,
            "filtered": filtered,
            "export_query": request.GET.urlencode(),
        },
    )


class _Echo:
    """A file-like object whose write returns the line, for streaming csv.writer output."""

    def write(self, value: str) -> str:
        return value


@require_GET
@login_required
def audit_export(request: AuthenticatedHttpRequest) -> StreamingHttpResponse:
    _staff_only(request.user)
    filters = AuditFilterForm(request.GET, actions=AuditEvent.objects.actions())
    events = filters.apply(AuditEvent.objects.order_by("sequence"))
    writer = csv.writer(_Echo())
    rows = (writer.writerow(row) for row in export.csv_rows(events.iterator(chunk_size=2000)))
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    return StreamingHttpResponse(
        rows,
        content_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="quorum-audit-{stamp}.csv"'},
    )
