"""A request's page and its actions: the page, its status poll, vote, comment, cancel, retry.

Views stay thin: the review engine (`reviews.decisions`) decides and refuses, the registry app's
comparison, chart and history functions provide the evidence, and every state change is a POST
that redirects. A refusal answers as its own `status` says, as the API does: about who you are
(403), a 403 page; about what does not exist (404), a 404 page; about the request's state
(already decided, already voted), the page again with the reason, nothing changed.
"""

from __future__ import annotations

import hashlib
import json
from http import HTTPStatus

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Prefetch
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotModified
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import parse_etags, quote_etag
from django.views.decorators.http import require_GET, require_POST

from infra.http import AuthenticatedHttpRequest
from infra.page_cache import cached_page
from registry import charts
from registry.compare import compare_versions, metric_rows
from registry.history import version_histories
from registry.metrics import ordered_keys
from registry.quorum_tags import user_tags

from .. import errors
from ..conversation import comments, timeline
from ..decisions import counting, deciding, escalation, gates, pins, related, standing, voting
from ..execution import stalls
from ..models import COMMENT_MAX, Decision, Execution, TransitionRequest, VoteChoice
from .forms import CancelForm, CommentForm, VoteForm
from .inbox import group_names

METRIC_BARS = 6
# Statuses the request page keeps polling for: the job has yet to finish.
POLLED = (Execution.QUEUED, Execution.RUNNING)

User = get_user_model()


def get_request_for_user(user, pk: int, *, page: bool = True) -> TransitionRequest:
    """The request with what its page shows (`page`), or only its version and model (what its
    status shows: the poll of every open page reads no more). Any signed-in user may read a
    request (reviewers follow links from email and colleagues); acting on it is checked by the
    engine. 404 when unknown."""
    related = (
        [
            "version__model",
            "requester",
            "baseline",
            "decided_by",
            # The evidence packet, read from the mirror with the request: no query of its own.
            "version__evidence",
            "baseline__evidence",
        ]
        if page
        else ["version__model"]
    )
    review = TransitionRequest.objects.select_related(*related).filter(pk=pk).first()
    if review is None:
        raise Http404(f"There is no request #{pk}.")
    if page and review.baseline is not None:
        review.baseline.model = review.version.model
    return review


def _refuse(request: HttpRequest, error: errors.QuorumError, pk: int) -> HttpResponse:
    """A 403 or 404 refusal is that error page; the rest redirect to the page with the reason."""
    if error.status == HTTPStatus.FORBIDDEN:
        raise PermissionDenied(str(error))
    if error.status == HTTPStatus.NOT_FOUND:
        raise Http404(str(error))
    messages.error(request, str(error))
    return redirect("reviews:request_detail", pk=pk)


def _refuse_keeping_text(
    request: AuthenticatedHttpRequest, error: errors.QuorumError, review, **forms
) -> HttpResponse:
    """A refused vote or comment: the page as it is now, the reason above the form and the text
    the user typed still in it (a redirect would drop it). 403 and 404 stay error pages."""
    if error.status in (HTTPStatus.FORBIDDEN, HTTPStatus.NOT_FOUND):
        return _refuse(request, error, review.pk)
    review = get_request_for_user(request.user, review.pk)  # what changed meanwhile
    for form in forms.values():
        form.add_error(None, str(error))
    context = _detail_context(request, review, **forms)
    context["kept_refusal"] = str(error)
    vote_form = forms.get("vote_form")
    if vote_form is not None and not context["can_vote"]:
        # The vote form is gone from the page now: its text moves to the comment form.
        context["kept_vote_text"] = vote_form.data.get("comment", "")
    return render(request, "reviews/request_detail.html", context, status=error.status)


# -- a request's page -------------------------------------------------------------------------


def _evidence(review: TransitionRequest) -> dict:
    """Candidate against the version holding the target: the registry's rows and charts."""
    candidate, baseline = review.version, review.baseline
    if baseline is None:
        rows = metric_rows(candidate.metrics or {}, {})
        versions = [candidate]
        comparison = None
        bars = []
    else:
        comparison = compare_versions(candidate, baseline)
        rows = comparison.metrics
        versions = [candidate, baseline]
        keys = [row.key for row in rows][:METRIC_BARS]
        bars = [charts.metric_comparison(candidate, baseline, keys)] if keys else []
        bars += charts.change_charts(candidate, baseline, [row.key for row in rows])
    histories = version_histories(versions)
    charted = {key for curves in histories.curves.values() for key in curves}
    history_charts = charts.history_charts(versions, histories, ordered_keys(charted))
    return {
        "comparison": comparison,
        "metric_rows": rows,
        "has_bar_chart": bool(bars),
        "has_change_chart": any(chart["kind"] == "change" for chart in bars),
        "history_charts": history_charts,
        "history_unavailable": histories.unavailable,
        "chart_data": {"charts": bars + history_charts},
        "candidate_params": sorted((candidate.params or {}).items()),
        "candidate_tags": sorted(user_tags(candidate.tags).items()),
        "evidence": escalation.comparison_for(candidate, baseline),
        "escalation": review.policy_snapshot.get("escalation", {}).get("applied", []),
    }


def outcome(review: TransitionRequest) -> str:
    """What a finished transition did, in one sentence: "version 5 is now in Production
    (version 3 archived)"."""
    if review.decision != Decision.APPROVED or review.execution != Execution.DONE:
        return ""
    number = review.version.version
    if review.is_alias_target:
        return f"version {number} now holds {review.parsed_target}."
    archived = review.archived_versions()
    sentence = f"version {number} is now in {review.target}"
    if archived:
        word = "version" if len(archived) == 1 else "versions"
        sentence += f" ({word} {', '.join(str(n) for n in archived)} archived)"
    return sentence + "."


def _status(review: TransitionRequest, revision: int | None = None) -> dict:
    """The request's state as the status poll and the page's first render both see it.
    `revision`: `_last_event_id(review)`, when the page read the request's events already."""
    stall = stalls.request_stall(review)
    return {
        "url": reverse("reviews:request_status", args=[review.pk]),
        "decision": review.decision,
        # What the badge and the decision line read: "expired" as soon as the deadline passes.
        "status": standing.status(review),
        "decision_label": (
            Decision.EXPIRED.label if standing.is_overdue(review) else review.get_decision_display()
        ),
        "execution": review.execution,
        "execution_label": review.get_execution_display(),
        "state": standing.state_label(review),
        "state_class": standing.state_class(review),
        # A failure no retry can change: why, instead of the retry button.
        "retry_blocked": standing.retry_blocker(review),
        "attempts": review.execution_attempts,
        "error": review.execution_error,
        "outcome": outcome(review),
        # No worker is there to take the job: what to do about it (reviews/execution/stalls.py).
        "stalled": stall.message if stall else "",
        # The request's last audit event: a vote, a comment, stale approvals, a decision. The
        # page fetches its live parts again when it changes (quorum/static/request_status.js).
        "revision": _last_event_id(review) if revision is None else revision,
        "live": _is_live(review),
        "poll": review.decision == Decision.APPROVED and review.execution in POLLED,
    }


def _last_event_id(review: TransitionRequest) -> int:
    # Not MAX(sequence) in SQL: PostgreSQL answers it by walking the whole chain's sequence index
    # backwards until one of this request's events turns up (16 ms at 100,000 events, growing
    # with the chain, on every poll); its few events, found through their own indexes, are not.
    events = timeline.events_for(review).order_by().values_list("sequence", flat=True)
    return max(events, default=0)


def _is_live(review: TransitionRequest) -> bool:
    """Whether the page may still change: open, or approved and not yet carried out."""
    return (review.decision == Decision.PENDING and not standing.is_overdue(review)) or (
        review.decision == Decision.APPROVED and review.execution in POLLED
    )


def _signoffs(review: TransitionRequest, votes: list, progress: list) -> list[dict]:
    """Per required group: who approved, and who could still sign while the request is open."""
    required = [p.group for p in progress]
    members = {
        group.name: group.user_set.all()
        for group in Group.objects.filter(name__in=required).prefetch_related(
            Prefetch("user_set", queryset=User.objects.filter(is_active=True).order_by("username"))
        )
    }
    voted = {vote.user_id for vote in votes if not vote.stale}  # a stale voter may sign again
    self_ok = review.policy_snapshot.get("allow_self_approval", False)
    pending = review.decision == Decision.PENDING
    return [
        {
            "progress": p,
            "approvers": p.approvers,
            "missing": max(p.needed - len(p.approvers), 0),
            "could_sign": [
                user.get_username()
                for user in members.get(p.group, [])
                if pending and user.pk not in voted and (self_ok or user.pk != review.requester_id)
            ],
        }
        for p in progress
    ]


def _detail_context(
    request: AuthenticatedHttpRequest,
    review: TransitionRequest,
    vote_form=None,
    comment_form=None,
    cancel_form=None,
) -> dict:
    user = request.user
    votes = list(review.votes.select_related("user"))
    count = counting.tally(review, votes)
    for vote in votes:
        # Read by the template beside the vote's own fields.
        vote.counted_for = count.counted_for.get(vote.pk, "")  # type: ignore[attr-defined]
    progress = count.progress
    refusal = voting.vote_refusal(review, user, votes=votes, groups=group_names(request))
    # Shown beside the vote form: why their earlier approval no longer counts.
    my_stale = [v for v in votes if v.user_id == user.pk and v.stale]
    pending = review.decision == Decision.PENDING
    # One read of the request's events: its timeline, and its revision for the status poll.
    events = list(timeline.events_for(review))
    status = _status(review, revision=max((e.sequence for e in events), default=0))
    entries = timeline.timeline(review, events)
    return {
        "review": review,
        "model": review.version.model,
        "candidate": review.version,
        "baseline": review.baseline,
        "snapshot": review.policy_snapshot,
        "requirements": " and ".join(
            f"{r['approvals']} of {r['group']}" for r in review.policy_snapshot.get("require", [])
        ),
        "gate_results": gates.with_verdicts(review.gate_results),
        "votes": votes,
        "signoffs": _signoffs(review, votes, progress),
        "progress": progress,
        "refusal": refusal,
        "can_vote": refusal is None,
        "my_stale_vote": my_stale[-1] if my_stale and refusal is None else None,
        "vote_form": vote_form or VoteForm(),
        "comment_form": comment_form or CommentForm(),
        "comment_max": COMMENT_MAX,
        "cancel_form": cancel_form or CancelForm(),
        "timeline": entries,
        "related": related.related_to(review),
        # The gates section says when and why they were last re-evaluated, if they were.
        "reevaluation": next(
            (e for e in reversed(entries) if e.action == "request.reevaluated"), None
        ),
        "can_cancel": pending and deciding.cancel_refusal(review, user) is None,
        "can_retry": user.is_staff and review.decision == Decision.APPROVED,
        "expired_unprocessed": standing.is_overdue(review),
        "decided_by": standing.decided_by_words(review, votes, count),
        "status": status,
        **_pins(review, pending),
        **_evidence(review),
    }


def _pins(review: TransitionRequest, pending: bool) -> dict:
    """What the request pinned: its content digest (or why it has none yet) and the gated
    metric values whose history says why they may not approve alone."""
    candidate_pins = (review.metric_pins or {}).get("candidate") or {}
    return {
        "content_digest": review.content_digest,
        "content_waiting": pins.unpinned(review) if pending else "",
        "metric_warnings": [
            {"metric": key, **pinned}
            for key, pinned in sorted(candidate_pins.items())
            if isinstance(pinned, dict) and pinned.get("why")
        ],
    }


@require_GET
@login_required
@cached_page
def request_detail(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    review = get_request_for_user(request.user, pk)
    return render(request, "reviews/request_detail.html", _detail_context(request, review))


@require_GET
@login_required
def request_status(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """The decision and execution state, polled by quorum/static/request_status.js."""
    review = get_request_for_user(request.user, pk, page=False)
    body = json.dumps(_status(review), cls=DjangoJSONEncoder, sort_keys=True)
    # Conditional GET: a page polling an unchanged request gets an empty 304.
    tag = quote_etag(hashlib.sha256(body.encode()).hexdigest()[:32])
    headers = {"Cache-Control": "private, no-cache", "ETag": tag}
    if tag in parse_etags(request.headers.get("If-None-Match", "")):
        return HttpResponseNotModified(headers=headers)
    return HttpResponse(body, content_type="application/json", headers=headers)


@require_POST
@login_required
def vote(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    review = get_request_for_user(request.user, pk)
    form = VoteForm(request.POST)
    if not form.is_valid():
        context = _detail_context(request, review, vote_form=form)
        return render(request, "reviews/request_detail.html", context, status=400)
    try:
        voting.vote_cast(request_id=review.pk, user=request.user, **form.cleaned_data)
    except errors.QuorumError as error:
        return _refuse_keeping_text(request, error, review, vote_form=form)
    review.refresh_from_db(fields=["decision"])
    verb = "approved" if form.cleaned_data["decision"] == VoteChoice.APPROVE else "rejected"
    if review.decision == Decision.APPROVED:
        messages.success(request, "You approved: quorum reached, the transition is queued.")
    elif review.decision == Decision.REJECTED:
        messages.success(request, "You rejected: the request is closed and the requester told.")
    else:
        messages.success(request, f"You {verb}. The request waits for the other sign-offs.")
    return redirect("reviews:request_detail", pk=review.pk)


@require_POST
@login_required
def comment(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """A comment without a vote, by anyone who may see the request."""
    review = get_request_for_user(request.user, pk)
    form = CommentForm(request.POST)
    if not form.is_valid():
        context = _detail_context(request, review, comment_form=form)
        return render(request, "reviews/request_detail.html", context, status=400)
    try:
        comments.comment_post(
            request_id=review.pk,
            user=request.user,
            body=form.cleaned_data["body"],
            seen_decision=form.cleaned_data["seen_decision"] or None,
        )
    except errors.QuorumError as error:
        return _refuse_keeping_text(request, error, review, comment_form=form)
    messages.success(request, "Your comment is posted.")
    return redirect(reverse("reviews:request_detail", args=[review.pk]) + "#timeline")


@require_POST
@login_required
def cancel(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    review = get_request_for_user(request.user, pk)
    form = CancelForm(request.POST)
    if not form.is_valid():
        context = _detail_context(request, review, cancel_form=form)
        return render(request, "reviews/request_detail.html", context, status=400)
    try:
        deciding.request_cancel(
            request_id=review.pk, user=request.user, reason=form.cleaned_data["reason"]
        )
    except errors.QuorumError as error:
        return _refuse(request, error, review.pk)
    messages.success(request, f"Request #{review.pk} is cancelled.")
    return redirect("reviews:request_detail", pk=review.pk)


@require_POST
@login_required
def retry(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    review = get_request_for_user(request.user, pk)
    try:
        deciding.transition_retry(request_id=review.pk, user=request.user)
    except errors.QuorumError as error:
        return _refuse(request, error, review.pk)
    messages.success(request, "The transition is queued again.")
    return redirect("reviews:request_detail", pk=review.pk)
