"""What the `quorum` CLI says about a request, read from the API's answer (quorum_cli/reading.py):
the state lines it prints and the exit code a wait ends with, without a server."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


# -- reading a request: the lines the CLI prints, from the API's answer --------------------------

PENDING = {
    "id": 7,
    "model": "fraud",
    "version": 3,
    "target": "Production",
    "decision": "pending",
    "status": "pending",
    "execution": None,
    "expires_at": "2026-11-30T10:00:00Z",
    "requirements": [{"group": "ml-leads", "needed": 1, "approvers": []}],
}


def test_a_request_past_its_deadline_ends_a_wait_as_expired_before_the_server_stores_it():
    from quorum_cli.reading import EXIT_DECLINED, outcome, state_line

    overdue = {**PENDING, "status": "expired"}

    assert outcome(PENDING) is None
    assert outcome(overdue) == EXIT_DECLINED
    assert state_line(overdue) == "expired: no decision before 2026-11-30T10:00:00Z"
    # A server without `status` is read as before.
    assert outcome({k: v for k, v in PENDING.items() if k != "status"}) is None


def test_an_approval_names_its_quorum_and_falls_back_to_the_deciding_voter():
    from quorum_cli.reading import state_line

    approved = {
        **PENDING,
        "decision": "approved",
        "execution": "queued",
        "decided_by": "carol",
        "approved_by": ["alice", "bob", "carol"],
    }

    assert state_line(approved) == "approved by alice, bob and carol: transition queued"
    older_server = {k: v for k, v in approved.items() if k != "approved_by"}
    assert state_line(older_server) == "approved by carol: transition queued"


def test_an_auto_approve_gate_that_did_not_fire_is_not_printed_as_a_failure():
    from quorum_cli.reading import gate_line

    missed = {"kind": "auto_approve", "passed": False, "reason": "accuracy 0.9100 > 0.9700"}
    failed = {"kind": "required", "passed": False, "reason": "accuracy 0.7000 >= 0.8000"}

    assert gate_line(missed) == "gate not auto-approved (needs sign-off): accuracy 0.9100 > 0.9700"
    assert gate_line({**missed, "verdict": "needs_sign_off"}) == gate_line(missed)
    assert gate_line(failed) == "gate FAILED: accuracy 0.7000 >= 0.8000"
    assert gate_line({**failed, "passed": True}).startswith("gate passed:")
