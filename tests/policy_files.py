"""Policy files as the tests load them: the standard policies most tests run under (the `policies`
fixture loads them) and the same with rollback or break glass added, the example file the policy
tests load, and a file's problems as the `load_policies` command writes them."""

from __future__ import annotations

import textwrap

# The policies most tests run under (the `policies` fixture loads them).
STANDARD_POLICIES = """
groups:
  ml-leads: [lead]
  data-science: [scientist1, scientist2, scientist3]
policies:
  - name: production
    models: ["*"]
    targets: [Production, "@champion"]
    require:
      - {group: ml-leads, approvals: 1}
      - {group: data-science, approvals: 2}
    expires_after: 7d
    archive_existing: true
    gates:
      - {metric: accuracy, op: ">=", value: 0.80, kind: required}
      - {metric: f1, op: ">=", baseline_delta: -0.01, kind: required}
  - name: staging
    models: ["*"]
    targets: [Staging]
    require: [{group: data-science, approvals: 1}]
    gates:
      - {metric: accuracy, op: ">", value: 0.97, kind: auto_approve}
"""


def policies_with(*, rollback: bool = False, break_glass: str | None = None) -> str:
    """STANDARD_POLICIES with an `oncall: [outsider]` group and, on the production policy, a
    `rollback:` section needing one ml-leads approval and/or a `break_glass:` section for oncall
    (`break_glass`: its settings, e.g. "ratify_within: 24h, on_unratified: alert")."""
    extra = ""
    if rollback:
        extra += "    rollback: {require: [{group: ml-leads, approvals: 1}]}\n"
    if break_glass is not None:
        extra += f"    break_glass: {{groups: [oncall], {break_glass}}}\n"
    return STANDARD_POLICIES.replace(
        "  data-science: [scientist1, scientist2, scientist3]\n",
        "  data-science: [scientist1, scientist2, scientist3]\n  oncall: [outsider]\n",
    ).replace("    archive_existing: true\n", "    archive_existing: true\n" + extra)


def break_glass_policies(on_unratified: str) -> str:
    """`policies_with` a break-glass section for oncall, ratified within an hour, and
    `on_unratified` ("revert" or "alert")."""
    return policies_with(break_glass=f"ratify_within: 1h, on_unratified: {on_unratified}")


# A file with a policy for each of two targets, its groups' members named (the policy tests'
# `people` fixture creates them).
POLICY_FILE_EXAMPLE = textwrap.dedent(
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


def policy_problems(text: str) -> list[str]:
    """The problems as the load_policies command writes them, `place: message`."""
    import pytest

    from reviews.errors import PolicyInvalid
    from reviews.policies.loading import policies_load

    with pytest.raises(PolicyInvalid) as caught:
        policies_load(text=text)
    return [str(problem) for problem in caught.value.problems]
