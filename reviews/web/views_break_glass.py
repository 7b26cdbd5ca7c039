"""Break glass from the model page, and the staff report of every use.

The form (on the model page, for members of a policy's break-glass groups) does not move at
once: its POST answers with a confirmation that names the move ("Move fraud v4 → Production now,
replacing v3") and repeats the reason; only "Confirm break glass" moves the version
(`reviews.emergency.break_glass`). A refusal at either step, and "Back", return to the model page
with the form open and what was typed still in it (`reviews.web.kept`), the refusal as a message;
nothing changes. The report lists every break-glass move: who, when, why, and whether it was
ratified.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from infra.http import AuthenticatedHttpRequest
from registry.lookups import model_or_404
from registry.models import RegisteredModel

from .. import errors
from ..emergency.break_glass import (
    BreakGlassPreview,
    break_glass_move,
    break_glass_preview,
    ratification_warnings,
)
from ..models import COMMENT_MAX, RequestKind, TransitionRequest
from . import kept

REPORT_PER_PAGE = 50
FORM = "break_glass"  # its values kept in the session (`reviews.web.kept`)
FIELDS = ("version", "target", "reason")


@require_POST
@login_required
def break_glass(request: AuthenticatedHttpRequest, name: str) -> HttpResponse:
    """The form's POST: the confirmation, or back to the form with the refusal. Moves nothing.

    The confirmation is this POST's response, not a redirect to a page of its own: it changes
    nothing, so a reload that sends the form again only asks again, and the values travel in the
    confirmation's own form instead of waiting in the session.
    """
    model = model_or_404(name)
    typed = _typed(request)
    try:
        preview = _preview(request, model, typed)
    except errors.QuorumError as error:
        return _back_to_form(request, model, typed, refusal=str(error))
    return _confirmation(request, model, preview)


@require_POST
@login_required
def break_glass_confirm(request: AuthenticatedHttpRequest, name: str) -> HttpResponse:
    """The confirmation's POST: "Confirm break glass" moves the version; "Back" (or anything but
    a confirmation) returns to the form with the values."""
    model = model_or_404(name)
    typed = _typed(request)
    if request.POST.get("step") != "confirm":
        return _back_to_form(request, model, typed)
    try:
        preview = _preview(request, model, typed)
        # The confirmation named what the move replaces: when that changed since (another move,
        # a sync), it is asked again rather than replacing a version nobody confirmed.
        if _holders_field(preview) != request.POST.get("holders", ""):
            return _confirmation(request, model, preview, changed=True)
        moved = break_glass_move(model=model.name, user=request.user, **typed)
    except errors.QuorumError as error:
        return _back_to_form(request, model, typed, refusal=str(error))
    messages.success(
        request,
        f"Break glass #{moved.pk}: v{moved.version.version} is being moved to {moved.target} now. "
        "The required groups are told, and a ratification request follows.",
    )
    return redirect("reviews:request_detail", pk=moved.pk)


def _typed(request: AuthenticatedHttpRequest) -> dict[str, str]:
    return {field: request.POST.get(field, "") for field in FIELDS}


def _preview(
    request: AuthenticatedHttpRequest, model: RegisteredModel, typed: dict[str, str]
) -> BreakGlassPreview:
    if len(typed["reason"]) > COMMENT_MAX:
        raise errors.InvalidReason(f"The reason is longer than {COMMENT_MAX:,} characters.")
    return break_glass_preview(model=model.name, user=request.user, **typed)


def _holders_field(preview: BreakGlassPreview) -> str:
    return ",".join(str(n) for n in preview.holders)


def _confirmation(
    request: AuthenticatedHttpRequest,
    model: RegisteredModel,
    preview: BreakGlassPreview,
    *,
    changed: bool = False,
) -> HttpResponse:
    warnings = ratification_warnings(model.name, request.user, [preview.target])
    return render(
        request,
        "reviews/break_glass_confirm.html",
        {
            "model": model,
            "preview": preview,
            "holders": _holders_field(preview),
            "warning": warnings.get(preview.target, ""),
            "changed": changed,
        },
        status=409 if changed else 200,
    )


def _back_to_form(
    request: AuthenticatedHttpRequest,
    model: RegisteredModel,
    typed: dict[str, str],
    *,
    refusal: str = "",
) -> HttpResponse:
    # At most what the form accepts is kept: the session is no store for oversized posts.
    values = {**typed, "reason": typed["reason"][:COMMENT_MAX]}
    kept.keep(request, FORM, model=model.name, values=values)
    if refusal:
        messages.error(request, refusal)
    return redirect(reverse("registry:model_detail", args=[model.name]) + "#break-glass")


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
