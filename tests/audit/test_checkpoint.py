"""The verified checkpoint on the chain's head (reviews/audit/verification.py): moved by the
reconciler and `verify_audit`, extended by reading only the events since it, and a break after it,
before it or beyond the head detected; appends during a verification never look like a break."""

from __future__ import annotations

import io
import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from reviews.audit import chain, verification
from reviews.models import AuditEvent, AuditHead
from tests.factories import record_audit_events as record_events
from tests.waiting import join_all

pytestmark = pytest.mark.django_db


# -- the verified checkpoint -------------------------------------------------------------------


def head() -> AuditHead:
    return AuditHead.objects.get(name="audit")


def test_the_reconciler_moves_the_checkpoint_to_the_head():
    record_events(4)

    call_command("reconcile", stdout=io.StringIO())

    checkpoint = head()
    assert (checkpoint.verified_sequence, checkpoint.verified_hash) == (4, checkpoint.hash)
    assert checkpoint.verified_at is not None and checkpoint.broken_at is None


def test_extending_the_checkpoint_reads_only_the_events_since_it():
    record_events(5)
    first = verification.extend_verified_checkpoint()
    record_events(2, start=6)

    second = verification.extend_verified_checkpoint()

    assert (first.ok, first.checked, first.read) == (True, 5, 5)
    assert (second.ok, second.checked, second.read) == (True, 2, 3)  # the checkpoint's event too
    assert head().verified_sequence == 7


def test_a_long_history_is_verified_over_several_runs():
    record_events(5)

    runs = [verification.extend_verified_checkpoint(limit=2) for _ in range(3)]

    assert [(r.ok, r.sequence, r.read) for r in runs] == [(True, 2, 2), (True, 4, 3), (True, 5, 2)]
    assert head().verified_sequence == 5


def test_a_break_after_the_checkpoint_is_recorded_and_cleared_once_the_link_holds_again(caplog):
    record_events(5)
    verification.extend_verified_checkpoint()
    record_events(3, start=6)
    AuditEvent.objects.filter(sequence=7).update(actor="mallory")

    broken = verification.extend_verified_checkpoint()

    assert (broken.ok, broken.broken_at) == (False, 7)
    checkpoint = head()
    assert (checkpoint.verified_sequence, checkpoint.broken_at) == (6, 7)
    assert checkpoint.broken_problem == "content does not match its hash"
    assert "audit chain broken at sequence 7" in caplog.text
    assert verification.chain_status().state == "broken"

    AuditEvent.objects.filter(sequence=7).update(actor="user7")  # restored from a backup
    assert verification.extend_verified_checkpoint().ok
    checkpoint = head()
    assert (checkpoint.verified_sequence, checkpoint.broken_at, checkpoint.broken_problem) == (
        8,
        None,
        "",
    )


def test_verify_audit_sets_the_checkpoint_unless_read_only():
    record_events(5)

    call_command("verify_audit", "--read-only", stdout=io.StringIO())
    assert (head().verified_sequence, head().verified_at) == (0, None)
    call_command("verify_audit", stdout=io.StringIO())
    assert head().verified_sequence == 5


def test_verify_audit_moves_the_checkpoint_back_to_a_break_before_it():
    record_events(5)
    verification.extend_verified_checkpoint()
    AuditEvent.objects.filter(sequence=2).update(details={"n": 2, "note": "rewritten"})

    with pytest.raises(CommandError, match="broken at sequence 2"):
        call_command("verify_audit", stdout=io.StringIO())

    checkpoint = head()
    assert (checkpoint.verified_sequence, checkpoint.broken_at) == (1, 2)
    assert checkpoint.verified_hash == AuditEvent.objects.get(sequence=1).hash
    assert verification.chain_status().broken_at == 2


def test_a_deleted_checkpoint_event_is_detected():
    record_events(5)
    verification.extend_verified_checkpoint()
    AuditEvent.objects.filter(sequence=5).delete()

    status = verification.chain_status()

    assert (status.state, status.broken_at) == ("broken", 5)
    assert status.problem == "event 5, verified earlier, is missing"


def test_an_event_written_beyond_the_head_is_detected():
    last = record_events(3)[-1]
    forged = AuditEvent(
        sequence=4,
        created_at=last.created_at,
        actor="mallory",
        action="vote.cast",
        model_name="fraud-model",
        version=1,
        details={},
        prev_hash=last.hash,
    )
    forged.hash = chain.chain_hash(last.hash, chain.event_content(forged))
    forged.save()

    result = verification.verify()

    assert (result.ok, result.broken_at) == (False, 4)
    assert result.problem == "event 4 lies beyond the chain head"


@pytest.mark.django_db(transaction=True)
def test_appends_during_a_verification_never_look_like_a_break():
    """The walks read the head first and stop there: an event appended meanwhile is the next
    walk's, never a removed one."""
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL")
    record_events(50)
    done = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for n in range(300):
                chain.record("test.concurrent", actor="writer", details={"n": n})
        except BaseException as error:  # reported by the main thread
            errors.append(error)
        finally:
            done.set()
            connection.close()

    thread = threading.Thread(target=writer)
    thread.start()
    results = []
    while not done.is_set():
        results += [
            verification.verify(),
            verification.extend_verified_checkpoint(),
            verification.chain_status(),
        ]
    join_all([thread], timeout=120, message="the audit writer")

    assert errors == []
    assert len(results) > 3
    assert [str(r) for r in results if not r.ok and getattr(r, "state", "") != "behind"] == []
    assert verification.extend_verified_checkpoint().ok and head().verified_sequence == 350
