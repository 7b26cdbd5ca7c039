"""Break glass from the model page, and the staff report of every use.

The form (on the model page, for members of a policy's break-glass groups) moves a version at once
with a mandatory reason (`reviews.emergency.break_glass`); refusals come back as a message and
change nothing. The report lists every break-glass move: who, when, why, and whether it was
ratified.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from infra.http import AuthenticatedHttpRequest
from registry.lookups import model_or_404

from .. import errors
from ..emergency.break_glass import break_glass_move
from ..models import COMMENT_MAX, RequestKind, TransitionRequest

REPORT_PER_PAGE = 50


@require_POST
@login_required
def break_glass(request: AuthenticatedHttpRequest, name: str) -> HttpResponse:
    model = model_or_404(name)
    back = redirect("registry:model_detail", name=model.name)
    reason = request.POST.get("reason", "")
    if len(reason) > COMMENT_MAX:
        messages.error(request, f"The reason is longer than {COMMENT_MAX:,} characters.")
        return back
    try:
        moved = break_glass_move(
            model=model.name,
            version=request.POST.get("version", ""),
            target=request.POST.get("target", ""),
            user=request.user,
            reason=reason,
        )
    except errors.QuorumError as error:
        messages.error(request, str(error))
        return back
    messages.success(
        request,
        f"Break glass #{moved.pk}: v{moved.version.version} is being moved to {moved.target} now. "
        "The required groups are told, and a ratification request follows.",
    )
    return redirect("reviews:request_detail", pk=moved.pk)


@require_GET
@login_required
def break_glass_report(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Every break-glass move, newest first, with its ratification (staff only)."""
    if not request.user.is_staff:
        raise PermissionDenied("Only admins can see the break-glass report.")
    moves = (
        TransitionRequest.objects.filter(kind=RequestKind.BREAK_GLASS)
        .select_related("version__model", "requester")
        .prefetch_related(
            Prefetch(
                "ratifications",
                queryset=TransitionRequest.objects.order_by("-created_at"),
                to_attr="ratification_list",
            )
        )
        .order_by("-created_at", "-id")
    )
    page = Paginator(moves, REPORT_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "reviews/break_glass_report.html", {"page": page})
