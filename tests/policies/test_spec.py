"""A policy file's problems (reviews/policies/spec.py, yaml_reader.py, database_checks.py): each
names its place, all are reported at once and nothing changes; and the limits on durations,
thresholds, sizes and YAML that would cost far more than its size."""

from __future__ import annotations

import io
import math
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.db import connection

from reviews.errors import PolicyInvalid, Problem
from reviews.models import ApprovalPolicy, AuditEvent, PolicyGate
from reviews.policies.loading import policies_export, policies_load
from reviews.policies.matching import policy_as_spec, policy_for
from tests.policy_files import POLICY_FILE_EXAMPLE as EXAMPLE
from tests.policy_files import policy_problems as problems_of

pytestmark = pytest.mark.django_db


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
