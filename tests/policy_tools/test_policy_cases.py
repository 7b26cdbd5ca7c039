"""Policy cases (`reviews.policy_tools.cases`) and `manage.py test_policies`: the example
cases pass against the example policies, a wrong expectation fails naming the case and the
difference, a malformed file is refused with its place, and nothing is stored."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from reviews.models import ApprovalPolicy, AuditEvent, TransitionRequest
from reviews.policy_tools.cases import CasesInvalid, run

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
POLICIES = (ROOT / "docs" / "policies.example.yaml").read_text()
CASES = (ROOT / "docs" / "policy-cases.example.yaml").read_text()
WRONG = CASES.replace(
    "require: [{group: ml-leads, approvals: 1}, {group: data-science, approvals: 3}]\n"
    "      outcome: needs_sign_off",
    "require: [{group: ml-leads, approvals: 1}, {group: data-science, approvals: 2}]\n"
    "      outcome: needs_sign_off",
)


def case(body: str) -> str:
    return "cases:\n  - name: one\n    model: fraud-detector\n" + body


def test_the_example_cases_pass_against_the_example_policies():
    results = run(policies=POLICIES, cases=CASES)

    assert [r.differences for r in results if not r.passed] == []
    assert len(results) == 9
    assert (ApprovalPolicy.objects.count(), TransitionRequest.objects.count()) == (0, 0)
    assert AuditEvent.objects.count() == 0


def test_a_wrong_expectation_names_the_case_and_the_difference():
    assert WRONG != CASES
    failed = [r for r in run(policies=POLICIES, cases=WRONG) if not r.passed]

    assert [(r.name, r.differences) for r in failed] == [
        (
            "a breaking signature needs a third data scientist",
            [
                "require: expected 1 of ml-leads and 2 of data-science, "
                "got 1 of ml-leads and 3 of data-science"
            ],
        )
    ]


@pytest.mark.parametrize(
    ("body", "difference"),
    [
        (
            "    target: Production\n    metrics: {accuracy: 0.85, f1: 0.9}\n"
            "    expect: {gates: {accuracy: failed}}\n",
            "gate accuracy: expected failed, got passed (accuracy 0.8500 >= 0.8000)",
        ),
        (
            "    target: Production\n    expect: {gates: {latency: passed}}\n",
            "gate latency: expected passed, but the policy 'production' has no gate on it",
        ),
        (
            "    target: Staging\n    metrics: {accuracy: 0.5}\n    baseline: {accuracy: 0.5}\n"
            "    evidence: {signature_breaking: unknown}\n"
            "    expect: {escalations: [], outcome: auto_approved}\n",
            "escalations: expected none, got ['signature_breaking']",
        ),
        (
            "    target: '@shadow'\n    expect: {policy: production}\n",
            "policy: expected 'production', got none (No approval policy covers fraud-detector "
            "→ @shadow, so it cannot be requested. Ask an admin to add one.)",
        ),
        (
            "    target: '@shadow'\n    expect: {outcome: needs_sign_off}\n",
            "no policy decides: No approval policy covers fraud-detector → @shadow, so it cannot "
            "be requested. Ask an admin to add one.",
        ),
    ],
)
def test_each_kind_of_difference_is_said(body, difference):
    (result,) = run(policies=POLICIES, cases=case(body))

    assert difference in result.differences


@pytest.mark.parametrize(
    ("policies", "cases", "problem"),
    [
        (POLICIES, "cases: []\n", ("cases", "cases: List should have at least 1 item")),
        (POLICIES, "- a list\n", ("cases", "the file must be a mapping with `cases`")),
        (
            POLICIES,
            case("    target: Prod\n    expect: {policy: x}\n"),
            ("cases", "cases[0].target: 'Prod' is not a stage"),
        ),
        (
            POLICIES,
            case("    target: Staging\n    expect: {gates: {accuracy: fine}}\n"),
            ("cases", "cases[0].expect.gates.accuracy: Input should be 'passed'"),
        ),
        (
            POLICIES,
            case("    target: Staging\n    target: Production\n    expect: {policy: x}\n"),
            ("cases", "cases[0].target: given twice, on line 4 and on line 5"),
        ),
        (
            POLICIES,
            case(
                "    target: Staging\n    baseline: {}\n"
                "    evidence: {signature_breaking: true, signature_changed: false}\n"
                "    expect: {policy: staging}\n"
            ),
            ("cases", "cases[0].evidence: a breaking signature is a changed one"),
        ),
        (
            POLICIES.replace("approvals: 2}", "approvals: two}"),
            CASES,
            ("policies", "policies[0].require[1].approvals: Input should be a valid integer"),
        ),
    ],
)
def test_a_malformed_file_is_refused_with_the_problems_place(policies, cases, problem):
    with pytest.raises(CasesInvalid) as refused:
        run(policies=policies, cases=cases)

    said = [(file, str(p)) for file, p in refused.value.problems]
    assert any(file == problem[0] and text.startswith(problem[1]) for file, text in said), said


def test_the_command_passes_quietly_on_the_example(capsys):
    call_command(
        "test_policies",
        str(ROOT / "docs" / "policy-cases.example.yaml"),
        policies=str(ROOT / "docs" / "policies.example.yaml"),
    )

    assert "9 passed, 0 failed" in capsys.readouterr().out
    assert ApprovalPolicy.objects.count() == 0


def manage(tmp_path, cases: str, policies: str = POLICIES) -> subprocess.CompletedProcess:
    (tmp_path / "cases.yaml").write_text(cases)
    (tmp_path / "policies.yaml").write_text(policies)
    command = [sys.executable, str(ROOT / "manage.py"), "test_policies", "cases.yaml"]
    return subprocess.run(
        [*command, "--policies", "policies.yaml"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_command_exits_0_1_and_2(tmp_path):
    passing, failing = manage(tmp_path, CASES), manage(tmp_path, WRONG)
    malformed = manage(tmp_path, case("    target: Prod\n    expect: {policy: x}\n"))

    assert passing.returncode == 0, passing.stderr
    assert failing.returncode == 1, failing.stderr
    assert "FAIL  a breaking signature needs a third data scientist: require: expected" in (
        failing.stdout
    )
    assert "8 passed, 1 failed" in failing.stderr
    assert malformed.returncode == 2
    assert "cases.yaml: cases[0].target: 'Prod' is not a stage" in malformed.stderr
