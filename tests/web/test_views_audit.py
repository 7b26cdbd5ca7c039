"""The audit page: staff only, filters, the chain's verification, and the CSV download."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from reviews.audit import chain, export, verification
from reviews.models import AuditEvent, AuditHead
from tests.factories import ESCAPED, HOSTILE, make_audit_chain
from tests.pages import login, text_of

pytestmark = pytest.mark.django_db

# Session, user, actions, count, page, the chain head, the events after its checkpoint (at most
# verification.PAGE_VERIFY_LIMIT + 1, one query), anything beyond the head, the user's groups.
AUDIT_QUERIES = 8

# The CSV's columns are a contract with whoever reads the download: spelled out, not imported.
HEADER = [
    "sequence",
    "created_at",
    "actor",
    "action",
    "request",
    "model",
    "version",
    "details",
    "prev_hash",
    "hash",
]


@pytest.fixture
def events(db):
    chain.record("policy.loaded", actor="system", details={"changed": 2})
    chain.record("request.created", actor="alice", model_name="fraud", version=3)
    chain.record("vote.cast", actor="bob", model_name="fraud", version=3, details={"x": 1})
    chain.record("registry.out_of_band", actor="mlflow", model_name="churn", version=1)
    old = chain.record("request.created", actor="alice", model_name="churn", version=1)
    return old


def rows_of(response) -> list[list[str]]:
    content = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(content)))


def test_staff_sees_events_newest_first_and_an_intact_chain(client, events, admin_user):
    response = login(client, admin_user).get("/audit/")
    text = text_of(response)
    assert "Chain intact: all 5 events verified against their hashes." in text
    table = text.split("Details", 1)[1]
    assert table.index("registry.out_of_band") < table.index("policy.loaded")
    assert "fraud v3" in table and "bob" in table


@pytest.mark.parametrize(
    ("query", "shown", "hidden"),
    [
        ({"model": "chu"}, ["registry.out_of_band"], ["vote.cast"]),
        ({"actor": "bob"}, ["vote.cast"], ["policy.loaded"]),
        ({"action": "request.created"}, ["request.created"], ["vote.cast", "policy.loaded"]),
    ],
)
def test_audit_filters(client, events, admin_user, query, shown, hidden):
    table = text_of(login(client, admin_user).get("/audit/", query)).split("Details", 1)[1]
    for action in shown:
        assert action in table
    for action in hidden:
        assert action not in table


def test_audit_filters_by_date(client, events, admin_user):
    AuditEvent.objects.filter(action="policy.loaded").update(
        created_at=timezone.now() - timedelta(days=10)
    )
    today = timezone.now().date()
    login(client, admin_user)
    table = text_of(client.get("/audit/", {"since": str(today)})).split("Details", 1)[1]
    assert "policy.loaded" not in table and "vote.cast" in table
    earlier = str(today - timedelta(days=5))
    table = text_of(client.get("/audit/", {"until": earlier})).split("Details", 1)[1]
    assert "policy.loaded" in table and "vote.cast" not in table


def test_bad_dates_are_explained_and_ignored(client, events, admin_user):
    response = login(client, admin_user).get("/audit/", {"since": "2026-02-30"})
    assert response.status_code == 200
    assert "From: Enter a valid date." in text_of(response)
    response = client.get("/audit/", {"since": "2026-03-02", "until": "2026-03-01"})
    assert "The end date is before the start date." in text_of(response)


def test_the_action_filter_offers_each_recorded_action_once_in_order(client, events, admin_user):
    response = login(client, admin_user).get("/audit/")

    choices = response.context["filters"].fields["action"].choices
    assert [value for value, _ in choices] == [
        "",
        "policy.loaded",
        "registry.out_of_band",
        "request.created",
        "vote.cast",
    ]


def test_the_count_is_the_heads_while_the_chain_holds_and_the_rows_once_it_breaks(
    client, events, admin_user
):
    login(client, admin_user)
    assert client.get("/audit/").context["page"].paginator.count == 5

    AuditEvent.objects.filter(sequence=2).delete()
    response = client.get("/audit/")

    assert response.context["page"].paginator.count == 4
    assert "Chain broken at event #2: event 2 is missing (next is 3)." in text_of(response)


def test_a_tampered_event_breaks_the_chain_on_the_page(client, events, admin_user):
    AuditEvent.objects.filter(action="vote.cast").update(actor="mallory")
    text = text_of(login(client, admin_user).get("/audit/"))
    assert "Chain broken at event #3: content does not match its hash." in text


def test_csv_download_has_the_export_rows_and_honours_the_filter(client, events, admin_user):
    response = login(client, admin_user).get("/audit/export.csv", {"model": "fraud"})
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = rows_of(response)
    assert rows[0] == HEADER
    assert [row[3] for row in rows[1:]] == ["request.created", "vote.cast"]  # oldest first
    vote = AuditEvent.objects.get(action="vote.cast")
    assert rows[2] == [str(value) for value in export.csv_row(vote)]
    assert rows[2][9] == vote.hash


@pytest.mark.parametrize("url", ["/audit/", "/audit/export.csv"])
def test_audit_is_for_staff_only(client, events, cast, url):
    response = login(client, cast["scientist1"]).get(url)
    assert response.status_code == 403
    assert "Only admins can see the audit trail." in text_of(response)


@pytest.mark.parametrize("url", ["/audit/", "/audit/export.csv"])
def test_audit_needs_a_login(client, url):
    response = client.get(url)
    assert response.status_code == 302 and response.url.startswith("/accounts/login/")


def test_audit_page_escapes_recorded_text(client, admin_user):
    chain.record("vote.cast", actor=HOSTILE, model_name=HOSTILE, details={HOSTILE: HOSTILE})
    body = login(client, admin_user).get("/audit/").content.decode()
    assert HOSTILE not in body and ESCAPED in body


@pytest.mark.parametrize("size", [3, 30])
def test_audit_page_query_count_does_not_grow(
    client, admin_user, size, django_assert_max_num_queries
):
    for n in range(size):
        chain.record("vote.cast", actor=f"user{n}", model_name="fraud", version=n)
    login(client, admin_user)
    with django_assert_max_num_queries(AUDIT_QUERIES):
        assert client.get("/audit/").status_code == 200


def test_at_100000_events_the_page_checks_only_what_came_after_the_checkpoint(
    client, admin_user, django_assert_max_num_queries
):
    make_audit_chain(100_000)
    login(client, admin_user)

    def view():
        with django_assert_max_num_queries(AUDIT_QUERIES):
            response = client.get("/audit/")
        assert response.status_code == 200
        return response.context["verification"], text_of(response)

    # Before any checkpoint: too many events to recompute on a view, and the page says so.
    status, text = view()
    assert (status.state, status.read) == ("behind", 1)
    assert "No verification of the chain recorded yet: 100,000 newer events not yet verified." in (
        text
    )

    verification.extend_verified_checkpoint()  # what the reconciler does every minute
    for n in range(3):
        chain.record("vote.cast", actor=f"late{n}", model_name="fraud", version=1)
    status, text = view()
    assert (status.state, status.checked, status.read) == ("intact", 3, 4)
    assert "Chain intact: all 100,003 events verified against their hashes." in text
    assert "Events up to #100000 were last verified" in text
    assert "the 3 newer just now" in text

    make_audit_chain(verification.PAGE_VERIFY_LIMIT)  # now one more than the page recomputes
    status, text = view()
    assert (status.state, status.read) == ("behind", 2)  # the checkpoint's link only
    assert "Chain verified up to event #100000 at" in text
    assert f"{verification.PAGE_VERIFY_LIMIT + 3} newer events not yet verified" in text


def test_a_tampered_event_after_the_checkpoint_shows_at_once(client, events, admin_user):
    verification.extend_verified_checkpoint()
    chain.record("vote.cast", actor="bob", model_name="fraud", version=3)
    AuditEvent.objects.filter(sequence=6).update(actor="mallory")

    text = text_of(login(client, admin_user).get("/audit/"))

    assert "Chain broken at event #6: content does not match its hash." in text


def test_an_event_before_the_checkpoint_edited_later_shows_once_verify_audit_ran(
    client, events, admin_user
):
    verification.extend_verified_checkpoint()
    AuditEvent.objects.filter(sequence=2).update(actor="mallory")
    login(client, admin_user)

    # The page does not read events before the checkpoint again: that is the full walk's job.
    assert "Chain intact" in text_of(client.get("/audit/"))
    with pytest.raises(CommandError, match="broken at sequence 2"):
        call_command("verify_audit", stdout=io.StringIO())

    text = text_of(client.get("/audit/"))
    assert "Chain broken at event #2: content does not match its hash." in text
    # The reconciler does not clear what it cannot vouch for.
    verification.extend_verified_checkpoint()
    assert "Chain broken at event #2" in text_of(client.get("/audit/"))


def test_a_chain_rehashed_from_before_the_checkpoint_breaks_at_the_checkpoint(
    client, events, admin_user
):
    """A forger who edits event 2 and recomputes every later hash, and the head, leaves a chain
    that verifies from the start; the checkpoint still remembers the hash event 5 had."""
    verification.extend_verified_checkpoint()
    prev_hash = AuditEvent.objects.get(sequence=1).hash
    for event in AuditEvent.objects.filter(sequence__gte=2).order_by("sequence"):
        if event.sequence == 2:
            event.actor = "mallory"
        event.prev_hash = prev_hash
        event.hash = prev_hash = chain.chain_hash(prev_hash, chain.event_content(event))
        event.save()
    AuditHead.objects.filter(name="audit").update(hash=prev_hash)

    text = text_of(login(client, admin_user).get("/audit/"))

    assert verification.verify().ok
    assert "Chain broken at event #5: event 5 no longer has the hash it was verified with." in text


def test_details_show_lists_and_flags_as_json_like_the_export(client, db, admin_user):
    chain.record(
        "vote.cast",
        actor="lead",
        model_name="churn",
        details={"groups": ["ml-leads"], "stale": False, "comment": "fine"},
    )
    login(client, admin_user)

    page = client.get("/audit/").content.decode()

    assert "[&quot;ml-leads&quot;]" in page and "false" in page and "fine" in page
    assert "[&#x27;ml-leads&#x27;]" not in page


def test_csv_download_neutralises_formula_like_model_names(client, admin_user):
    chain.record("request.created", actor="-alice", model_name='=HYPERLINK("http://x","y")')

    rows = rows_of(login(client, admin_user).get("/audit/export.csv"))

    assert rows[1][2] == "'-alice"
    assert rows[1][5] == '\'=HYPERLINK("http://x","y")'
