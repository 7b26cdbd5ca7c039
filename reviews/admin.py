"""The Django admin: approver groups and their members, policies, requests, votes, the audit trail.

A policy saved here passes the same validation as a policy file (`reviews.policies`), each problem
shown next to the field it concerns. Requests change only through `reviews.services` (the admin
actions call it); votes and audit events are read-only. Every change made here is appended to the
audit chain with the admin as actor.
"""

from __future__ import annotations

from typing import get_args

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.db import transaction
from django.forms.models import BaseInlineFormSet
from pydantic import ValidationError

from . import audit, services
from .api_auth import token_revoke
from .errors import QuorumError
from .models import (
    ApiToken,
    ApprovalPolicy,
    AuditEvent,
    PolicyGate,
    PolicyRequirement,
    TransitionRequest,
    Vote,
)
from .policies import policy_as_spec
from .policy_spec import GateSpec, PolicySpec, format_duration, policy_problems

User = get_user_model()

GATE_OPS = get_args(GateSpec.model_fields["op"].annotation)


class PolicyFields(PolicySpec):
    """A policy's own fields, validated before its requirements: those come from the inline."""

    require: list = []  # type: ignore[assignment]


def _message(item) -> str:
    return item["msg"].removeprefix("Value error, ")


def _comma_list(text: str) -> list[str]:
    # A trailing comma or a doubled one is a slip, not an empty pattern.
    return [part.strip() for part in text.split(",") if part.strip()]


def _other_policies(policy: ApprovalPolicy) -> list[PolicySpec]:
    others = ApprovalPolicy.objects.exclude(pk=policy.pk).prefetch_related(
        "requirements__group", "gates"
    )
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
        initial="7d", help_text="A pending request expires after this long: 7d, 12h or 30m."
    )

    class Meta:
        model = ApprovalPolicy
        fields = [
            "name",
            "model_patterns",
            "targets",
            "allow_self_approval",
            "expires_after",
            "archive_existing",
            "rejections_needed",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["model_patterns"] = ", ".join(self.instance.model_patterns)
            self.initial["targets"] = ", ".join(self.instance.targets)
            self.initial["expires_after"] = format_duration(self.instance.expires_after)

    def clean_model_patterns(self) -> list[str]:
        return _comma_list(self.cleaned_data["model_patterns"])

    def clean_targets(self) -> list[str]:
        return _comma_list(self.cleaned_data["targets"])

    def clean_expires_after(self):
        try:
            return PolicySpec.parse_duration(self.cleaned_data["expires_after"])
        except ValueError as error:
            raise forms.ValidationError(str(error)) from error

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        data = {spec: cleaned[field] for spec, field in POLICY_FIELDS.items()}
        try:
            fields = PolicyFields.model_validate(data)
        except ValidationError as error:
            for item in error.errors():
                self.add_error(POLICY_FIELDS[item["loc"][0]], _message(item))
            return cleaned
        # Without requirements only the targets and ties with other policies can be wrong.
        for problem in policy_problems(fields, _other_policies(self.instance)):
            place, _, message = problem.partition(": ")
            self.add_error("targets" if place.startswith("targets") else None, message)
        return cleaned


class RequirementFormSet(BaseInlineFormSet):
    """Checks the requirements as the policy file does: a group must have enough members."""

    def clean(self):
        super().clean()
        if any(self.errors):
            return
        rows = [
            form for form in self.forms if form.cleaned_data and not self._should_delete_form(form)
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
            problems = [
                (item["loc"][1:], _message(item))
                for item in error.errors()
                if item["loc"][0] == "require"
            ]
        else:
            problems = []
            for problem in policy_problems(spec, _other_policies(self.instance)):
                place, _, message = problem.partition(": ")
                if place.startswith("require["):
                    index, _, field = place.removeprefix("require[").partition("].")
                    problems.append(((int(index), field), message))
        whole = []
        for loc, message in problems:
            if len(loc) == 2 and loc[1] in ("group", "approvals"):
                rows[loc[0]].add_error(loc[1], message)
            else:
                whole.append(message)
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

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            GateSpec.model_validate({field: cleaned.get(field) for field in GATE_FIELDS})
        except ValidationError as error:
            for item in error.errors():
                field = item["loc"][0] if item["loc"] else None
                self.add_error(field if field in self.fields else None, _message(item))
        return cleaned


class PolicyGateInline(admin.TabularInline):
    model = PolicyGate
    form = PolicyGateForm
    fields = GATE_FIELDS
    extra = 0
    verbose_name = "metric gate"
    verbose_name_plural = "metric gates (give a value, or a baseline delta vs the current holder)"


def _record_policy(action: str, policy: ApprovalPolicy, user) -> None:
    policy = ApprovalPolicy.objects.prefetch_related("requirements__group", "gates").get(
        pk=policy.pk
    )
    audit.record(action, actor=user, details=policy_as_spec(policy).model_dump(mode="json"))


@admin.register(ApprovalPolicy)
class ApprovalPolicyAdmin(admin.ModelAdmin):
    form = ApprovalPolicyForm
    inlines = [PolicyRequirementInline, PolicyGateInline]
    list_display = ["name", "models", "target_list", "sign_offs", "expires", "updated_at"]
    search_fields = ["name"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("requirements__group")

    @admin.display(description="models")
    def models(self, policy):
        return ", ".join(policy.model_patterns)

    @admin.display(description="targets")
    def target_list(self, policy):
        return ", ".join(policy.targets)

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
        if not change:
            _record_policy("policy.create", form.instance, request.user)
        elif form.has_changed() or any(formset.has_changed() for formset in formsets):
            _record_policy("policy.edit", form.instance, request.user)

    def delete_model(self, request, obj):
        _record_policy("policy.delete", obj, request.user)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for policy in queryset:
                self.delete_model(request, policy)


# -- requests, votes, audit --------------------------------------------------------------------


class ReadOnlyAdmin(admin.ModelAdmin):
    """Viewable by staff with the view permission; written only by the review engine."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(TransitionRequest)
class TransitionRequestAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "model_name",
        "version_number",
        "target",
        "requester",
        "decision",
        "execution",
        "created_at",
        "expires_at",
    ]
    list_filter = ["decision", "execution", "version__model__name"]
    list_select_related = ["version__model", "requester"]
    search_fields = ["version__model__name", "requester__username"]
    date_hierarchy = "created_at"
    actions = ["retry_failed", "cancel_pending"]

    @admin.display(description="model", ordering="version__model__name")
    def model_name(self, obj):
        return obj.version.model.name

    @admin.display(description="version", ordering="version__version")
    def version_number(self, obj):
        return obj.version.version

    def has_transition_permission(self, request):
        # The change permission allows acting on requests through the services, never editing.
        return request.user.has_perm("reviews.change_transitionrequest")

    @admin.action(description="Retry failed execution", permissions=["transition"])
    def retry_failed(self, request, queryset):
        self._each(request, queryset, services.transition_retry, "Re-queued")

    @admin.action(description="Cancel pending request", permissions=["transition"])
    def cancel_pending(self, request, queryset):
        self._each(request, queryset, services.request_cancel, "Cancelled")

    def _each(self, request, queryset, action, done_label: str) -> None:
        """Runs a service per request, each in its own transaction: one refusal stops no other."""
        done = []
        for pk in queryset.order_by("pk").values_list("pk", flat=True):
            try:
                action(request_id=pk, user=request.user)
            except QuorumError as error:
                self.message_user(request, f"#{pk}: {error}", messages.ERROR)
            else:
                done.append(f"#{pk}")
        if done:
            self.message_user(request, f"{done_label} {', '.join(done)}.", messages.SUCCESS)


@admin.register(Vote)
class VoteAdmin(ReadOnlyAdmin):
    list_display = ["id", "request", "user", "decision", "stale", "created_at"]
    list_filter = ["decision", "stale"]
    list_select_related = ["request__version__model", "user"]
    search_fields = ["user__username", "request__version__model__name"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["sequence", "created_at", "actor", "action", "model_name", "version"]
    list_filter = ["action"]
    search_fields = ["actor", "model_name"]

    def changelist_view(self, request, extra_context=None):
        # A full scan of the chain, in batches of a bounded size: time grows with the history,
        # memory does not. Fine for an admin page; `manage.py verify_audit` is the check to
        # schedule.
        extra_context = {**(extra_context or {}), "audit_verification": audit.verify()}
        return super().changelist_view(request, extra_context=extra_context)


# -- approver groups and their members ---------------------------------------------------------


def _usernames(users) -> set[str]:
    return {user.get_username() for user in users}


class GroupMembersForm(forms.ModelForm):
    users = forms.ModelMultipleChoiceField(
        label="Members",
        queryset=User.objects.order_by("username"),
        required=False,
        widget=FilteredSelectMultiple("members", is_stacked=False),
    )

    class Meta:
        model = Group
        fields = ["name", "users", "permissions"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["users"] = list(self.instance.user_set.values_list("pk", flat=True))

    def clean_users(self):
        users = self.cleaned_data["users"]
        if self.instance.pk:
            # The file's rule, seen from the group: no policy may ask more than it can get.
            active = sum(1 for user in users if user.is_active)
            for requirement in self.instance.requirements.select_related("policy"):
                if requirement.approvals > active:
                    raise forms.ValidationError(
                        f"Policy {requirement.policy.name!r} needs {requirement.approvals} "
                        f"approvals from this group, which would have {active} active "
                        f"member{'s' if active != 1 else ''}."
                    )
        return users


admin.site.unregister(Group)


@admin.register(Group)
class ApproverGroupAdmin(GroupAdmin):
    form = GroupMembersForm
    list_display = ["name", "member_count"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("user_set")

    @admin.display(description="members")
    def member_count(self, group):
        return len(group.user_set.all())

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        group = form.instance
        before = _usernames(group.user_set.all())
        group.user_set.set(form.cleaned_data["users"])
        after = _usernames(form.cleaned_data["users"])
        if not change:
            audit.record("group.create", actor=request.user, details={"group": group.name})
        elif set(form.changed_data) - {"users"}:
            audit.record(
                "group.edit",
                actor=request.user,
                details={
                    "group": group.name,
                    "changed": sorted(set(form.changed_data) - {"users"}),
                },
            )
        _record_membership(request.user, group.name, added=after - before, removed=before - after)

    def delete_model(self, request, obj):
        members = sorted(_usernames(obj.user_set.all()))
        audit.record(
            "group.delete", actor=request.user, details={"group": obj.name, "members": members}
        )
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for group in queryset:
                self.delete_model(request, group)


def _record_membership(actor, group: str, *, added: set[str], removed: set[str]) -> None:
    if added or removed:
        audit.record(
            "group.members",
            actor=actor,
            details={"group": group, "added": sorted(added), "removed": sorted(removed)},
        )


admin.site.unregister(User)


@admin.register(User)
class AuditedUserAdmin(UserAdmin):
    """Membership can also change from a user's page: it is recorded the same way."""

    def save_related(self, request, form, formsets, change):
        before = set(form.instance.groups.values_list("name", flat=True)) if change else set()
        super().save_related(request, form, formsets, change)
        after = set(form.instance.groups.values_list("name", flat=True))
        username = form.instance.get_username()
        for group in sorted(after - before):
            _record_membership(request.user, group, added={username}, removed=set())
        for group in sorted(before - after):
            _record_membership(request.user, group, added=set(), removed={username})


# -- API tokens ----------------------------------------------------------------------------------


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    """Tokens are issued by `manage.py create_api_token` (the secret is shown only there) and
    revoked here; revoking is audited."""

    list_display = ["prefix", "name", "user", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    list_select_related = ["user"]
    search_fields = ["name", "prefix", "user__username"]
    actions = ["revoke"]

    def has_revoke_permission(self, request):
        return request.user.has_perm("reviews.change_apitoken")

    @admin.action(description="Revoke selected tokens", permissions=["revoke"])
    def revoke(self, request, queryset):
        revoked = [
            pk
            for pk in queryset.order_by("pk").values_list("pk", flat=True)
            if token_revoke(token_id=pk, actor=request.user)
        ]
        self.message_user(
            request,
            f"Revoked {len(revoked)} token{'s' if len(revoked) != 1 else ''}.",
            messages.SUCCESS,
        )
