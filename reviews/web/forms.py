"""Forms of the review pages: a vote, a promotion request (among the targets
`reviews.decisions.promotion.target_options` offers), the inbox and audit filters, and the
analytics window."""

from __future__ import annotations

from typing import Any

from django import forms

from registry.models import Stage

from ..decisions.promotion import TargetOption
from ..insight.analytics import DEFAULT_WINDOW, WINDOWS
from ..models import COMMENT_MAX, Decision, Execution, VoteChoice

REJECT_NEEDS_COMMENT = "Say why you reject: the requester needs it to fix the model."


class VoteForm(forms.Form):
    decision = forms.ChoiceField(choices=VoteChoice.choices)
    comment = forms.CharField(required=False, max_length=COMMENT_MAX, widget=forms.Textarea)
    # The decision state the page showed: a vote sent from a page that is out of date is refused
    # with the reason, its text kept (`reviews.decisions.deciding.stale_page_refusal`).
    seen_decision = forms.ChoiceField(required=False, choices=Decision.choices)

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        data["comment"] = data.get("comment", "").strip()
        if data.get("decision") == VoteChoice.REJECT and not data["comment"]:
            self.add_error("comment", REJECT_NEEDS_COMMENT)
        return data


class CommentForm(forms.Form):
    body = forms.CharField(
        max_length=COMMENT_MAX,
        widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={"required": "Write something before posting a comment."},
    )
    seen_decision = forms.ChoiceField(required=False, choices=Decision.choices)


class CancelForm(forms.Form):
    reason = forms.CharField(
        required=False,
        max_length=COMMENT_MAX,
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "Why (optional)"}),
    )


# -- promotion requests -----------------------------------------------------------------------


class PromotionForm(forms.Form):
    target = forms.ChoiceField()
    comment = forms.CharField(
        required=False,
        max_length=COMMENT_MAX,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "What changed, what you checked"}),
    )
    # Required by the engine when this version was rejected for the chosen target before.
    rejection_answer = forms.CharField(required=False, max_length=COMMENT_MAX)

    def __init__(self, *args, options: list[TargetOption], **kwargs):
        super().__init__(*args, **kwargs)
        requestable = [o.target for o in options if not o.unavailable]
        # Targets this version was rejected for before: a request for one needs an answer.
        self.answer_targets = [o.target for o in options if o.rejections and not o.unavailable]
        target = self.fields["target"]
        assert isinstance(target, forms.ChoiceField)  # `fields` holds copies of those above
        target.choices = [(t, t) for t in requestable]
        if len(requestable) > 0 and not self.is_bound:
            # Production when it is on offer: the promotion people come here for.
            self.initial["target"] = (
                Stage.PRODUCTION if Stage.PRODUCTION in requestable else requestable[0]
            )
        target.error_messages["invalid_choice"] = (
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
        action = self.fields["action"]
        assert isinstance(action, forms.ChoiceField)  # `fields` holds copies of those above
        action.choices = [("", "any action"), *((a, a) for a in actions)]

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
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


class AnalyticsForm(forms.Form):
    """The analytics page's window (30 or 90 days, 30 when not given) and format."""

    days = forms.TypedChoiceField(
        required=False,
        coerce=int,
        empty_value=DEFAULT_WINDOW,  # type: ignore[arg-type]  # the coerced value, an int
        choices=[(str(days), f"last {days} days") for days in WINDOWS],
        error_messages={"invalid_choice": "Choose the last 30 or the last 90 days."},
    )
    format = forms.ChoiceField(
        required=False,
        choices=[("", "page"), ("csv", "CSV")],
        error_messages={"invalid_choice": "The format is csv, or none for the page."},
    )
