"""A request's timeline is read from the audit log, in order, in one query, and every event the
code records reads in words: break glass and its ratification, gates by their verdict."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from registry.models import ChangeKind, Stage
from reviews.audit import chain
from reviews.conversation import comments, timeline
from reviews.decisions import deciding, opening, voting
from reviews.emergency.break_glass import break_glass_move
from reviews.emergency.ratification import ratification_open
from reviews.models import AuditEvent, Decision, Execution, TransitionRequest
from reviews.policies.loading import policies_load
from tests.factories import make_model, make_version
from tests.policy_files import policies_with

pytestmark = pytest.mark.django_db


def out_of_band(change: str, old, new, *, model: str = "fraud", version: int = 1) -> None:
    chain.record(
        "registry.out_of_band",
        actor="mlflow",
        model_name=model,
        version=version,
        details={"change": change, "old": old, "new": new},
    )


def test_timeline_tells_the_conversation_in_order(pending, requester, scientist1, lead):
    voting.vote_cast(request_id=pending.pk, user=scientist1, decision="approve", comment="ok")
    comments.comment_post(request_id=pending.pk, user=lead, body="Is the drift check done?")
    comments.comment_post(request_id=pending.pk, user=requester, body="Yes, see run 12.")
    deciding.request_cancel(request_id=pending.pk, user=requester, reason="Found a leak.")
    entries = timeline.timeline(pending)
    assert [(e.actor, e.action) for e in entries] == [
        ("requester", "request.created"),
        ("scientist1", "vote.cast"),
        ("lead", "comment.posted"),
        ("requester", "comment.posted"),
        ("requester", "request.cancelled"),
    ]
    created, vote, question, answer, cancelled = entries
    assert created.title == "Requested Production against v1 (policy production)"
    assert created.text == "Retrained."
    assert created.items[0] == "✓ accuracy 0.9000 >= 0.8000" and len(created.items) == 2
    assert vote.title == "Approved (for data-science)" and vote.text == "ok"
    assert question.text == "Is the drift check done?" and question.kind == "comment"
    assert answer.text == "Yes, see run 12."
    assert cancelled.title == "Request cancelled"
    assert cancelled.text == "Cancelled by requester: Found a leak."


def test_timeline_shows_dismissed_approvals_and_reevaluated_gates(pending, scientist1):
    voting.vote_cast(request_id=pending.pk, user=scientist1, decision="approve")
    voting.approvals_mark_stale(pending, reason="Production is now held by v3 (was v1).")
    chain.record(
        "request.reevaluated",
        actor="system",
        request=pending,
        details={"reason": "the baseline moved", "baseline": 3, "gates": pending.gate_results},
    )
    stale, reevaluated = timeline.timeline(pending)[-2:]
    assert stale.title == "Approvals dismissed: scientist1"
    assert stale.text == "Production is now held by v3 (was v1)."
    assert reevaluated.title == "Gates re-evaluated; the baseline is now v3"
    assert reevaluated.items[0] == "✓ accuracy 0.9000 >= 0.8000"


def test_timeline_shows_transition_attempts_and_their_outcome(pending):
    chain.record("transition.started", request=pending, details={"attempt": 1})
    chain.record(
        "transition.attempt_failed", request=pending, details={"attempt": 1, "error": "HTTP 503"}
    )
    chain.record("transition.done", request=pending, details={"archived_versions": [1]})
    started, failed, done = timeline.timeline(pending)[-3:]
    assert started.title == "Transition attempt started (attempt 1)"
    assert failed.title.startswith("Transition attempt failed") and failed.text == "HTTP 503"
    assert "transition-failed" in failed.kind
    assert done.title == "Transition done in MLflow"


def test_timeline_shows_out_of_band_moves_of_the_same_model_and_target_only(pending):
    out_of_band(ChangeKind.STAGE_CHANGED, Stage.PRODUCTION, Stage.ARCHIVED)
    out_of_band(ChangeKind.STAGE_CHANGED, Stage.NONE, Stage.STAGING, version=2)  # another target
    out_of_band(ChangeKind.ALIAS_ADDED, None, "champion")  # an alias, not the stage
    out_of_band(ChangeKind.STAGE_CHANGED, Stage.NONE, Stage.PRODUCTION, model="other")
    moves = [e for e in timeline.timeline(pending) if e.action == "registry.out_of_band"]
    assert [e.title for e in moves] == [
        "Changed in MLflow outside Quorum: v1 moved from Production to Archived"
    ]


def test_an_alias_requests_timeline_shows_its_aliass_out_of_band_changes(policies, requester):
    model = make_model("churn")
    make_version(model, 1, metrics={"accuracy": 0.9, "f1": 0.8})
    request = opening.request_create(
        model="churn", version=1, target="@champion", requester=requester
    )
    out_of_band(ChangeKind.ALIAS_ADDED, None, "champion", model="churn", version=1)
    out_of_band(ChangeKind.ALIAS_ADDED, None, "challenger", model="churn", version=1)
    titles = [e.title for e in timeline.timeline(request) if e.kind == "out-of-band"]
    assert titles == ["Changed in MLflow outside Quorum: v1 got alias @champion"]


def test_out_of_band_changes_before_the_request_are_not_its_history(policies, requester):
    model = make_model("fraud")
    make_version(model, 1, stage=Stage.PRODUCTION, metrics={"accuracy": 0.85, "f1": 0.80})
    make_version(model, 2, metrics={"accuracy": 0.90, "f1": 0.84})
    out_of_band(ChangeKind.STAGE_CHANGED, Stage.NONE, Stage.PRODUCTION)
    request = opening.request_create(
        model="fraud", version=2, target="Production", requester=requester
    )
    assert [e.action for e in timeline.timeline(request)] == ["request.created"]


@pytest.mark.parametrize("events", [2, 40])
def test_timeline_is_one_query_however_long(pending, lead, events, django_assert_num_queries):
    for n in range(events):
        comments.comment_post(request_id=pending.pk, user=lead, body=f"note {n}")
    out_of_band(ChangeKind.STAGE_CHANGED, Stage.PRODUCTION, Stage.ARCHIVED)
    with django_assert_num_queries(1):
        entries = timeline.timeline(pending)
    assert len(entries) == events + 2
    assert AuditEvent.objects.filter(request=pending).count() == events + 1


# -- words for every event ------------------------------------------------------------------------

# The code records some actions through a name it computes: what each such call can record.
COMPUTED_ACTIONS = {
    ("reviews/decisions/deciding.py", "f'request.{decision}'"): {
        f"request.{decision}" for decision in Decision.values if decision != Decision.PENDING
    },
}


def _literals(node: ast.expr) -> set[str] | None:
    """The strings an argument can be when the source says them: a literal, or either branch of a
    conditional expression; None otherwise."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        body, orelse = _literals(node.body), _literals(node.orelse)
        return body | orelse if body is not None and orelse is not None else None
    return None


def _passed_in(tree: ast.Module, call: ast.Call, name: str) -> set[str] | None:
    """When `name` is a parameter of the function around `call`: the literals every call of that
    function in the same file passes for it."""
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef) or call not in ast.walk(function):
            continue
        params = [arg.arg for arg in function.args.args]
        if name not in params:
            return None
        index, found = params.index(name), set()
        callers = [
            c
            for c in ast.walk(tree)
            if isinstance(c, ast.Call)
            and isinstance(c.func, ast.Name)
            and c.func.id == function.name
        ]
        for caller in callers:
            passed = caller.args[index] if index < len(caller.args) else None
            names = _literals(passed) if passed is not None else None
            if names is None:
                return None
            found |= names
        return found or None
    return None


def recorded_actions() -> tuple[set[str], list[str]]:
    """Every action the code appends to the audit chain (`chain.record`, and identity's
    `events.record`, which reviews.apps points at it), and the calls whose action the source does
    not say."""
    root = Path(__file__).resolve().parents[2]
    found: set[str] = set()
    unknown = []
    for package in ("reviews", "identity"):
        for path in sorted((root / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            where = str(path.relative_to(root))
            tree = ast.parse(path.read_text())
            constants = {
                target.id: node.value.value
                for node in tree.body
                if isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
                for target in node.targets
                if isinstance(target, ast.Name)
            }
            for call in ast.walk(tree):
                if not (
                    isinstance(call, ast.Call)
                    and isinstance(call.func, ast.Attribute)
                    and call.func.attr == "record"
                    and isinstance(call.func.value, ast.Name)
                    and call.func.value.id in ("chain", "events")
                    and call.args
                ):
                    continue
                arg = call.args[0]
                names = _literals(arg)
                if names is None and isinstance(arg, ast.Name):
                    if arg.id in constants:
                        names = {constants[arg.id]}
                    else:
                        names = _passed_in(tree, call, arg.id)
                if names is None:
                    names = COMPUTED_ACTIONS.get((where, ast.unparse(arg)))
                if names is None:
                    unknown.append(f"{where}:{call.lineno} {ast.unparse(arg)}")
                else:
                    found |= names
    return found, unknown


def test_every_action_the_code_records_has_words_in_the_timeline(pending):
    actions, unknown = recorded_actions()
    assert not unknown, (
        "audit actions this test cannot read from the source: record a literal, or add the "
        f"names to COMPUTED_ACTIONS: {unknown}"
    )
    # Spot checks that the scan sees each way an action is written.
    assert {
        "break_glass.used",  # a literal
        "proof.revocation_failed",  # either branch of a conditional
        "registry.sync_failing",  # a module constant
        "policy.edit",  # passed in by the function's callers
        "notify.escalation",
        "request.expired",  # computed, listed above
        "user.refused",  # identity's
    } <= actions
    raw = []
    for action in sorted(actions):
        event = AuditEvent(
            sequence=1, created_at=pending.created_at, actor="system", action=action, details={}
        )
        entry = timeline.describe(event, pending)
        if action in entry.title or not entry.title:
            raw.append(f"{action}: {entry.title!r}")
    assert not raw, raw


def test_a_break_glass_move_reads_in_words_and_its_ratification_names_the_breaker(world, outsider):
    policies_load(text=policies_with(break_glass="ratify_within: 1h, on_unratified: revert"))
    move = break_glass_move(
        model="fraud", version=2, target="Production", user=outsider, reason="INC-7: v1 leaks"
    )
    created, used, approved = timeline.timeline(move)

    assert (created.actor, created.title) == (
        "outsider",
        "Broke glass to move it to Production (held by v1) (policy production)",
    )
    assert created.items[0] == "– skipped: break glass: accuracy 0.9000 >= 0.8000"
    assert used.actor == "outsider" and used.text == "INC-7: v1 leaks"
    assert used.title == (
        "Approved at once by break glass, without a quorum (a member of oncall); "
        "gates skipped: break glass"
    )
    assert used.items == [
        "The policy's quorum must ratify it within 1h; if it does not, staff are alerted and "
        "the previous holder is put back."
    ]
    assert approved.title == "Request approved" and approved.text == "Break glass by outsider"

    TransitionRequest.objects.filter(pk=move.pk).update(execution=Execution.DONE)
    ratification = ratification_open(TransitionRequest.objects.get(pk=move.pk))
    [opened] = timeline.timeline(ratification)
    assert (opened.actor, opened.title) == (
        "system",
        f"Ratification opened for outsider's break-glass move #{move.pk} (policy production)",
    )


def test_an_auto_approve_gate_that_did_not_fire_reads_as_needing_sign_off(world, requester):
    """Staging auto-approves above 0.97 accuracy; v2 has 0.90. A required gate that fails still
    reads as failed."""
    staging = opening.request_create(
        model="fraud", version=2, target="Staging", requester=requester
    )
    rejected = opening.request_create(
        model="fraud", version=3, target="Production", requester=requester
    )

    [created] = timeline.timeline(staging)
    assert created.items == ["– not auto-approved: needs sign-off: accuracy 0.9000, not > 0.9700"]
    gate_lines = timeline.timeline(rejected)[0].items
    assert gate_lines[0] == "✗ fail: accuracy 0.7000, not >= 0.8000"
