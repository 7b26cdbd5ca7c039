"""Review pages: the inbox, a request's page and its actions, the promotion form, the audit trail.

Views stay thin: the review engine (`reviews.decisions`) decides and refuses, the registry app's
comparison, chart and history functions provide the evidence, and every state change is a POST
that redirects. A refusal answers as its own `status` says, as the API does: about who you are
(403), a 403 page; about what does not exist (404), a 404 page; about the request's state
(already decided, already voted), the page again with the reason, nothing changed.
"""

from __future__ import annotations

import csv
from http import HTTPStatus
from typing import Any, cast

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Prefetch, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from quorum.http import AuthenticatedHttpRequest
from registry import charts
from registry.compare import compare_versions, metric_rows
from registry.history import version_histories
from registry.lookups import model_or_404, version_or_404
from registry.metrics import ordered_keys

from . import errors
from .audit import export, verification
from .conversation import comments, timeline
from .decisions import (
    counting,
    deciding,
    escalation,
    gates,
    opening,
    promotion,
    related,
    standing,
    voting,
)
from .execution import stalls
from .forms import (
    AuditFilterForm,
    CancelForm,
    CommentForm,
    InboxFilterForm,
    PromotionForm,
    VoteForm,
)
from .inbox import awaiting_ids, decorate, mark_rereviews, with_rows
from .models import COMMENT_MAX, AuditEvent, Decision, Execution, TransitionRequest, VoteChoice

ROWS_PER_PAGE = 20
EVENTS_PER_PAGE = 50
METRIC_BARS = 6
# Statuses the request page keeps polling for: the job has yet to finish.
POLLED = (Execution.QUEUED, Execution.RUNNING)

User = get_user_model()


def get_request_for_user(user, pk: int) -> TransitionRequest:
    """The request with what its page shows. Any signed-in user may read a request (reviewers
    follow links from email and colleagues); acting on it is checked by the engine. 404 when
    unknown."""
    review = (
        TransitionRequest.objects.select_related(
            "version__model",
            "requester",
            "baseline",
            "decided_by",
            # The evidence packet, read from the mirror with the request: no query of its own.
            "version__evidence",
            "baseline__evidence",
        )
        .filter(pk=pk)
        .first()
    )
    if review is None:
        raise Http404(f"There is no request #{pk}.")
    if review.baseline is not None:
        review.baseline.model = review.version.model
    return review


def _staff_only(user) -> None:
    if not user.is_staff:
        raise PermissionDenied("Only admins can see the audit trail.")


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


# -- the inbox --------------------------------------------------------------------------------


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
def inbox(request: AuthenticatedHttpRequest) -> HttpResponse:
    user = request.user
    filters = InboxFilterForm(request.GET)
    base = filters.apply(TransitionRequest.objects.all())
    querysets = {
        "awaiting": base.filter(pk__in=awaiting_ids(user)).order_by("created_at", "id"),
        "mine": base.filter(requester=user).order_by("-created_at", "-id"),
        "decided": base.exclude(decision=Decision.PENDING).order_by("-decided_at", "-id"),
    }
    lists = []
    for spec in INBOX_LISTS:
        key = spec["key"]
        page = Paginator(querysets[key], ROWS_PER_PAGE).get_page(request.GET.get(key))
        # The page's rows are a slice of the queryset; the stubs only know it can be sliced.
        rows = decorate(with_rows(cast(QuerySet[TransitionRequest], page.object_list)))
        if key == "awaiting":
            mark_rereviews(rows, user)
        lists.append({**spec, "rows": rows, "pager": _pager(request, page, key), "page": page})
    filtered = bool(filters.is_valid() and any(filters.cleaned_data.values()))
    return render(
        request,
        "reviews/inbox.html",
        {"filters": filters, "filtered": filtered, "lists": lists, "now": timezone.now()},
    )


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
        "candidate_tags": sorted((candidate.tags or {}).items()),
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


def _status(review: TransitionRequest) -> dict:
    """The request's state as the status poll and the page's first render both see it."""
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
        "poll": review.decision == Decision.APPROVED and review.execution in POLLED,
    }


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
    refusal = voting.vote_refusal(review, user)
    # Shown beside the vote form: why their earlier approval no longer counts.
    my_stale = [v for v in votes if v.user_id == user.pk and v.stale]
    is_requester = review.requester_id == user.pk
    pending = review.decision == Decision.PENDING
    status = _status(review)
    entries = timeline.timeline(review)
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
        "can_cancel": pending and (is_requester or user.is_staff),
        "can_retry": user.is_staff and review.decision == Decision.APPROVED,
        "expired_unprocessed": standing.is_overdue(review),
        "decided_by": standing.decided_by_words(review, votes, count),
        "status": status,
        **_evidence(review),
    }


@require_GET
@login_required
def request_detail(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    review = get_request_for_user(request.user, pk)
    return render(request, "reviews/request_detail.html", _detail_context(request, review))


@require_GET
@login_required
def request_status(request: AuthenticatedHttpRequest, pk: int) -> JsonResponse:
    """The decision and execution state, polled by quorum/static/request_status.js."""
    review = get_request_for_user(request.user, pk)
    return JsonResponse(_status(review), headers={"Cache-Control": "no-store"})


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


# -- requesting a promotion -------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@login_required
def request_new(request: AuthenticatedHttpRequest, name: str, version: str) -> HttpResponse:
    """The promotion form on its own page; the version page embeds the same form."""
    candidate = version_or_404(model_or_404(name), version)
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
            messages.success(request, _created_message(created))
            return redirect("reviews:request_detail", pk=created.pk)
    return render(
        request,
        "reviews/request_new.html",
        {"model": candidate.model, "version": candidate, "options": options, "form": form},
        status=400 if form.errors else 200,
    )


def _created_message(created: TransitionRequest) -> str:
    if created.decision == Decision.REJECTED:
        return f"Request #{created.pk} was rejected at once: {created.decision_reason}"
    if created.decision == Decision.APPROVED:
        return f"Request #{created.pk} was approved at once by its gates; the transition is queued."
    return f"Request #{created.pk} is open; the approvers are told."


# -- the audit trail --------------------------------------------------------------------------


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
