"""Groups the identity provider manages, in policy files (reviews/policies/database_checks.py):
the file may not set their members, and every section may name them before anyone from them has
signed in."""

from __future__ import annotations

import pytest
import yaml
from django.contrib.auth.models import Group

from reviews.models import ApprovalPolicy
from reviews.policies.loading import policies_export, policies_load
from reviews.policies.matching import policy_as_spec
from tests.policy_files import POLICY_FILE_EXAMPLE as EXAMPLE
from tests.policy_files import policy_problems as problems_of

pytestmark = pytest.mark.django_db


# -- groups managed by the identity provider -------------------------------------------------


@pytest.fixture
def provider_groups(settings):
    """ml-leads' members come from the identity provider's `idp-leads` group."""
    settings.OIDC_ISSUER = "https://idp.example.com"
    settings.QUORUM_OIDC_GROUP_MAP = "idp-leads=ml-leads"


def test_a_file_that_sets_a_managed_groups_members_is_refused(people, provider_groups):
    problems = problems_of(EXAMPLE)
    assert any(
        p.startswith("groups.ml-leads:") and "managed by the identity provider" in p
        for p in problems
    ), problems
    assert not ApprovalPolicy.objects.exists()


def test_policies_may_require_a_managed_group_before_anyone_from_it_signed_in(
    people, provider_groups
):
    text = EXAMPLE.replace("  ml-leads: [alice]\n", "")
    policies_load(text=text)

    assert Group.objects.get(name="ml-leads").user_set.count() == 0
    assert ApprovalPolicy.objects.get(name="production").requirements.count() == 2
    exported = policies_export()
    assert exported.startswith("# ml-leads: members come from the identity provider")
    assert set(yaml.safe_load(exported)["groups"]) == {"data-science"}
    policies_load(text=exported)  # the export loads again


# Each section of a policy that names groups, with `{group}` where the group goes, and where a
# problem with it is reported.
GROUP_SECTIONS = {
    "require": ("require: [{{group: {group}, approvals: 2}}]", "require[0].group"),
    "rollback": (
        "rollback: {{require: [{{group: {group}, approvals: 2}}]}}",
        "rollback.require[0].group",
    ),
    "escalate": (
        "escalate: [{{when: signature_breaking, require: [{{group: {group}, approvals: 2}}]}}]",
        "escalate[0].require[0].group",
    ),
    "requesters": ("requesters: [{group}]", "requesters[0]"),
    "break_glass": ("break_glass: {{groups: [{group}]}}", "break_glass.groups[0]"),
}


def policy_naming(section: str, group: str) -> str:
    """A file whose one policy names `group` in `section` (and requires data-science)."""
    line = GROUP_SECTIONS[section][0].format(group=group)
    require = "" if section == "require" else "    require: [{group: data-science}]\n"
    return (
        "groups:\n  data-science: [bob, carol, dave]\n"
        "policies:\n  - name: production\n    models: ['*']\n    targets: [Production]\n"
        f"{require}    {line}\n"
    )


@pytest.mark.parametrize("section", GROUP_SECTIONS)
def test_a_managed_group_is_known_in_every_section_and_an_unknown_one_in_none(
    people, provider_groups, section
):
    # ml-leads is the provider's, has no member and no row yet: every section accepts it, with
    # more approvals than it has members today (they arrive as people sign in).
    assert not Group.objects.filter(name="ml-leads").exists()
    report = policies_load(text=policy_naming(section, "ml-leads"))
    assert report.created == ["production"]
    assert policy_as_spec(ApprovalPolicy.objects.get()).model_dump(mode="json")[section]

    assert problems_of(policy_naming(section, "risk-board")) == [
        f"policies[0].{GROUP_SECTIONS[section][1]}: unknown group 'risk-board'"
    ]
