"""Reviewer analytics for staff: the page with its charts and tables, and the same numbers as
CSV (`?format=csv`). The numbers are `reviews.insight.analytics`; their presentation
`reviews.insight.presentation`."""

from __future__ import annotations

import csv

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from infra.http import AuthenticatedHttpRequest

from ..insight import analytics as numbers
from ..insight import presentation
from .forms import AnalyticsForm


@require_GET
@login_required
def analytics(request: AuthenticatedHttpRequest) -> HttpResponse:
    if not request.user.is_staff:
        raise PermissionDenied("Only admins can see reviewer analytics.")
    form = AnalyticsForm(request.GET)
    if not form.is_valid():
        # Nothing computed for a window nobody asked for: the page says what is wrong.
        return render(request, "reviews/analytics.html", {"form": form}, status=400)
    report = numbers.report(days=form.cleaned_data["days"])
    if form.cleaned_data["format"] == "csv":
        response = HttpResponse(
            content_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": (
                    f'attachment; filename="quorum-analytics-{report.days}d-'
                    f'{report.now:%Y%m%d-%H%M}.csv"'
                )
            },
        )
        csv.writer(response).writerows(presentation.csv_rows(report))
        return response
    return render(
        request,
        "reviews/analytics.html",
        {
            "form": form,
            "report": report,
            "chart_data": {"charts": presentation.charts(report)},
        },
    )
