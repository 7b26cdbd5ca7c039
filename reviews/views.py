"""Review pages: the request page and its actions.

Views stay thin: the review engine (`reviews.services`) decides, the registry app's comparison and
chart functions provide the evidence, and every state change is a POST that redirects.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from . import services
from .models import TransitionRequest


def get_request_for_user(user, pk: int) -> TransitionRequest:
    """The request any signed-in user may read, with what its page shows; 404 when unknown."""
    request = (
        TransitionRequest.objects.select_related("version__model", "requester", "baseline")
        .filter(pk=pk)
        .first()
    )
    if request is None:
        raise Http404(f"There is no request #{pk}.")
    return request


@require_GET
@login_required
def request_detail(request: HttpRequest, pk: int) -> HttpResponse:
    review = get_request_for_user(request.user, pk)
    return render(
        request,
        "reviews/request_detail.html",
        {
            "review": review,
            "progress": services.progress(review),
            "refusal": services.vote_refusal(review, request.user),
        },
    )
