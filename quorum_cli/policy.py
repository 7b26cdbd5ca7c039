"""`quorum policy explain` and `quorum policy test`: policies as their authors check them.

    quorum policy explain MODEL VERSION --target T   which policy decides and why, what a request
                                                     would need, each gate's verdict, rollback and
                                                     break glass
    quorum policy test CASES.yaml --policies FILE    every case of CASES checked against FILE

Both ask the Quorum server, which answers with the functions that open requests (the CLI installs
with `requests` alone, so it cannot hold the review engine; a copy here would drift from it).
`test` sends both files and the server evaluates them without storing anything, touching neither
its database's policies nor MLflow.

Exit codes: explain 0 when explained, 1 when no policy covers the target or two tie (it cannot
be requested there); test 0 when every case passes, 1 with a line per failing case; both 2 for
usage, authentication, an unreachable server, a refusal, and (test) a malformed cases or policy
file, each problem with its place.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Protocol

from quorum_cli.client import Client, CliError

EXIT_OK = 0
EXIT_NO = 1
EXIT_USAGE = 2
# Refusals that answer the question "which policy": none, or two tied.
UNREQUESTABLE = {"no_policy", "ambiguous_policy"}


class Printer(Protocol):
    as_json: bool

    def line(self, text: str, *, stamp: bool = False) -> None: ...


def _groups(require: list[dict]) -> str:
    return " and ".join(f"{r['approvals']} of {r['group']}" for r in require) or "nobody"


def explain_lines(answer: dict) -> list[str]:
    """The explanation as a person reads it."""
    lines = [
        f"{answer['model']} version {answer['version']} -> {answer['target']}: "
        f"policy {answer['policy']!r}",
        f"  why: {answer['policy_reason']}",
        "  compared with: "
        + (f"v{answer['baseline']}" if answer["baseline"] else "nothing (no holder yet)"),
        f"  policy asks: {_groups(answer['policy_require'])}",
    ]
    for rule in answer["escalation"]:
        lines.append(f"  escalation {rule['when']}: {rule['reason']}")
    lines.append(f"  needs: {_groups(answer['require'])}")
    for gate in answer["gates"]:
        lines.append(f"  gate {gate['verdict']}: {gate['reason']} ({gate['kind']})")
    lines.append(f"  outcome: {answer['outcome_words']}")
    who = " or ".join(answer["requesters"]) or "anyone signed in"
    lines.append(f"  may request: {who}" + ("" if answer["may_request"] else " (not you)"))
    if answer["already_at_target"]:
        lines.append(f"  note: the version is already at {answer['target']}")
    rollback = answer["rollback"]
    lines.append(
        f"  rollback: {'available' if rollback['available'] else 'not available'}: "
        f"{rollback['reason']}; needs {_groups(rollback['require'])} ({rollback['rules']})"
    )
    glass = answer["break_glass"]
    lines.append(
        f"  break glass: {'available' if glass['available'] else 'not available'}: "
        f"{glass['reason']}"
    )
    return lines


def cmd_explain(client: Client, args: argparse.Namespace, out: Printer) -> int:
    try:
        answer = client.explain_policy(args.model, args.version, args.target)
    except CliError as error:
        if error.code in UNREQUESTABLE:
            print(f"quorum: {error}", file=sys.stderr, flush=True)
            return EXIT_NO
        raise
    if out.as_json:
        print(json.dumps(answer, indent=2, sort_keys=True), flush=True)
    else:
        for line in explain_lines(answer):
            out.line(line)
    return EXIT_OK


def _read(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CliError(f"cannot read the {what} {path}: {error}") from None


def cmd_test(client: Client, args: argparse.Namespace, out: Printer) -> int:
    cases, policies = _read(args.cases, "cases file"), _read(args.policies, "policy file")
    answer = client.test_policies(policies, cases)
    if out.as_json:
        print(json.dumps(answer, indent=2, sort_keys=True), flush=True)
    names = {"policies": args.policies, "cases": args.cases}
    for problem in answer["problems"]:
        out.line(
            f"{names[problem['file']]}: {problem['place'] or '(the file)'}: {problem['message']}"
        )
    if answer["problems"]:
        return EXIT_USAGE
    for case in answer["cases"]:
        if case["passed"]:
            out.line(f"ok    {case['name']}")
        else:
            for difference in case["differences"]:
                out.line(f"FAIL  {case['name']}: {difference}")
    failed = sum(not case["passed"] for case in answer["cases"])
    out.line(f"{len(answer['cases']) - failed} passed, {failed} failed")
    return EXIT_NO if failed else EXIT_OK


def add_parser(commands, parents: list[argparse.ArgumentParser]) -> None:
    """`quorum policy explain|test`, with the common options (`--url`, `--token`, `--json`)."""
    policy = commands.add_parser(
        "policy", help="explain a policy, or test a policy file against cases"
    )
    actions = policy.add_subparsers(dest="policy_command", required=True, metavar="ACTION")
    explain = actions.add_parser(
        "explain",
        parents=parents,
        help="which policy would decide a request, why, and what it would need",
        description="Which policy would decide a request for VERSION of MODEL to reach TARGET "
        "and why, the approvals it would need (escalations included), each gate's verdict now, "
        "and whether rollback and break glass are available there. Creates nothing. Exits 0 "
        "when explained, 1 when no policy covers the target (or two tie), 2 on errors.",
    )
    explain.add_argument("model")
    explain.add_argument("version")
    explain.add_argument("--target", required=True, help="Production, Staging, Archived or @alias")
    explain.set_defaults(run=cmd_explain)
    test = actions.add_parser(
        "test",
        parents=parents,
        help="check a policy file against a file of cases",
        description="Check every case of CASES (model, target, evidence, metrics and what is "
        "expected; docs/policies.md) against the policy file, evaluated by the Quorum server "
        "without storing anything. Exits 0 when every case passes, 1 with a line per failing "
        "case, 2 for a malformed file (with the problem's place) and other errors.",
    )
    test.add_argument("cases", help="the cases file (YAML)")
    test.add_argument("--policies", required=True, metavar="FILE", help="the policy file (YAML)")
    test.set_defaults(run=cmd_test)
