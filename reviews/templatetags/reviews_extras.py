"""Review parts of pages the review app does not render itself: the navigation's count of requests
awaiting me, and on the registry's pages the promotion form, a model's request history and the
banner for changes made in MLflow directly.

The review app's own templates load this library, including those it puts in the slots the
registry's pages leave for it (`registry.slots`, filled in `reviews.apps`): neither the registry's
templates nor its Python code load or import the review app.
"""

from __future__ import annotations

import json
from datetime import timedelta

from django import template
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from registry.lookups import version_number
from registry.models import ChangeOrigin, RegistryChange

from ..decisions import related
from ..decisions.promotion import target_options
from ..emergency.break_glass import break_glass_targets, ratification_warnings
from ..emergency.rollback import rollback_offers
from ..errors import QuorumError
from ..insight.holder_history import holder_history
from ..insight.presentation import duration_label as _duration_label
from ..models import ApprovalPolicy, OutOfBandRevert, ProofRevocation, TransitionRequest
from ..policies.matching import policies_loaded
from ..policy_tools.explanation import explain
from ..web import kept, views_break_glass
from ..web.forms import PromotionForm
from ..web.inbox import awaiting_for, decorate, with_rows

register = template.Library()

# Out-of-band changes older than this are history (the audit page keeps them), not news.
OUT_OF_BAND_WINDOW = timedelta(days=14)
OUT_OF_BAND_SHOWN = 5
MODEL_REQUESTS_SHOWN = 15
# Holdings listed per target on the model page, newest first (the API answers for any time).
HOLDINGS_SHOWN = 20


@register.simple_tag(takes_context=True)
def awaiting_count(context) -> int:
    """How many requests await the signed-in user's vote (computed once per response)."""
    request = context.get("request")
    if request is None or not request.user.is_authenticated:
        return 0
    return len(awaiting_for(request))


@register.inclusion_tag("reviews/_out_of_band.html", takes_context=True)
def out_of_band_banner(context, model, version=None) -> dict:
    """Recent transitions someone made in MLflow directly, outside any review, and whether
    Quorum reverted them (`out_of_band: revert`)."""
    # The state of the latest revert of each change, in the same query as the changes.
    revert_state = (
        OutOfBandRevert.objects.filter(changes=OuterRef("pk")).order_by("-pk").values("state")[:1]
    )
    changes = (
        RegistryChange.objects.filter(
            model=model,
            origin=ChangeOrigin.OUT_OF_BAND,
            observed_at__gte=timezone.now() - OUT_OF_BAND_WINDOW,
        )
        .select_related("version")
        .annotate(revert_state=Subquery(revert_state))
    )
    if version is not None:
        changes = changes.filter(version=version)
    return {
        "model": model,
        "changes": list(changes[:OUT_OF_BAND_SHOWN]),
        "version": version,
        "user": context.get("user"),
    }


@register.inclusion_tag("reviews/_model_requests.html")
def model_requests(model) -> dict:
    """The model's transition requests, newest first, rejected ones with their reasons."""
    requests = TransitionRequest.objects.filter(version__model=model).order_by("-created_at", "-id")
    rows = decorate(with_rows(requests[:MODEL_REQUESTS_SHOWN]))
    total = requests.count() if len(rows) == MODEL_REQUESTS_SHOWN else len(rows)
    return {"model": model, "rows": rows, "total": total}


@register.inclusion_tag("reviews/_holder_history.html", takes_context=True)
def holder_history_section(context, model) -> dict:
    """Who held each stage and alias of the model when, and how each holding began; reuses the
    page's replay (`holder_timeline`) when the page made one."""
    history = holder_history(model, timeline=context.get("holder_timeline"))
    offers = {} if model.deleted else {o.target: o for o in rollback_offers(history)}
    targets = [
        (
            target,
            list(reversed(history.of(target)))[:HOLDINGS_SHOWN],
            len(history.of(target)),
            offers.get(target),
        )
        for target in history.timeline.targets()
    ]
    user = context.get("user")
    glass = []
    if user is not None and user.is_authenticated and not model.deleted:
        glass = break_glass_targets(model.name, user)
    # Taken whether or not the form shows, so that values never wait for a later page view.
    typed = kept.take(context.get("request"), views_break_glass.FORM, model=model.name)
    return {
        "model": model,
        "history": history,
        "targets": targets,
        "break_glass_targets": glass,
        # Said before the move: a ratification that cannot pass without the breaker.
        "break_glass_warnings": (
            sorted(ratification_warnings(model.name, user, glass).items()) if glass else []
        ),
        "break_glass_versions": (
            list(model.versions.live().order_by("-version").values_list("version", flat=True))
            if glass
            else []
        ),
        # What was typed before a refusal or "Back": the form opens with it.
        "break_glass_kept": (
            {**typed, "version": version_number(typed.get("version"))} if typed and glass else None
        ),
        "shown": HOLDINGS_SHOWN,
        "user": context.get("user"),
        "csrf_token": context.get("csrf_token"),
    }


def _policies_of(request) -> list[ApprovalPolicy]:
    """`policies_loaded()`, read once per response: the version page's promotion card and its
    policy panel share them."""
    if request is None:
        return policies_loaded()
    if not hasattr(request, "_policies_loaded"):
        request._policies_loaded = policies_loaded()
    return request._policies_loaded


def _requests_of(request, version) -> related.ForVersion:
    """`related.for_version(version)`, read once per response: the version page's promotion
    card and its signed proofs share the version's requests."""
    if request is None:
        return related.for_version(version)
    memo = request.__dict__.setdefault("_requests_of_version", {})
    if version.pk not in memo:
        memo[version.pk] = related.for_version(version)
    return memo[version.pk]


@register.inclusion_tag("reviews/_request_promotion.html", takes_context=True)
def request_promotion(context, version) -> dict:
    """The version page's "Request promotion" card: targets, requirements and gate preview."""
    request = context.get("request")
    options = (
        []
        if version.deleted
        else target_options(
            version=version,
            user=context.get("user"),
            policies=_policies_of(request),
            neighbours=_requests_of(request, version),
        )
    )
    return {
        "model": version.model,
        "version": version,
        "options": options,
        "form": PromotionForm(options=options),
        "csrf_token": context.get("csrf_token"),
        "user": context.get("user"),
        "embedded": True,
    }


@register.inclusion_tag("reviews/_policy_explanation.html", takes_context=True)
def policy_explanation(context, version) -> dict:
    """The version page's "Which policy applies" panel: a target picked with `?explain=T` (a GET
    form: explaining changes nothing) explained as `GET /api/v1/policies/explain` answers. Costs
    one query for the targets until a target is picked."""
    request = context.get("request")
    chosen = request.GET.get("explain", "") if request is not None else ""
    loaded = getattr(request, "_policies_loaded", None)
    # The promotion card above read the policies already; alone, the targets are one query.
    named = (
        [policy.targets for policy in loaded]
        if loaded is not None
        else ApprovalPolicy.objects.values_list("targets", flat=True)
    )
    targets = sorted({t for ts in named for t in ts})
    answer, refusal = None, ""
    if chosen and not version.deleted:
        try:
            answer = explain(
                model=version.model.name,
                version=version.version,
                target=chosen,
                user=context.get("user"),
            )
        except QuorumError as error:
            refusal = str(error)
    return {
        "version": version,
        "targets": targets,
        "chosen": chosen,
        "answer": answer,
        "refusal": refusal,
    }


@register.inclusion_tag("reviews/_version_proofs.html", takes_context=True)
def version_proofs(context, version) -> dict:
    """The version page's signed proofs, newest first: each names the bytes it approved (its
    in-toto subject: `models:/NAME/N` and the content digest the request pinned), the key that
    signed it, and whether it still stands or was revoked when the version left the target.
    Read with the promotion card's requests, and one query for the revocations, however many
    proofs."""
    proofs = _requests_of(context.get("request"), version).proofs
    revocations = list(ProofRevocation.objects.filter(version=version).order_by("left_at"))
    rows = []
    for proof in proofs:
        ended = next(
            (
                r
                for r in revocations
                if r.target == proof.target and proof.attested_at and r.left_at >= proof.attested_at
            ),
            None,
        )
        rows.append({"request": proof, "revoked": ended})
    return {
        "version": version,
        "subject": f"models:/{version.model.name}/{version.version}",
        "proofs": rows,
    }


@register.filter
def audit_value(value) -> str:
    """An audit detail as the CSV export writes it: text as is, anything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)


@register.filter
def duration_label(seconds) -> str:
    """Seconds as '3 h 20 min' (`reviews.insight.presentation.duration_label`)."""
    return _duration_label(seconds)
