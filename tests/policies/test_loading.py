"""Loading policy files (reviews/policies/loading.py): groups, policies, requirements and gates
into the database and back out losslessly, what a load changes and audits, dry runs, the
load_policies and export_policies commands, and the warning when groups share members."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management import CommandError, call_command

from reviews.models import ApprovalPolicy, AuditEvent
from reviews.policies.loading import policies_export, policies_load
from reviews.policies.spec import parse_policy_file
from tests.policy_files import POLICY_FILE_EXAMPLE as EXAMPLE

pytestmark = pytest.mark.django_db


def test_example_file_loads_groups_policies_requirements_and_gates(people):
    report = policies_load(text=EXAMPLE)

    assert report.created == ["production", "staging"]
    assert set(report.groups_created) == {"ml-leads", "data-science"}
    production = ApprovalPolicy.objects.get(name="production")
    assert production.targets == ["Production", "@champion"]
    assert production.expires_after == timedelta(days=7)
    assert production.archive_existing and not production.allow_self_approval
    assert [(r.group.name, r.approvals) for r in production.requirements.all()] == [
        ("ml-leads", 1),
        ("data-science", 2),
    ]
    assert [r.group.name for r in production.requesters.all()] == ["data-science", "ml-leads"]
    assert not ApprovalPolicy.objects.get(name="staging").requesters.exists()
    assert [
        (g.metric, g.op, g.value, g.baseline_delta, g.kind) for g in production.gates.all()
    ] == [
        ("accuracy", ">=", 0.8, None, "required"),
        ("f1", ">=", None, -0.01, "required"),
        ("accuracy", ">", 0.97, None, "auto_approve"),
    ]
    assert set(
        Group.objects.get(name="data-science").user_set.values_list("username", flat=True)
    ) == {
        "bob",
        "carol",
        "dave",
    }


def test_export_then_load_is_a_lossless_round_trip(people):
    policies_load(text=EXAMPLE)
    exported = policies_export()

    report = policies_load(text=exported)

    assert report.unchanged == ["production", "staging"]
    assert report.created == report.changed == report.removed == []
    assert policies_export() == exported
    assert parse_policy_file(exported) == parse_policy_file(EXAMPLE)


def test_out_of_band_defaults_to_flag_and_revert_loads_and_exports(people):
    policies_load(text=EXAMPLE)
    assert set(ApprovalPolicy.objects.values_list("out_of_band", flat=True)) == {"flag"}
    assert "out_of_band" not in policies_export()  # the default stays implicit

    reverting = EXAMPLE.replace(
        "archive_existing: true", "archive_existing: true\n    out_of_band: revert"
    )
    report = policies_load(text=reverting)

    assert report.changed == ["production"]
    assert ApprovalPolicy.objects.get(name="production").out_of_band == "revert"
    assert ApprovalPolicy.objects.get(name="staging").out_of_band == "flag"
    exported = policies_export()
    assert "out_of_band: revert" in exported
    assert policies_load(text=exported).unchanged == ["production", "staging"]


def test_loading_changes_and_removes_what_the_file_no_longer_says(people):
    policies_load(text=EXAMPLE)
    edited = EXAMPLE.replace("approvals: 2}", "approvals: 3}")
    edited = edited[: edited.index("  - name: staging")]

    report = policies_load(text=edited)

    assert report.changed == ["production"] and report.removed == ["staging"]
    assert not ApprovalPolicy.objects.filter(name="staging").exists()
    requirement = ApprovalPolicy.objects.get(name="production").requirements.get(
        group__name="data-science"
    )
    assert requirement.approvals == 3


def test_a_load_that_changes_something_is_audited_and_one_that_does_not_is_not(people):
    policies_load(text=EXAMPLE, actor="alice", source="policies.yaml")
    policies_load(text=EXAMPLE)

    (event,) = AuditEvent.objects.filter(action="policy.load")
    assert event.actor == "alice"
    assert event.details["created"] == ["production", "staging"]
    assert event.details["source"] == "policies.yaml" and len(event.details["sha256"]) == 64


def test_dry_run_reports_and_changes_nothing(people):
    report = policies_load(text=EXAMPLE, dry_run=True)

    assert report.created == ["production", "staging"]
    assert report.changed_anything
    assert not ApprovalPolicy.objects.exists() and not Group.objects.exists()


def test_the_report_says_whether_a_load_changed_anything(people):
    assert policies_load(text=EXAMPLE).changed_anything
    assert not policies_load(text=EXAMPLE).changed_anything
    assert policies_load(
        text=EXAMPLE.replace("[bob, carol, dave]", "[bob, carol]")
    ).changed_anything


def test_load_policies_command_prints_changes_and_errors(people, tmp_path, capsys):
    path = tmp_path / "policies.yaml"
    path.write_text(EXAMPLE)

    call_command("load_policies", str(path), "--dry-run")
    assert "dry run: nothing was changed" in capsys.readouterr().out
    assert not ApprovalPolicy.objects.exists()

    call_command("load_policies", str(path))
    out = capsys.readouterr().out
    assert "created policy production" in out and "2 created, 0 changed, 0 removed" in out

    path.write_text(EXAMPLE.replace("targets: [Staging]", "targets: [Prod]"))
    with pytest.raises(CommandError, match=r"invalid, nothing was changed:\n  policies\[1\]"):
        call_command("load_policies", str(path))

    with pytest.raises(CommandError, match="cannot read"):
        call_command("load_policies", str(tmp_path / "missing.yaml"))


OVERLAPPING = EXAMPLE.replace("data-science: [bob, carol, dave]", "data-science: [alice, bob]")


def test_groups_sharing_members_load_with_a_warning_naming_groups_and_people(people):
    report = policies_load(text=OVERLAPPING.replace("[alice, bob]", "[alice, bob, carol]"))

    assert report.warnings == [
        "policy 'production': ml-leads and data-science share alice. A person counts for one "
        "group only, so its sign-offs need 3 different people."
    ]
    assert ApprovalPolicy.objects.count() == 2  # a warning, not a refusal


def test_the_warning_says_when_distinct_members_cannot_fill_the_policy(people):
    report = policies_load(text=OVERLAPPING)

    assert report.warnings == [
        "policy 'production': ml-leads and data-science share alice. A person counts for one "
        "group only, so its sign-offs need 3 different people, and their members can fill "
        "only 2 of those places (no request can reach quorum until the groups change)."
    ]


def test_groups_without_common_members_load_without_a_warning(people):
    assert policies_load(text=EXAMPLE).warnings == []


def test_load_policies_command_prints_overlap_warnings(people, tmp_path, capsys):
    path = tmp_path / "policies.yaml"
    path.write_text(OVERLAPPING)

    call_command("load_policies", str(path), "--dry-run")

    captured = capsys.readouterr()
    assert "warning: policy 'production': ml-leads and data-science share alice" in captured.err
    assert "dry run: nothing was changed" in captured.out


def test_export_policies_command_writes_yaml(people, capsys):
    policies_load(text=EXAMPLE)

    call_command("export_policies")

    assert parse_policy_file(capsys.readouterr().out) == parse_policy_file(EXAMPLE)


def test_the_example_policy_file_loads_once_with_if_empty(capsys):
    for name in ["alice", "bob", "carol", "dave", "frank"]:
        User.objects.create_user(name)
    example = str(settings.BASE_DIR / "docs" / "policies.example.yaml")

    call_command("load_policies", "--if-empty", example)
    ApprovalPolicy.objects.filter(name="staging").delete()  # an admin's edit
    call_command("load_policies", "--if-empty", example)

    assert set(ApprovalPolicy.objects.values_list("name", flat=True)) == {"production", "archive"}
    assert "policies exist already" in capsys.readouterr().out
