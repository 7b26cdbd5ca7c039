"""Forms of the review pages: a vote, a promotion request (with the targets a version may be
requested for and what each would get), and the inbox and audit filters."""

from __future__ import annotations

from dataclasses import dataclass, field

from django import forms

from registry.models import ModelVersion, Stage

from . import gates, services
from .errors import AmbiguousPolicy, NoPolicy
from .models import (
    COMMENT_MAX,
    ApprovalPolicy,
    Decision,
    Execution,
    TransitionRequest,
    VoteChoice,
)
from .policies import policies_loaded, policy_as_spec, policy_for

REJECT_NEEDS_COMMENT = "Say why you reject: the requester needs it to fix the model."


class VoteForm(forms.Form):
    decision = forms.ChoiceField(choices=VoteChoice.choices)
    comment = forms.CharField(required=False, max_length=COMMENT_MAX, widget=forms.Textarea)

    def clean(self):
        data = super().clean()
        data["comment"] = data.get("comment", "").strip()
        if data.get("decision") == VoteChoice.REJECT and not data["comment"]:
            self.add_error("comment", REJECT_NEEDS_COMMENT)
        return data


# -- promotion requests -----------------------------------------------------------------------


@dataclass
class TargetOption:
    """One target a version might be requested for, and what a request would get there."""

    target: str
    policy: ApprovalPolicy | None = None
    spec: dict = field(default_factory=dict)
    baseline: ModelVersion | None = None
    gates: list[gates.GateResult] = field(default_factory=list)
    # Why it cannot be requested now ("already here", an open request, two tied policies).
    unavailable: str = ""
    open_request: TransitionRequest | None = None

    @property
    def requirements(self) -> str:
        return " and ".join(f"{r['approvals']} of {r['group']}" for r in self.spec["require"])

    @property
    def expires_after(self) -> str:
        """The expiry in words: "7 days", "12 hours", "1 day 12 hours"."""
        if self.policy is None:
            return ""
        minutes = int(self.policy.expires_after.total_seconds() // 60)
        days, minutes = divmod(minutes, 24 * 60)
        hours, minutes = divmod(minutes, 60)
        parts = [(days, "day"), (hours, "hour"), (minutes, "minute")]
        return " ".join(f"{n} {unit}{'s' if n != 1 else ''}" for n, unit in parts if n)

    @property
    def rejected_at_once(self) -> bool:
        return bool(gates.required_failures(self.gates))

    @property
    def approved_at_once(self) -> bool:
        return gates.auto_approves(self.gates)


def _target_order(target: str) -> tuple[int, str]:
    stages = [Stage.STAGING, Stage.PRODUCTION, Stage.ARCHIVED, Stage.NONE]
    if target in stages:
        return (stages.index(target), "")
    return (len(stages), target)


def target_options(version: ModelVersion, user=None) -> list[TargetOption]:
    """Every stage and alias some policy covers for this version's model, in a stable order;
    those `user` may not request (the policy names other requester groups) are unavailable.

    `version.model` must be loaded. Costs the policies' queries once (and the user's groups once,
    when a policy names requesters), then one query per target for its current holder: bounded
    by the policy set, not by the registry.
    """
    model = version.model
    policies = policies_loaded()
    restricted = user is not None and any(p.requesters.all() for p in policies)
    groups = set(user.groups.values_list("name", flat=True)) if restricted else set()
    named = {target for policy in policies for target in policy.targets}
    open_requests = {
        r.target: r for r in TransitionRequest.objects.open().filter(version=version).order_by()
    }
    options = []
    for target in sorted(named, key=_target_order):
        try:
            policy = policy_for(model.name, target, policies=policies)
        except NoPolicy:
            continue
        except AmbiguousPolicy as error:
            options.append(TargetOption(target=target, unavailable=str(error)))
            continue
        option = TargetOption(
            target=target, policy=policy, spec=policy_as_spec(policy).model_dump(mode="json")
        )
        refusal = user and services.requester_refusal(
            user, option.spec["requesters"], target=target, groups=groups
        )
        if services.is_at_target(version, target):
            option.unavailable = f"v{version.version} is already at {target}."
        elif refusal:
            option.unavailable = refusal
        elif target in open_requests:
            option.open_request = open_requests[target]
            option.unavailable = f"Request #{option.open_request.pk} for {target} is still open."
        else:
            option.baseline = services.target_holder(model, target, exclude=version.pk)
            option.gates = gates.evaluate(
                option.spec["gates"],
                version.metrics or {},
                option.baseline.metrics if option.baseline else None,
            )
        options.append(option)
    return options


class PromotionForm(forms.Form):
    target = forms.ChoiceField()
    comment = forms.CharField(
        required=False,
        max_length=COMMENT_MAX,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "What changed, what you checked"}),
    )

    def __init__(self, *args, options: list[TargetOption], **kwargs):
        super().__init__(*args, **kwargs)
        requestable = [o.target for o in options if not o.unavailable]
        self.fields["target"].choices = [(t, t) for t in requestable]
        if len(requestable) > 0 and not self.is_bound:
            # Production when it is on offer: the promotion people come here for.
            self.initial["target"] = (
                Stage.PRODUCTION if Stage.PRODUCTION in requestable else requestable[0]
            )
        self.fields["target"].error_messages["invalid_choice"] = (
            "Pick one of the targets listed: %(value)s is not covered by a policy for this "
            "version, or already has an open request."
        )


# -- filters ----------------------------------------------------------------------------------

FAILED = "failed"  # approved, but the transition failed: what an admin filters for
STATE_CHOICES = [("", "any state"), *Decision.choices, (FAILED, "transition failed")]


class InboxFilterForm(forms.Form):
    model = forms.CharField(required=False, max_length=256)
    state = forms.ChoiceField(required=False, choices=STATE_CHOICES)

    def apply(self, requests):
        """`requests` narrowed to the valid filters (invalid ones are ignored, and shown)."""
        data = self.cleaned_data if self.is_valid() else {}
        if model := (data.get("model") or "").strip():
            requests = requests.filter(version__model__name__icontains=model)
        state = data.get("state")
        if state == FAILED:
            requests = requests.filter(decision=Decision.APPROVED, execution=Execution.FAILED)
        elif state:
            requests = requests.filter(decision=state)
        return requests


class AuditFilterForm(forms.Form):
    model = forms.CharField(required=False, max_length=256)
    actor = forms.CharField(required=False, max_length=150)
    action = forms.ChoiceField(required=False)
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, actions: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["action"].choices = [("", "any action"), *((a, a) for a in actions)]

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            self.add_error("until", "The end date is before the start date.")
        return data

    def apply(self, events):
        data = self.cleaned_data if self.is_valid() else {}
        if model := (data.get("model") or "").strip():
            events = events.filter(model_name__icontains=model)
        if actor := (data.get("actor") or "").strip():
            events = events.filter(actor__icontains=actor)
        if data.get("action"):
            events = events.filter(action=data["action"])
        if data.get("since"):
            events = events.filter(created_at__date__gte=data["since"])
        if data.get("until"):
            events = events.filter(created_at__date__lte=data["until"])
        return events
