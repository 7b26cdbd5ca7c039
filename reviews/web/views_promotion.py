"""Requesting a promotion: the promotion form on its own page (the version page embeds the same
form), and the message a new request gets.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from infra.http import AuthenticatedHttpRequest
from registry.lookups import model_version_or_404

from .. import errors
from ..decisions import opening, promotion
from ..models import Decision, TransitionRequest
from .forms import PromotionForm


@require_http_methods(["GET", "POST"])
@login_required
def request_new(request: AuthenticatedHttpRequest, name: str, version: str) -> HttpResponse:
    """The promotion form on its own page; the version page embeds the same form."""
    candidate = model_version_or_404(name, version)
    options = promotion.target_options(version=candidate, user=request.user)
    form = PromotionForm(request.POST or None, options=options)
    if request.method == "POST" and form.is_valid():
        try:
            created = opening.request_create(
                model=candidate.model.name,
                version=candidate.version,
                target=form.cleaned_data["target"],
                requester=request.user,
                comment=form.cleaned_data["comment"],
                rejection_answer=form.cleaned_data["rejection_answer"],
            )
        except errors.AnswerRequired as error:
            form.add_error("rejection_answer", str(error))
        except errors.QuorumError as error:
            form.add_error("target", str(error))
        else:
            messages.success(request, created_message(created))
            return redirect("reviews:request_detail", pk=created.pk)
    return render(
        request,
        "reviews/request_new.html",
        {"model": candidate.model, "version": candidate, "options": options, "form": form},
        status=400 if form.errors else 200,
    )


def created_message(created: TransitionRequest) -> str:
    if created.decision == Decision.REJECTED:
        return f"Request #{created.pk} was rejected at once: {created.decision_reason}"
    if created.decision == Decision.APPROVED:
        return f"Request #{created.pk} was approved at once by its gates; the transition is queued."
    return f"Request #{created.pk} is open; the approvers are told."
