"""Approval policies in the admin, validated as a policy file is.

A policy saved here passes the same validation as a policy file (`reviews.policies.spec`), each
problem shown next to the field it concerns; every create, edit and delete is appended to the audit
chain with the admin as actor.
"""

from __future__ import annotations

from typing import Any, get_args

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.contrib.auth.models import Group
from django.db import transaction
from django.forms.formsets import DELETION_FIELD_NAME
from django.forms.models import BaseInlineFormSet
from pydantic import ValidationError

from ..audit import chain
from ..models import ApprovalPolicy, PolicyGate, PolicyRequirement
from ..policies.database_checks import policy_problems
from ..policies.loading import overlap_warnings, set_requesters
from ..policies.matching import policy_as_spec, with_relations
from ..policies.spec import MAX_DURATION, GateSpec, PolicySpec, format_duration, validation_problems

GATE_OPS = get_args(GateSpec.model_fields["op"].annotation)


class PolicyFields(PolicySpec):
    """A policy's own fields, validated before its requirements: those come from the inline."""

    require: list = []


def _comma_list(text: str) -> list[str]:
    # A trailing comma or a doubled one is a slip, not an empty pattern.
    return [part.strip() for part in text.split(",") if part.strip()]


def _other_policies(policy: ApprovalPolicy) -> list[PolicySpec]:
    others = with_relations(ApprovalPolicy.objects.exclude(pk=policy.pk))
    return [policy_as_spec(other) for other in others]


# A policy's own fields: PolicySpec's name -> the model's (and the policy form's) name.
POLICY_FIELDS = {
    "name": "name",
    "models": "model_patterns",
    "targets": "targets",
    "allow_self_approval": "allow_self_approval",
    "expires_after": "expires_after",
    "archive_existing": "archive_existing",
    "rejections_needed": "rejections_needed",
    "out_of_band": "out_of_band",
}


def _spec_data(policy: ApprovalPolicy) -> dict:
    return {spec: getattr(policy, field) for spec, field in POLICY_FIELDS.items()}


# -- policies ----------------------------------------------------------------------------------


class ApprovalPolicyForm(forms.ModelForm):
    model_patterns = forms.CharField(
        label="Models",
        help_text="Comma-separated globs on registered model names, e.g. <code>*</code>, "
        "<code>fraud-*</code>, <code>churn-model</code>. An exact name beats a glob.",
    )
    targets = forms.CharField(
        help_text="Comma-separated stages (Staging, Production, Archived, None) and aliases "
        "written with @, e.g. <code>Production, @champion</code>.",
    )
    expires_after = forms.CharField(
        initial="7d",
        help_text="A pending request expires after this long: 7d, 12h or 30m "
        f"(at most {format_duration(MAX_DURATION)}).",
    )
    requesters = forms.ModelMultipleChoiceField(
        label="Who may request",
        queryset=Group.objects.order_by("name"),
        required=False,
        widget=FilteredSelectMultiple("groups", is_stacked=False),
        help_text="Only members of these groups may request what this policy covers. "
        "None chosen: any signed-in user.",
    )

    class Meta:
        model = ApprovalPolicy
        fields = [
            "name",
            "model_patterns",
            "targets",
            "requesters",
            "allow_self_approval",
            "expires_after",
            "archive_existing",
            "rejections_needed",
            "out_of_band",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["model_patterns"] = ", ".join(self.instance.model_patterns)
            self.initial["targets"] = ", ".join(self.instance.targets)
            self.initial["expires_after"] = format_duration(self.instance.expires_after)
            self.initial["requesters"] = [r.group_id for r in self.instance.requesters.all()]

    def clean_model_patterns(self) -> list[str]:
        return _comma_list(self.cleaned_data["model_patterns"])

    def clean_targets(self) -> list[str]:
        return _comma_list(self.cleaned_data["targets"])

    def clean_expires_after(self):
        try:
            return PolicySpec.parse_duration(self.cleaned_data["expires_after"])
        except ValueError as error:
            raise forms.ValidationError(str(error)) from error

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        if self.errors:
            return cleaned
        data = {spec: cleaned[field] for spec, field in POLICY_FIELDS.items()}
        data["requesters"] = [group.name for group in cleaned["requesters"]]
        try:
            fields = PolicyFields.model_validate(data)
        except ValidationError as error:
            for problem in validation_problems(error):
                self.add_error(POLICY_FIELDS[str(problem.location[0])], problem.message)
            return cleaned
        # Without requirements only the targets and ties with other policies can be wrong.
        for problem in policy_problems(fields, _other_policies(self.instance)):
            on_targets = problem.within("targets") is not None
            self.add_error("targets" if on_targets else None, problem.message)
        return cleaned


class RequirementFormSet(BaseInlineFormSet):
    """Checks the requirements as the policy file does: a group must have enough members."""

    def clean(self):
        super().clean()
        if any(self.errors):
            return
        rows = [
            form
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get(DELETION_FIELD_NAME, False)
        ]
        if not rows:
            raise forms.ValidationError("A policy needs at least one required group.")
        # The policy form has already written its cleaned values onto the instance.
        data = _spec_data(self.instance) | {
            "require": [
                {
                    "group": row.cleaned_data["group"].name,
                    "approvals": row.cleaned_data["approvals"],
                }
                for row in rows
            ]
        }
        try:
            spec = PolicySpec.model_validate(data)
        except ValidationError as error:
            # The policy form reports problems with the policy's own fields.
            problems = validation_problems(error)
        else:
            # Only the requirements' problems are kept here, and those never involve the other
            # policies (the policy form checks ties with them): no need to load them again.
            problems = policy_problems(spec, others=[])
        whole = []
        for problem in problems:
            if (own := problem.within("require")) is None:
                continue
            match own.location:
                case (int(row), "group" | "approvals" as field):
                    rows[row].add_error(field, own.message)
                case _:
                    whole.append(own.message)
        if whole:
            raise forms.ValidationError(whole)


class PolicyRequirementInline(admin.TabularInline):
    model = PolicyRequirement
    formset = RequirementFormSet
    fields = ["group", "approvals"]
    extra = 1
    verbose_name = "required sign-off"
    verbose_name_plural = "required sign-offs (every line must be met)"


GATE_FIELDS = ("metric", "op", "value", "baseline_delta", "kind")


class PolicyGateForm(forms.ModelForm):
    op = forms.ChoiceField(choices=[(op, op) for op in GATE_OPS])

    class Meta:
        model = PolicyGate
        fields = GATE_FIELDS

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        if self.errors:
            return cleaned
        try:
            GateSpec.model_validate({field: cleaned.get(field) for field in GATE_FIELDS})
        except ValidationError as error:
            for problem in validation_problems(error):
                field = str(problem.location[0]) if problem.location else None
                self.add_error(field if field in self.fields else None, problem.message)
        return cleaned


class PolicyGateInline(admin.TabularInline):
    model = PolicyGate
    form = PolicyGateForm
    fields = GATE_FIELDS
    extra = 0
    verbose_name = "metric gate"
    verbose_name_plural = "metric gates (give a value, or a baseline delta vs the current holder)"


def warn_overlaps(request, policies) -> None:
    """Saved all the same, but the admin hears when required groups share members."""
    for warning in overlap_warnings(with_relations(policies)):
        messages.warning(request, warning[0].upper() + warning[1:])


def _record_policy(action: str, policy: ApprovalPolicy, user) -> None:
    policy = with_relations(ApprovalPolicy.objects.all()).get(pk=policy.pk)
    chain.record(action, actor=user, details=policy_as_spec(policy).model_dump(mode="json"))


@admin.register(ApprovalPolicy)
class ApprovalPolicyAdmin(admin.ModelAdmin):
    form = ApprovalPolicyForm
    inlines = [PolicyRequirementInline, PolicyGateInline]
    list_display = [
        "name",
        "models",
        "target_list",
        "requested_by",
        "sign_offs",
        "expires",
        "updated_at",
    ]
    search_fields = ["name"]

    def get_queryset(self, request):
        return with_relations(super().get_queryset(request))

    @admin.display(description="models")
    def models(self, policy):
        return ", ".join(policy.model_patterns)

    @admin.display(description="targets")
    def target_list(self, policy):
        return ", ".join(policy.targets)

    @admin.display(description="who may request")
    def requested_by(self, policy):
        return ", ".join(r.group.name for r in policy.requesters.all()) or "anyone signed in"

    @admin.display(description="sign-offs")
    def sign_offs(self, policy):
        return " and ".join(str(r) for r in policy.requirements.all())

    @admin.display(description="expires after", ordering="expires_after")
    def expires(self, policy):
        return format_duration(policy.expires_after)

    def save_formset(self, request, form, formset, change):
        formset.save(commit=False)
        for obj in formset.deleted_objects:
            obj.delete()
        # Positions follow the rows' order on the page, as they follow the file's order.
        kept = [f for f in formset.forms if f.cleaned_data and f not in formset.deleted_forms]
        for position, row in enumerate(kept):
            row.instance.policy = form.instance
            row.instance.position = position
            row.instance.save()

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        set_requesters(form.instance, list(form.cleaned_data["requesters"]))
        if not change:
            _record_policy("policy.create", form.instance, request.user)
        elif form.has_changed() or any(formset.has_changed() for formset in formsets):
            _record_policy("policy.edit", form.instance, request.user)
        warn_overlaps(request, ApprovalPolicy.objects.filter(pk=form.instance.pk))

    def delete_model(self, request, obj):
        _record_policy("policy.delete", obj, request.user)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for policy in queryset:
                self.delete_model(request, policy)
