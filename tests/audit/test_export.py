"""The audit chain as CSV (reviews/audit/export.py, `manage.py export_audit`): every event a
parseable row, `--since`, and cells a spreadsheet would run as formulas neutralised."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from reviews.audit import chain
from tests.factories import record_audit_events as record_events

pytestmark = pytest.mark.django_db


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
