"""The audit chain: appends, tamper detection (`verify_audit`), concurrent writers, CSV export."""

from __future__ import annotations

import csv
import io
import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from reviews.audit import chain, verification
from reviews.management.commands.verify_audit import Command as VerifyAudit
from reviews.models import AuditEvent, AuditHead
from tests.waiting import join_all

pytestmark = pytest.mark.django_db


def record_events(count: int, *, start: int = 1) -> list[AuditEvent]:
    return [
        chain.record(
            "test.event",
            actor=f"user{n}",
            model_name="fraud-model",
            version=n,
            details={"n": n, "note": 'ünïcode, commas and "quotes"\nnew line'},
        )
        for n in range(start, start + count)
    ]


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


# The CSV's columns are a contract with whoever reads the export: spelled out, not imported.
HEADER = "sequence,created_at,actor,action,request,model,version,details,prev_hash,hash"


def export(*args: str) -> list[dict]:
    out = io.StringIO()
    call_command("export_audit", *args, stdout=out)
    return list(csv.DictReader(io.StringIO(out.getvalue())))


def test_export_writes_every_event_as_a_parseable_csv_row():
    events = record_events(3)

    rows = export()

    assert ",".join(rows[0]) == HEADER
    assert [row["sequence"] for row in rows] == ["1", "2", "3"]
    first = rows[0]
    assert first["actor"] == "user1"
    assert first["action"] == "test.event"
    assert first["request"] == ""
    assert first["model"] == "fraud-model"
    assert first["version"] == "1"
    assert json.loads(first["details"]) == events[0].details
    assert first["prev_hash"] == chain.GENESIS
    assert first["hash"] == events[0].hash
    created = datetime.fromisoformat(first["created_at"])
    assert created.utcoffset() == timedelta(0)
    assert created == events[0].created_at


def test_export_since_a_datetime_leaves_out_older_events():
    record_events(2)
    cut = timezone.now()
    record_events(2, start=3)

    rows = export("--since", cut.isoformat())

    assert [row["sequence"] for row in rows] == ["3", "4"]


def test_export_since_a_date_starts_at_midnight_utc():
    record_events(2)
    today = datetime.now(UTC).date()

    assert len(export("--since", today.isoformat())) == 2
    assert export("--since", (today + timedelta(days=1)).isoformat()) == []


def test_export_of_an_empty_chain_is_just_the_header():
    out = io.StringIO()
    call_command("export_audit", stdout=out)

    assert out.getvalue().strip() == HEADER


@pytest.mark.parametrize("since", ["yesterday", "2024-02-30", "2024-13-01", "12/01/2024"])
def test_export_with_a_bad_since_says_what_it_expects(since):
    with pytest.raises(CommandError, match=r"is not a date \(YYYY-MM-DD\) or an ISO datetime"):
        call_command("export_audit", "--since", since, stdout=io.StringIO())


# What a spreadsheet would run as a formula, as MLflow or a username could carry it.
FORMULAS = ['=HYPERLINK("http://evil.example","open")', "+1+2", "-2+3", "@SUM(A1)", "\tx", "\rx"]


@pytest.mark.parametrize("text", FORMULAS)
def test_export_neutralises_cells_a_spreadsheet_would_run_as_formulas(text):
    event = chain.record("test.event", actor=text, model_name=text, version=1)

    [row] = export()

    assert row["model"] == row["actor"] == "'" + text
    # Everything else is as before, and stripping the mark gives back what the hash covers.
    assert (row["action"], row["version"], row["hash"]) == ("test.event", "1", event.hash)
    assert (
        chain.chain_hash(
            row["prev_hash"],
            chain.canonical(
                sequence=int(row["sequence"]),
                created_at=datetime.fromisoformat(row["created_at"]),
                actor=row["actor"].removeprefix("'"),
                action=row["action"],
                request_id=None,
                model_name=row["model"].removeprefix("'"),
                version=int(row["version"]),
                details=json.loads(row["details"]),
            ),
        )
        == row["hash"]
    )


def test_export_leaves_ordinary_cells_alone():
    chain.record("test.event", actor="o'neil", model_name="fraud-model-2", version=2)

    [row] = export()

    assert (row["actor"], row["model"]) == ("o'neil", "fraud-model-2")
