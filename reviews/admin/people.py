"""Approver groups and their members: membership changes, from either side, are audited.

A group's members are edited on the group's page; a form refuses to leave a group with fewer
active members than a policy asks of it. Groups managed by the identity provider
(QUORUM_OIDC_GROUP_MAP) are marked as such and their members are not edited here, on the
group's page or a user's: they follow each person's groups at their next sign-in.

Usernames are shown as model names are (`registry.names`): one that hides characters or mixes
look-alike scripts is marked in the users list and spelled out in the members picker.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.forms import UserChangeForm
from django.contrib.auth.models import Group
from django.db import transaction

from identity.mapping import managed_group_names, managed_message
from registry import names

from ..audit import chain
from ..models import ApprovalPolicy
from .policies import warn_overlaps

User = get_user_model()


def _usernames(users) -> set[str]:
    return {user.get_username() for user in users}


class PeopleField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj) -> str:
        return names.as_text(obj.get_username())


class GroupMembersForm(forms.ModelForm):
    users = PeopleField(
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
        name = self.instance.name if self.instance.pk else self.cleaned_data.get("name")
        if name in managed_group_names():
            before = set(self.instance.user_set.all()) if self.instance.pk else set()
            if set(users) != before:
                raise forms.ValidationError(managed_message(name))
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
    list_display = ["name", "member_count", "managed_by"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("user_set")

    @admin.display(description="members")
    def member_count(self, group):
        return len(group.user_set.all())

    @admin.display(description="members managed by")
    def managed_by(self, group):
        return "identity provider" if group.name in managed_group_names() else "Quorum"

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        if obj is not None and obj.name in managed_group_names():
            form.base_fields["users"].disabled = True
            form.base_fields["users"].help_text = managed_message(obj.name)
        return form

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        group = form.instance
        before = _usernames(group.user_set.all())
        group.user_set.set(form.cleaned_data["users"])
        after = _usernames(form.cleaned_data["users"])
        if not change:
            chain.record("group.create", actor=request.user, details={"group": group.name})
        elif set(form.changed_data) - {"users"}:
            chain.record(
                "group.edit",
                actor=request.user,
                details={
                    "group": group.name,
                    "changed": sorted(set(form.changed_data) - {"users"}),
                },
            )
        _record_membership(request.user, group.name, added=after - before, removed=before - after)
        if after - before:  # a new member may now be in two groups a policy requires
            policies = ApprovalPolicy.objects.filter(requirements__group=group).distinct()
            warn_overlaps(request, policies)

    def delete_model(self, request, obj):
        members = sorted(_usernames(obj.user_set.all()))
        chain.record(
            "group.delete", actor=request.user, details={"group": obj.name, "members": members}
        )
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for group in queryset:
                self.delete_model(request, group)


def _record_membership(actor, group: str, *, added: set[str], removed: set[str]) -> None:
    if added or removed:
        chain.record(
            "group.members",
            actor=actor,
            details={"group": group, "added": sorted(added), "removed": sorted(removed)},
        )


admin.site.unregister(User)


class ManagedGroupsUserChangeForm(UserChangeForm):
    def clean_groups(self):
        groups = self.cleaned_data["groups"]
        managed = managed_group_names()
        before = set(self.instance.groups.filter(name__in=managed)) if self.instance.pk else set()
        after = {group for group in groups if group.name in managed}
        for group in sorted(before ^ after, key=lambda g: g.name):
            raise forms.ValidationError(managed_message(group.name))
        return groups


@admin.register(User)
class AuditedUserAdmin(UserAdmin):
    """Membership can also change from a user's page: it is recorded the same way."""

    form = ManagedGroupsUserChangeForm
    list_display = ["person", "email", "first_name", "last_name", "is_staff"]

    @admin.display(description="username", ordering="username")
    def person(self, user):
        return names.as_html(user.get_username(), of="person")

    def save_related(self, request, form, formsets, change):
        before = set(form.instance.groups.values_list("name", flat=True)) if change else set()
        super().save_related(request, form, formsets, change)
        after = set(form.instance.groups.values_list("name", flat=True))
        username = form.instance.get_username()
        for group in sorted(after - before):
            _record_membership(request.user, group, added={username}, removed=set())
        for group in sorted(before - after):
            _record_membership(request.user, group, added=set(), removed={username})
        if after - before:
            policies = ApprovalPolicy.objects.filter(requirements__group__name__in=after - before)
            warn_overlaps(request, policies.distinct())
