"""Explaining a policy: which one would decide a request and why, what it would need, each
gate's verdict now, and whether rollback and break glass are available there, and to whom.

Read from the mirror and the policies, with the functions that open a request
(`reviews.decisions.explain.sized_for`, `opening.target_holder`, `opening.requester_refusal`,
`policies.matching`): nothing is created. The API's `GET /policies/explain`, `quorum policy
explain` and the version page's panel show it.
"""

from __future__ import annotations

from django.contrib.auth.models import User

from registry.holdings import holder_timeline
from registry.models import ModelVersion, RegisteredModel

from ..decisions import escalation, gates, opening
from ..decisions import explain as explain_sizing
from ..errors import UnknownVersion
from ..policies.matching import deciding_match, matches, policies_loaded, policy_as_spec
from ..policies.spec import format_duration, parse_target

OUTCOME_WORDS = {
    "rejected": "a required gate fails: the request would be rejected at once",
    "auto_approved": "every auto-approve gate passes: it would be approved without votes",
    "needs_sign_off": "it would wait for the sign-offs above",
}


def explain(*, model: str, version: int | str, target: str, user: User | None = None) -> dict:
    """Which policy would decide a request for `version` of `model` to reach `target`, and why;
    what it would need (escalations included), each gate's verdict now, and whether rollback and
    break glass are available there, to whom. Reads the mirror; creates nothing.

    Refuses as `request_create` does: unknown model or version, an invalid target, no policy or
    two tied (`NoPolicy`, `AmbiguousPolicy`).
    """
    registered, number = opening.model_and_number(model, version)
    candidate = (
        ModelVersion.objects.filter(model=registered, version=number)
        .select_related("evidence")
        .first()
    )
    if candidate is None:
        raise UnknownVersion(f"{model} has no version {number}.")
    candidate.model = registered
    target = str(parse_target(target))
    found = matches(model, target, policies_loaded())
    chosen = deciding_match(model, target, found)
    spec = policy_as_spec(chosen.policy)
    snapshot = spec.model_dump(mode="json")
    baseline = opening.target_holder(registered, target, exclude=candidate.pk)
    sizing = explain_sizing.sized_for(snapshot, candidate, baseline)
    refusal = None
    if user is not None:
        refusal = opening.requester_refusal(user, snapshot["requesters"], target=target)
    return {
        "model": model,
        "version": number,
        "target": target,
        "policy": spec.name,
        "policy_reason": policy_reason(chosen, found, model, target),
        "baseline": baseline.version if baseline else None,
        "already_at_target": opening.is_at_target(candidate, target),
        "requesters": list(spec.requesters),
        "may_request": refusal is None,
        "request_refusal": refusal or "",
        "policy_require": sizing.snapshot["policy_require"],
        "require": sizing.snapshot["require"],
        "escalation": sizing.snapshot["escalation"]["applied"],
        "evidence_unknown": _unknown(candidate, baseline),
        "gates": gates.with_verdicts([r.as_json() for r in sizing.results]),
        "outcome": sizing.outcome,
        "outcome_words": OUTCOME_WORDS[sizing.outcome],
        "expires_after": format_duration(spec.expires_after),
        "allow_self_approval": spec.allow_self_approval,
        "rollback": rollback_availability(registered, target, snapshot),
        "break_glass": break_glass_availability(snapshot),
    }


def policy_reason(chosen, found: list, model: str, target: str) -> str:
    """Why `chosen` decides (model, target): its pattern, and what it beat."""
    reason = f"{chosen.policy.name!r} covers {target} and {chosen.why}"
    others = [m for m in found if m is not chosen]
    if not others:
        return reason + f"; no other policy covers {model} → {target}."
    beaten = ", ".join(f"{m.policy.name!r} ({m.pattern!r})" for m in others)
    return (
        reason + f"; it is more specific than {beaten} (an exact name beats a glob, a longer "
        "literal start beats a shorter one)."
    )


def _unknown(candidate: ModelVersion, baseline: ModelVersion | None) -> list[str]:
    return escalation.comparison_for(candidate, baseline).unknown


def rollback_availability(registered: RegisteredModel, target: str, snapshot: dict) -> dict:
    """Whether `target` can be rolled back now (a previous holder exists), to which version, who
    may ask (the policy's requesters) and what it would need (the policy's `rollback:` section,
    else its normal rules)."""
    previous = holder_timeline(registered).previous(target)
    rules = snapshot.get("rollback")
    answer = {
        "available": previous is not None,
        "to_version": previous.version if previous else None,
        "requesters": list(snapshot["requesters"]),
        "require": rules["require"] if rules else snapshot["require"],
        "gates": bool(rules["gates"]) if rules else True,
        "rules": "the policy's rollback section" if rules else "the policy's normal rules",
    }
    if previous is None:
        answer["reason"] = f"no other version has held {target} and left it since Quorum mirrors it"
    else:
        answer["reason"] = f"v{previous.version} held {target} before"
    return answer


def break_glass_availability(snapshot: dict) -> dict:
    """Whether the policy lets anyone break glass for the target, and whom."""
    rules = snapshot.get("break_glass")
    if not rules:
        return {
            "available": False,
            "groups": [],
            "reason": f"the policy {snapshot['name']!r} has no break_glass section",
        }
    return {
        "available": True,
        "groups": list(rules["groups"]),
        "ratify_within": rules["ratify_within"],
        "on_unratified": rules["on_unratified"],
        "reason": f"members of {' or '.join(rules['groups'])} may move a version at once, "
        f"ratified by the policy's quorum within {rules['ratify_within']}",
    }
