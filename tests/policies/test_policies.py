"""Policies as code: the YAML format, its error messages, loading, export and matching."""

from __future__ import annotations

import io
import math
import textwrap
from datetime import timedelta

import pytest
import yaml
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management import CommandError, call_command
from django.db import connection

from registry.models import RegisteredModel
from reviews.errors import AmbiguousPolicy, NoPolicy, PolicyInvalid, Problem
from reviews.models import ApprovalPolicy, AuditEvent, PolicyGate
from reviews.policies.loading import policies_export, policies_load
from reviews.policies.matching import policy_as_spec, policy_for
from reviews.policies.spec import parse_policy_file

pytestmark = pytest.mark.django_db

EXAMPLE = textwrap.dedent(
    """
    groups:
      ml-leads: [alice]
      data-science: [bob, carol, dave]
    policies:
      - name: production
        models: ["*"]
        targets: [Production, "@champion"]
        requesters: [data-science, ml-leads]
        require:
          - {group: ml-leads, approvals: 1}
          - {group: data-science, approvals: 2}
        allow_self_approval: false
        expires_after: 7d
        archive_existing: true
        gates:
          - {metric: accuracy, op: ">=", value: 0.80, kind: required}
          - {metric: f1, op: ">=", baseline_delta: -0.01, kind: required}
          - {metric: accuracy, op: ">", value: 0.97, kind: auto_approve}
      - name: staging
        models: ["*"]
        targets: [Staging]
        require: [{group: data-science, approvals: 1}]
    """
)


@pytest.fixture
def people():
    return {name: User.objects.create_user(name) for name in ["alice", "bob", "carol", "dave"]}


def problems_of(text: str) -> list[str]:
    """The problems as the load_policies command writes them, `place: message`."""
    with pytest.raises(PolicyInvalid) as caught:
        policies_load(text=text)
    return [str(problem) for problem in caught.value.problems]


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


def test_problems_carry_their_location_as_data(people):
    text = EXAMPLE.replace("{group: data-science, approvals: 2}", "{group: nobody, approvals: 2}")

    with pytest.raises(PolicyInvalid) as caught:
        policies_load(text=text)

    (problem,) = caught.value.problems
    assert problem == Problem(("policies", 0, "require", 1, "group"), "unknown group 'nobody'")
    assert problem.within("policies", 0) == Problem(
        ("require", 1, "group"), "unknown group 'nobody'"
    )
    assert problem.within("policies", 1) is None
    assert str(caught.value) == "policies[0].require[1].group: unknown group 'nobody'"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ("{group: data-science, approvals: 2}", "{group: datascience, approvals: 2}"),
            "policies[0].require[1].group: unknown group 'datascience'",
        ),
        (
            ("ml-leads: [alice]", "ml-leads: alice"),
            "groups.ml-leads: must be a list of usernames, got a string",
        ),
        (
            ("targets: [Staging]", "targets: [Prod]"),
            "policies[1].targets[0]: 'Prod' is not a stage (None, Staging, Production, Archived)"
            " or an @alias",
        ),
        (
            ("{group: ml-leads, approvals: 1}", "{group: ml-leads, approvals: 3}"),
            "policies[0].require[0].approvals: 3 but group 'ml-leads' has 1 member",
        ),
        (
            ("[alice]", "[alice, zed]"),
            "groups.ml-leads[1]: unknown user 'zed'",
        ),
        (
            ("expires_after: 7d", "expires_after: a week"),
            "policies[0].expires_after: 'a week' is not a duration like 7d, 12h or 30m",
        ),
        (
            ('op: ">=", value: 0.80', 'op: "=>", value: 0.80'),
            "policies[0].gates[0].op: Input should be '>=', '>', '<=', '<' or '=='",
        ),
        (
            ("baseline_delta: -0.01,", "value: 0.5, baseline_delta: -0.01,"),
            "policies[0].gates[1]: give exactly one of value (a fixed threshold) or baseline_delta",
        ),
        (
            ("allow_self_approval: false", "allow_self_aproval: false"),
            "policies[0].allow_self_aproval: unknown field",
        ),
        (
            ('models: ["*"]\n    targets: [Staging]', 'models: "*"\n    targets: [Staging]'),
            "policies[1].models: must be a list of model name globs, got a string",
        ),
        (
            ("name: staging", "name: production"),
            "policies[1].name: duplicate policy name 'production' (also policies[0])",
        ),
        (
            ('"@champion"', '"@latest"'),
            "policies[0].targets[1]: '@latest' is not a stage",
        ),
        (
            ("requesters: [data-science, ml-leads]", "requesters: [data-science, mlleads]"),
            "policies[0].requesters[1]: unknown group 'mlleads'",
        ),
        (
            ("requesters: [data-science, ml-leads]", "requesters: [ml-leads, ml-leads]"),
            "policies[0].requesters[1]: group 'ml-leads' is listed twice",
        ),
        (
            ("requesters: [data-science, ml-leads]", "requesters: data-science"),
            "policies[0].requesters: must be a list of group names, got a string",
        ),
        # A key given twice: YAML would keep the last silently.
        (
            ("ml-leads: [alice]", "ml-leads: [alice]\n  ml-leads: [bob]"),
            "groups.ml-leads: given twice, on line 3 and on line 4",
        ),
        (
            ("    expires_after: 7d\n", "    expires_after: 7d\n    expires_after: 1d\n"),
            "policies[0].expires_after: given twice, on line 14 and on line 15",
        ),
        (
            (
                '{metric: accuracy, op: ">=", value: 0.80,',
                '{metric: accuracy, op: ">=", value: 0.80, value: 0.1,',
            ),
            "policies[0].gates[0].value: given twice on line 17, at columns 38 and 51",
        ),
        (
            ("policies:\n", "policies: []\npolicies:\n"),
            "policies: given twice, on line 5 and on line 6",
        ),
        (
            ("archive_existing: true", "archive_existing: true\n    out_of_band: undo"),
            "policies[0].out_of_band: Input should be 'flag' or 'revert'",
        ),
        (
            ("archive_existing: true", "archive_existing: true\n    out_of_band: [revert]"),
            "policies[0].out_of_band: Input should be 'flag' or 'revert'",
        ),
        # What the database cannot hold.
        (("ml-leads: [alice]", f"{'g' * 151}: [alice]"), "groups.ggg"),
        (("metric: accuracy", f"metric: {'m' * 251}"), "policies[0].gates[0].metric: String"),
        (("archive_existing: true", "rejections_needed: 40000"), "policies[0].rejections_needed"),
        (("approvals: 1}", "approvals: 100000}"), "policies[0].require[0].approvals: Input"),
        (('models: ["*"]', f'models: ["{"x" * 257}"]'), "policies[0].models[0]: String"),
    ],
)
def test_each_problem_names_its_place_and_nothing_changes(people, edit, expected):
    old, new = edit
    assert old in EXAMPLE

    found = problems_of(EXAMPLE.replace(old, new, 1))

    assert any(p.startswith(expected) for p in found), found
    assert not ApprovalPolicy.objects.exists() and not Group.objects.exists()


def test_every_problem_is_reported_at_once(people):
    broken = (
        EXAMPLE.replace("datascience", "x")
        .replace("{group: data-science, approvals: 2}", "{group: nobody, approvals: 2}")
        .replace("ml-leads: [alice]", "ml-leads: [alice, zed]")
    )

    found = problems_of(broken)

    assert "groups.ml-leads[1]: unknown user 'zed'" in found
    assert "policies[0].require[1].group: unknown group 'nobody'" in found


def test_yaml_syntax_error_is_reported():
    assert problems_of("policies: [unclosed")[0].startswith("not valid YAML")


def test_a_policy_equally_specific_as_another_for_a_target_is_a_load_error(people):
    text = EXAMPLE + (
        "  - name: staging-too\n"
        "    models: ['*']\n"
        "    targets: [Staging]\n"
        "    require: [{group: data-science, approvals: 1}]\n"
    )

    found = problems_of(text)

    assert found == [
        "policies[2]: as specific as policies[1] ('staging') for models * and target Staging"
    ]


def test_globs_that_tie_on_a_known_model_are_ambiguous(people):
    RegisteredModel.objects.create(name="fraud-v2")
    text = EXAMPLE + (
        "  - name: fraud-a\n"
        "    models: ['fraud-*']\n"
        "    targets: [Staging]\n"
        "    require: [{group: data-science, approvals: 1}]\n"
        "  - name: fraud-b\n"
        "    models: ['fraud-?2']\n"
        "    targets: [Staging]\n"
        "    require: [{group: data-science, approvals: 1}]\n"
    )

    found = problems_of(text)

    assert len(found) == 1 and "'fraud-v2'" in found[0] and found[0].startswith("policies[3]")


def test_most_specific_policy_wins(people):
    policies_load(
        text=EXAMPLE
        + (
            "  - name: fraud\n"
            "    models: ['fraud-*']\n"
            "    targets: [Production]\n"
            "    require: [{group: ml-leads, approvals: 1}]\n"
            "  - name: fraud-detector\n"
            "    models: [fraud-detector]\n"
            "    targets: [Production]\n"
            "    require: [{group: ml-leads, approvals: 1}]\n"
        )
    )

    assert policy_for("churn", "Production").name == "production"
    assert policy_for("fraud-scorer", "Production").name == "fraud"
    assert policy_for("fraud-detector", "Production").name == "fraud-detector"
    assert policy_for("fraud-detector", "@champion").name == "production"
    assert policy_for("fraud-detector", "Staging").name == "staging"


def test_target_no_policy_covers_cannot_be_requested(people):
    policies_load(text=EXAMPLE)

    with pytest.raises(NoPolicy, match="No approval policy covers churn → Archived"):
        policy_for("churn", "Archived")


def test_tie_created_after_load_is_refused_at_match_time(people):
    policies_load(text=EXAMPLE)
    ApprovalPolicy.objects.create(name="other", model_patterns=["*"], targets=["Staging"])

    with pytest.raises(AmbiguousPolicy, match="equally specific"):
        policy_for("churn", "Staging")


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


# -- limits: every one refused with its place, nothing changed ----------------------------------


def test_the_same_alias_twice_is_not_a_duplicate_key(people):
    text = EXAMPLE.replace("gates:\n", "gates: &gates\n").replace(
        "require: [{group: data-science, approvals: 1}]",
        "require: [{group: data-science, approvals: 1}]\n    gates: *gates",
    )

    policies_load(text=text)

    assert ApprovalPolicy.objects.get(name="staging").gates.count() == 3


@pytest.mark.parametrize("duration", ["9999999999d", "3000000d", "366d", "8761h", "525601m"])
def test_a_duration_past_the_maximum_is_refused(people, duration):
    found = problems_of(EXAMPLE.replace("expires_after: 7d", f"expires_after: {duration}"))

    assert found == [
        f"policies[0].expires_after: '{duration}' is longer than the longest duration allowed, 365d"
    ]
    assert not ApprovalPolicy.objects.exists()


def test_the_longest_duration_loads_and_requests_under_it_open(people):
    from reviews.decisions import opening
    from tests.factories import make_model, make_version

    policies_load(text=EXAMPLE.replace("expires_after: 7d", "expires_after: 365d"))
    version = make_version(make_model("fraud"), metrics={"accuracy": 0.9, "f1": 0.9})

    request = opening.request_create(
        model="fraud", version=version.version, target="Production", requester=people["bob"]
    )

    assert abs(request.expires_at - request.created_at - timedelta(days=365)) < timedelta(minutes=1)


@pytest.mark.parametrize(
    ("threshold", "place"),
    [
        ("value: .nan", "gates[0].value"),
        ("value: .inf", "gates[0].value"),
        ("value: -.inf", "gates[0].value"),
        ("baseline_delta: .nan", "gates[0].baseline_delta"),
        ("baseline_delta: -.Inf", "gates[0].baseline_delta"),
    ],
)
def test_a_threshold_that_is_not_a_finite_number_is_refused(people, threshold, place):
    text = EXAMPLE.replace("value: 0.80", threshold, 1)

    assert f"policies[0].{place}: Input should be a finite number" in problems_of(text)
    assert not ApprovalPolicy.objects.exists()


@pytest.mark.skipif(
    connection.vendor == "sqlite", reason="SQLite stores NaN as NULL: no NaN threshold can be there"
)
def test_a_threshold_stored_before_non_finite_ones_were_refused_still_reads(people):
    policies_load(text=EXAMPLE)
    PolicyGate.objects.filter(metric="accuracy", kind="required").update(value=float("nan"))
    policy = ApprovalPolicy.objects.get(name="production")

    assert math.isnan(policy_as_spec(policy).gates[0].value)
    assert policy_for("fraud", "Production") == policy
    exported = policies_export()
    assert "value: .nan" in exported
    assert "policies[0].gates[0].value: Input should be a finite number" in problems_of(exported)


SIZE_PROBLEM = "the file has more than 1,048,576 bytes (1 MiB), the most a policy file may have"


def oversized() -> str:
    """Valid policies, then enough more to pass 1 MiB, then a YAML error nobody should reach."""
    more = "".join(
        f"  - {{name: p{i}, models: [m{i}], targets: [Staging], require: [{{group: ml-leads}}]}}\n"
        for i in range(20_000)
    )
    return EXAMPLE + more + "policies: [unclosed\n"


def test_a_file_over_1_mib_is_refused_by_its_size_alone(people):
    text = oversized()
    assert len(text.encode()) > 1024 * 1024

    assert problems_of(text) == [SIZE_PROBLEM]
    assert not ApprovalPolicy.objects.exists()


def test_load_policies_refuses_a_large_file_or_input_unread(people, tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text(oversized())

    with pytest.raises(CommandError, match=r"invalid, nothing was changed:\n  the file has more"):
        call_command("load_policies", str(path))
    with pytest.raises(CommandError, match=r"the file has more than 1,048,576 bytes"):
        call_command("load_policies", "-", stdin=io.StringIO(oversized()))
    assert not ApprovalPolicy.objects.exists()


def test_load_policies_reads_standard_input(people, capsys):
    call_command("load_policies", "-", stdin=io.StringIO(EXAMPLE))

    assert "2 created" in capsys.readouterr().out
    assert AuditEvent.objects.get(action="policy.load").details["source"] == "standard input"


def test_load_policies_refuses_a_file_that_is_not_utf8(people, tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(EXAMPLE.replace("alice", "alicé").encode("latin-1"))

    with pytest.raises(CommandError, match="is not UTF-8 text"):
        call_command("load_policies", str(path))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            # Nine levels of nine: 387 million values from a few hundred bytes.
            "a: &a [x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"{chr(98 + n)}: &{chr(98 + n)} [{', '.join([f'*{chr(97 + n)}'] * 9)}]\n"
                for n in range(8)
            )
            + "policies: [*i, *i, *i]\n",
            "aliases (*name) expand the file to more than 1,000,000 values",
        ),
        ("policies: &p [*p]\n", "an alias (*name) refers to a value that contains it"),
        ("policies: " + "[" * 5000 + "]" * 5000 + "\n", "not valid YAML"),
    ],
    ids=["alias-bomb", "self-reference", "deep-nesting"],
)
def test_yaml_that_would_cost_far_more_than_its_size_is_refused(text, expected):
    assert problems_of(text)[0].startswith(expected)


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
