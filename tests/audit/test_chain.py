"""The audit chain (reviews/audit/chain.py, verification.py): appends that form a chain, tampering
of any kind detected by `verify_audit` naming where, and concurrent writers making one chain."""

from __future__ import annotations

import io
import threading
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from reviews.audit import chain, verification
from reviews.management.commands.verify_audit import Command as VerifyAudit
from reviews.models import AuditEvent
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


@pytest.mark.django_db(transaction=True)
def test_concurrent_appends_from_many_threads_form_one_chain():
    if connection.vendor != "postgresql":
        pytest.skip("row locks serialise writers only on PostgreSQL; SQLite locks the whole file")
    threads_count, per_thread = 12, 5
    start = threading.Barrier(threads_count, timeout=60)
    errors: list[BaseException] = []

    def writer(index: int) -> None:
        try:
            start.wait()
            for n in range(per_thread):
                chain.record("test.concurrent", actor=f"writer{index}", details={"n": n})
        except BaseException as error:  # reported by the main thread
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(threads_count)]
    for thread in threads:
        thread.start()
    join_all(threads, timeout=120, message="the concurrent audit writers")

    assert errors == []
    total = threads_count * per_thread
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
    assert set(per_writer.values()) == {per_thread}
