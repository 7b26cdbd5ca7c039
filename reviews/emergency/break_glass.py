"""Break glass: an on-call member moves a version at once, with a reason, and the quorum ratifies
it afterwards (`reviews.emergency.ratification`).

A policy's `break_glass: {groups, ratify_within, on_unratified}` names who may. The move is a
request of kind `break_glass`, approved on the spot and carried out by the worker like any other;
its `break_glass.used` audit event mails every member of the policy's required groups at once.

The model page asks for a confirmation before the move: `break_glass_preview` refuses as the move
would, and says which version goes where and what holds the target now (the API and the CLI move at
once).

Each use is counted per user: at most `QUORUM_BREAK_GLASS_PER_DAY` in 24 hours, so that it does
not become the normal path; and nobody breaks glass to carry out their own open request.

The move skips every gate (metric and evidence): each is evaluated and recorded "skipped: break
glass", and the ratification shows them. When the ratifying quorum cannot be reached without the
person breaking glass (a required group has too few other members), the form says so before the
move (`ratification_warnings`) and staff are mailed at once with what to fix
(`break_glass.unratifiable`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from registry.targets import Target

from ..audit import chain
from ..decisions import counting, opening
from ..decisions.deciding import decide
from ..errors import (
    BreakGlassLimit,
    CommentRequired,
    DuplicateRequest,
    NotAllowed,
    QuorumError,
    SelfApprovalNotAllowed,
)
from ..models import ApprovalPolicy, Decision, RequestKind, TransitionRequest
from ..policies.matching import policies_loaded, policy_as_spec, policy_for
from ..policies.spec import BreakGlassSpec, parse_target

RATE_WINDOW = timedelta(hours=24)


def break_glass_targets(model: str, user: User) -> list[str]:
    """The targets of `model` that `user` may break glass for: those whose deciding policy has a
    `break_glass` section naming one of the user's groups. A fixed number of queries."""
    # Matching reads only names, patterns and targets: one query, no relations.
    policies = list(ApprovalPolicy.objects.only("name", "model_patterns", "targets", "break_glass"))
    with_break_glass = [p for p in policies if p.break_glass]
    if not with_break_glass:
        return []
    mine = set(user.groups.values_list("name", flat=True))
    targets = []
    for target in dict.fromkeys(t for p in with_break_glass for t in p.targets):
        try:
            # The most specific policy decides, whether or not it allows breaking glass.
            deciding = policy_for(model, target, policies=policies)
        except QuorumError:  # no policy, or two tied: nobody may
            continue
        if deciding.break_glass and mine & set(deciding.break_glass["groups"]):
            targets.append(target)
    return targets


@dataclass(frozen=True)
class BreakGlassPreview:
    """What a break-glass move would do, for the page's confirmation before it: `version` of
    `model` to `target`, and what holds `target` now (`holders`, newest first, from the mirror).
    `replaces`: the move takes the target from them (an alias, or a stage its policy archives);
    otherwise they keep a stage beside the version."""

    model: str
    version: int
    target: str
    reason: str
    holders: list[int]
    replaces: bool
    groups: list[str]  # the user's break-glass groups that allow the move
    spec: BreakGlassSpec

    @property
    def replacing(self) -> str:
        """What the move does to the holders, as the end of the confirmation's sentence "Move
        fraud v4 → Production now…": ", replacing v3", "; nothing holds Production now", ", beside
        v3 (…)", or nothing for a target no version holds (None, Archived)."""
        held = " and ".join(f"v{n}" for n in self.holders)
        if not Target.parse(self.target).has_holder:
            return ""
        if not self.holders:
            return f"; nothing holds {self.target} now"
        if self.replaces:
            return f", replacing {held}"
        return f", beside {held} (the policy does not archive the versions in {self.target})"

    @property
    def ratify_within(self) -> str:
        """As the policy file writes it: "1h"."""
        return self.spec.as_document()["ratify_within"]


def break_glass_preview(
    *, model: str, version: int | str, target: str, user: User, reason: str
) -> BreakGlassPreview:
    """What `break_glass_move` with these arguments would do, without doing it; refuses as it
    would (the reason, the policy, the groups, an open request, the limit, the version)."""
    reason = reason.strip()
    if not reason:
        raise CommentRequired("Say why you break glass: the reason is required and is audited.")
    parsed = parse_target(target)
    policy = policy_for(model, target)
    spec = policy_as_spec(policy)
    if spec.break_glass is None:
        raise NotAllowed(f"The policy {policy.name!r} does not allow breaking glass for {target}.")
    mine = set(user.groups.filter(name__in=spec.break_glass.groups).values_list("name", flat=True))
    if not mine:
        raise NotAllowed(
            f"Only members of {' or '.join(spec.break_glass.groups)} may break glass for "
            f"{model} → {target}."
        )
    own = (
        TransitionRequest.objects.open()
        .filter(version__model__name=model, version__version=_number(version), target=target)
        .first()
    )
    if own is not None and own.requester_id == user.pk:
        raise SelfApprovalNotAllowed(
            f"You requested #{own.pk} yourself: breaking glass would approve your own request. "
            "Ask another member to break glass, or wait for its quorum."
        )
    if own is not None:
        raise DuplicateRequest(
            f"Request #{own.pk} for this move is open: vote on it, or have it cancelled first."
        )
    limit = settings.QUORUM_BREAK_GLASS_PER_DAY
    used = TransitionRequest.objects.filter(
        kind=RequestKind.BREAK_GLASS,
        requester=user,
        created_at__gte=timezone.now() - RATE_WINDOW,
    ).count()
    if used >= limit:
        raise BreakGlassLimit(
            f"You broke glass {used} times in the last 24 hours, the most allowed "
            f"(QUORUM_BREAK_GLASS_PER_DAY={limit}). Request a promotion instead."
        )
    candidate = opening.move_candidate(model, version, target, lock=False)
    holders = opening.target_holders(candidate.model, target, exclude=candidate.pk)
    return BreakGlassPreview(
        model=model,
        version=candidate.version,
        target=target,
        reason=reason,
        holders=list(holders.values_list("version", flat=True)),
        replaces=parsed.is_alias or (spec.archive_existing and parsed.archive_existing_applies),
        groups=sorted(mine),
        spec=spec.break_glass,
    )


@transaction.atomic
def break_glass_move(
    *, model: str, version: int | str, target: str, user: User, reason: str
) -> TransitionRequest:
    """Moves `version` of `model` to `target` at once, for a member of the policy's break-glass
    groups, with a mandatory `reason`. Refusals change nothing."""
    # The limit is counted (in the preview) under a lock on the person's row, held until this
    # move commits: two moves of the same person at the same instant would otherwise both count
    # the same number and both pass.
    User.objects.select_for_update().get(pk=user.pk)
    preview = break_glass_preview(
        model=model, version=version, target=target, user=user, reason=reason
    )
    request = opening.request_create(
        model=model,
        version=version,
        target=target,
        requester=user,
        comment=preview.reason,
        kind=RequestKind.BREAK_GLASS,
    )
    chain.record(
        "break_glass.used",
        actor=user,
        request=request,
        details={
            "reason": preview.reason,
            "groups": preview.groups,
            "ratify_within": preview.ratify_within,
            "on_unratified": preview.spec.on_unratified,
            "baseline": request.baseline.version if request.baseline else None,
        },
    )
    decide(request, Decision.APPROVED, actor=user, reason=f"Break glass by {user.get_username()}")
    if shortfall := ratification_shortfall(request.policy_snapshot, user):
        chain.record(
            "break_glass.unratifiable",
            actor="system",
            request=request,
            details={
                "problem": shortfall.problem,
                "fix": shortfall.fix,
                "groups": shortfall.groups,
            },
        )
    return request


@dataclass(frozen=True)
class Shortfall:
    """Why a ratification cannot pass without the person who broke glass, and what fixes it."""

    problem: str
    fix: str
    groups: list[str]


def ratification_shortfall(snapshot: dict, breaker: User) -> Shortfall | None:
    """Whether the ratification of a break-glass move sized as `snapshot` can pass without
    `breaker` (who may not ratify their own move unless the policy allows self-approval), each
    person counting once; None when it can. A query per required group."""
    needs = [(r["group"], r["approvals"]) for r in snapshot.get("require", [])]
    members = {
        group: set(
            User.objects.filter(groups__name=group, is_active=True).values_list(
                "username", flat=True
            )
        )
        for group, _ in needs
    }
    if not snapshot.get("allow_self_approval"):
        for names in members.values():
            names.discard(breaker.get_username())
    missing = counting.shortfall(needs, members)
    if not missing:
        return None
    short = [group for group, needed in needs if len(members[group]) < needed]
    groups = short or [group for group, _ in needs]
    words = "; ".join(
        f"{group} needs {needed} and has {len(members[group])} member(s) besides "
        f"{breaker.get_username()}"
        for group, needed in needs
        if group in groups
    )
    return Shortfall(
        problem=f"{missing} of its sign-offs have nobody to give them ({words}).",
        fix=f"add members to {' and '.join(groups)} (Django admin or the policy file's "
        "`groups:`), or ratify by hand as staff.",
        groups=groups,
    )


def ratification_warnings(model: str, user: User, targets: list[str]) -> dict[str, str]:
    """For the form: per target `user` may break glass for, why its ratification could not
    pass without them ("" when it can), sized on the policy's `require` (an escalation may ask
    more once the version is known)."""
    policies = policies_loaded()
    warnings = {}
    for target in targets:
        spec = policy_as_spec(policy_for(model, target, policies=policies))
        shortfall = ratification_shortfall(spec.model_dump(mode="json"), user)
        if shortfall is not None:
            warnings[target] = (
                f"Its ratification cannot pass without you: {shortfall.problem} "
                f"Staff will be told at once to {shortfall.fix}"
            )
    return warnings


def _number(version: int | str) -> int | None:
    try:
        return int(str(version).strip())
    except ValueError:
        return None
