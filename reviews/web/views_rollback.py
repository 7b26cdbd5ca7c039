"""The model page's rollback button: opens a rollback request and shows it.

A POST from the model page's timeline ("Roll back Production to v7"); refusals (no policy, not a
requester, nothing to roll back, a request already open) come back as a message on the model
page, and nothing changes.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from infra.http import AuthenticatedHttpRequest
from registry.lookups import model_or_404

from .. import errors
from ..emergency.rollback import rollback_request_create
from ..models import COMMENT_MAX
from .views_promotion import created_message


@require_POST
@login_required
def rollback(request: AuthenticatedHttpRequest, name: str) -> HttpResponse:
    model = model_or_404(name)
    back = redirect("registry:model_detail", name=model.name)
    comment = request.POST.get("comment", "").strip()
    if len(comment) > COMMENT_MAX:
        messages.error(request, f"The comment is longer than {COMMENT_MAX:,} characters.")
        return back
    try:
        created = rollback_request_create(
            model=model.name,
            target=request.POST.get("target", ""),
            to_version=request.POST.get("version") or None,
            requester=request.user,
            comment=comment,
        )
    except errors.QuorumError as error:
        messages.error(request, str(error))
        return back
    messages.success(request, created_message(created))
    return redirect("reviews:request_detail", pk=created.pk)
