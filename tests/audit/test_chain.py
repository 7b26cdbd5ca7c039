"""The audit chain (reviews/audit/chain.py, verification.py): appends that form a chain, tampering
of any kind detected by `verify_audit` naming where, concurrent writers making one chain, and
events deferred to the end of their block appended together or not at all."""

from __future__ import annotations

import io
import threading
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.utils import timezone

from reviews.audit import chain, verification
from reviews.management.commands.verify_audit import Command as VerifyAudit
from reviews.models import AuditEvent, AuditHead
from tests.factories import record_audit_events as record_events
from tests.waiting import join_all

pytestmark = pytest.mark.django_db


def run_verify_audit(capsys) -> tuple[int | str | None, str, str]:
    """Runs the command the way `manage.py verify_audit` does; returns (exit code, out, err)."""
    code: int | str | None = 0
    try:
        VerifyAudit().run_from_argv(["manage.py", "verify_audit"])
    except SystemExit as exit:
        code = exit.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_events_form_a_chain_that_verifies():
    events = record_events(5)

    assert [e.sequence for e in events] == [1, 2, 3, 4, 5]
    assert events[0].prev_hash == chain.GENESIS
    assert all(
        later.prev_hash == earlier.hash
        for earlier, later in zip(events[:-1], events[1:], strict=True)
    )
    result = verification.verify()
    assert result.ok and result.checked == 5
    assert str(result) == "audit chain intact: 5 events verified"


def test_nan_and_infinities_in_details_are_kept_in_the_mirrors_spelling_and_verify():
    nan, inf = float("nan"), float("inf")
    event = chain.record(
        "test.metrics",
        details={"metrics": {"accuracy": nan, "loss": inf}, "gates": [{"value": -inf}]},
    )
    chain.record("test.after", details={"n": 1})

    stored = AuditEvent.objects.get(pk=event.pk).details
    assert stored == {
        "metrics": {"accuracy": "NaN", "loss": "Infinity"},
        "gates": [{"value": "-Infinity"}],
    }
    assert verification.verify().ok and verification.verify().checked == 2


def test_empty_chain_verifies():
    assert verification.verify().ok


# run_from_argv closes the database connections, as manage.py does: the test must not hold an
# open transaction.
@pytest.mark.django_db(transaction=True)
def test_verify_audit_exits_0_and_says_how_many_events_hold(capsys):
    record_events(3)

    code, out, _ = run_verify_audit(capsys)

    assert code == 0
    assert "audit chain intact: 3 events verified" in out


@pytest.mark.django_db(transaction=True)
def test_editing_one_rows_details_makes_verify_audit_fail_naming_it(capsys):
    record_events(6)
    AuditEvent.objects.filter(sequence=4).update(details={"n": 4, "note": "rewritten"})

    code, out, err = run_verify_audit(capsys)

    assert code == 1
    assert "audit chain broken at sequence 4" in err
    assert "content does not match its hash" in err
    assert "intact" not in out


@pytest.mark.parametrize(
    "field, value",
    [("actor", "mallory"), ("action", "vote.cast"), ("version", 99), ("model_name", "other")],
)
def test_editing_any_field_is_detected_at_that_sequence(field, value):
    record_events(5)
    AuditEvent.objects.filter(sequence=3).update(**{field: value})

    with pytest.raises(CommandError, match="broken at sequence 3"):
        call_command("verify_audit", stdout=io.StringIO())


def test_editing_a_timestamp_is_detected():
    record_events(3)
    AuditEvent.objects.filter(sequence=2).update(created_at=timezone.now() - timedelta(days=1))

    result = verification.verify()

    assert (result.ok, result.broken_at) == (False, 2)


def test_a_forger_who_rehashes_the_edited_row_breaks_the_next_link():
    record_events(5)
    event = AuditEvent.objects.get(sequence=3)
    event.details = {"n": 3, "note": "forged"}
    AuditEvent.objects.filter(sequence=3).update(
        details=event.details, hash=chain.chain_hash(event.prev_hash, chain.event_content(event))
    )

    result = verification.verify()

    assert (result.ok, result.broken_at, result.problem) == (
        False,
        4,
        "previous hash does not match",
    )


def test_deleting_a_middle_row_is_detected():
    record_events(5)
    AuditEvent.objects.filter(sequence=3).delete()

    result = verification.verify()

    assert (result.ok, result.broken_at) == (False, 3)
    assert "missing" in result.problem


def test_deleting_the_last_row_is_detected():
    record_events(5)
    AuditEvent.objects.filter(sequence=5).delete()

    with pytest.raises(CommandError, match="broken at sequence 5"):
        call_command("verify_audit", stdout=io.StringIO())


def test_appending_after_a_deleted_last_row_is_still_detected():
    record_events(4)
    AuditEvent.objects.filter(sequence=4).delete()
    record_events(1, start=5)

    result = verification.verify()

    assert (result.ok, result.broken_at) == (False, 4)


def head() -> tuple[int, str]:
    found = AuditHead.objects.filter(name="audit").first()
    return (found.sequence, found.hash) if found else (0, chain.GENESIS)


def write_from_threads(write, *, threads_count: int = 12, per_thread: int = 5) -> None:
    """`write(index, n)` from `threads_count` threads at once, `per_thread` times each, every
    thread on its own connection; then the chain holds each write once, gap-free, and verifies."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks serialise writers only on PostgreSQL; SQLite locks the whole file")
    start = threading.Barrier(threads_count, timeout=60)
    errors: list[BaseException] = []

    def writer(index: int) -> None:
        try:
            start.wait()
            for n in range(per_thread):
                write(index, n)
        except BaseException as error:  # reported by the main thread
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(threads_count)]
    for thread in threads:
        thread.start()
    join_all(threads, timeout=120, message="the concurrent audit writers")

    assert errors == []
    total = AuditEvent.objects.count()
    assert list(AuditEvent.objects.order_by("sequence").values_list("sequence", flat=True)) == list(
        range(1, total + 1)
    )
    result = verification.verify()
    assert result.ok, str(result)
    assert result.checked == total
    per_writer = {
        f"writer{i}": AuditEvent.objects.filter(actor=f"writer{i}").count()
        for i in range(threads_count)
    }
    assert set(per_writer.values()) == {total // threads_count}


@pytest.mark.django_db(transaction=True)
def test_concurrent_appends_from_many_threads_form_one_chain():
    write_from_threads(
        lambda index, n: chain.record("test.concurrent", actor=f"writer{index}", details={"n": n})
    )
    assert AuditEvent.objects.count() == 12 * 5


@pytest.mark.django_db(transaction=True)
def test_concurrent_deferred_blocks_from_many_threads_form_one_chain():
    def block(index: int, n: int) -> None:
        with transaction.atomic(), chain.deferred_appends():
            for part in ("first", "second"):
                chain.record("test.deferred", actor=f"writer{index}", details={"n": n, part: 1})
                # Work after an event, which used to hold the head: the others go on appending.
                AuditHead.objects.filter(name="none").exists()

    write_from_threads(block)

    assert AuditEvent.objects.count() == 12 * 5 * 2
    # A block's events are appended together: each one's first and second are neighbours.
    events = list(AuditEvent.objects.order_by("sequence"))
    for first, second in zip(events[::2], events[1::2], strict=True):
        assert (first.actor, first.details["n"]) == (second.actor, second.details["n"])
        assert ("first" in first.details, "second" in second.details) == (True, True)


def test_events_of_a_deferred_block_are_appended_together_at_its_end():
    chain.record("test.before")
    with transaction.atomic(), chain.deferred_appends():
        cast = chain.record("vote.cast", actor="ana", details={"decision": "approve"})
        assert (cast.pk, AuditEvent.objects.count(), head()[0]) == (None, 1, 1)
        with chain.deferred_appends():  # an inner block appends with the outer one
            chain.record("request.approved", actor="ana", details={"reason": "quorum"})
        assert AuditEvent.objects.count() == 1
    chain.record("test.after")

    events = list(AuditEvent.objects.order_by("sequence"))
    assert [(e.sequence, e.action) for e in events] == [
        (1, "test.before"),
        (2, "vote.cast"),
        (3, "request.approved"),
        (4, "test.after"),
    ]
    assert (cast.sequence, cast.pk) == (2, events[1].pk)
    assert [e.created_at for e in events] == sorted(e.created_at for e in events)
    assert head() == (4, events[-1].hash)
    result = verification.verify()
    assert result.ok and result.checked == 4


def test_a_deferred_block_that_raises_appends_nothing_and_leaves_the_head():
    record_events(2)
    before = head()

    with pytest.raises(RuntimeError), transaction.atomic(), chain.deferred_appends():
        chain.record("vote.cast", actor="ana")
        raise RuntimeError("the decision failed")

    assert AuditEvent.objects.count() == 2
    assert head() == before
    assert verification.verify().ok


def test_an_event_deferred_in_a_savepoint_rolled_back_is_not_appended():
    with transaction.atomic(), chain.deferred_appends():
        chain.record("test.kept", details={"n": 1})
        try:
            with transaction.atomic():
                chain.record("test.undone")
                raise RuntimeError("the nested write failed")
        except RuntimeError:
            pass
        with transaction.atomic():
            chain.record("test.kept", details={"n": 2})

    assert list(AuditEvent.objects.order_by("sequence").values_list("action", "sequence")) == [
        ("test.kept", 1),
        ("test.kept", 2),
    ]
    assert verification.verify().ok
