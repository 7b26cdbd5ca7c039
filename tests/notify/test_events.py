"""Email notifications: who gets which mail for each event, sent by a real RQ worker, and what
a mail holds (reviews/notify/events.py, recipients.py, rendering.py).

The review engine acts for real (requests, votes, expiry, cancel, the transition job against a real
MLflow server, the registry change classifier); the mail goes through Django's locmem backend.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse

from registry.models import ChangeKind, RegistryChange
from reviews.decisions import deciding
from reviews.execution import registry_events
from reviews.models import AuditEvent, Notification, OutboxState
from tests.factories import make_mirror
from tests.mail import MAIL_BASE_URL as BASE_URL
from tests.mail import STANDARD_APPROVERS as APPROVERS
from tests.mail import mail_html as html
from tests.mail import mail_link as link
from tests.mail import mail_recipients as to
from tests.mail import mail_subjects as subjects
from tests.mail import request_committed as create
from tests.mail import vote_committed as vote

pytestmark = pytest.mark.django_db


# -- request opened -----------------------------------------------------------------------------


def test_a_new_request_asks_every_eligible_approver_but_the_requester(
    mailroom, deliver, requester, committed
):
    make_mirror()
    request = create(requester, committed, comment="Retrained on October data")

    assert mail.outbox == []  # nothing is sent where the request was made: a worker sends it
    sent = deliver()

    assert to(sent) == APPROVERS
    assert subjects(sent) == {"[Quorum] fraud-detector v2 → Production needs your review"}
    message = sent[0]
    assert link(request) in message.body and f'href="{link(request)}"' in html(message)
    # The evidence: who asks, gate results, candidate against the version it would replace.
    assert "requester asks for fraud-detector v2 to go to Production" in message.body
    assert "Retrained on October data" in message.body
    assert "[pass] accuracy 0.9100 >= 0.8000 (required)" in message.body
    assert "accuracy: 0.9100 vs 0.8900 (+0.0200)" in message.body
    assert "Metrics, v2 vs v1 at Production" in message.body
    assert "ml-leads 0/1" in message.body and "data-science 0/2" in message.body
    assert "accuracy 0.9100 &gt;= 0.8000" in html(message)
    assert message.extra_headers["Auto-Submitted"] == "auto-generated"


def test_a_request_its_gates_reject_at_once_asks_nobody_and_tells_the_requester(
    mailroom, deliver, requester, committed
):
    make_mirror(
        versions={1: ("Production", {"accuracy": 0.89, "f1": 0.87}), 2: ("None", {"f1": 0.9})}
    )
    request = create(requester, committed)
    assert request.decision == "rejected"

    sent = deliver()

    assert to(sent) == {"requester"}
    assert subjects(sent) == {"[Quorum] fraud-detector v2 → Production rejected"}
    assert "by the policy's gates" in sent[0].body
    assert "the candidate's run never logged accuracy" in sent[0].body
    asked = Notification.objects.filter(kind="review_needed")
    assert set(asked.values_list("state", flat=True)) == {OutboxState.SKIPPED}
    assert asked.first().last_error == "the request is already rejected"


def test_a_request_rejected_for_a_nan_metric_says_so_in_its_mail(
    mailroom, deliver, requester, committed
):
    make_mirror(
        versions={
            1: ("Production", {"accuracy": 0.89, "f1": "Infinity"}),
            2: ("None", {"accuracy": "NaN", "f1": 0.9}),
        }
    )
    create(requester, committed)

    [message] = deliver()

    assert "[FAIL] accuracy is NaN: not a finite number (required)" in message.body
    assert "accuracy: NaN vs 0.8900" in message.body
    assert "f1: 0.9000 vs ∞" in message.body
    assert "accuracy is NaN" in html(message) and ">NaN</td>" in html(message)


# -- decisions ----------------------------------------------------------------------------------


def approve_all(request, users, committed):
    for name in ("lead", "scientist1", "scientist2"):
        vote(request, users[name], committed)


def reject(request, users, committed):
    vote(request, users["scientist1"], committed, "reject", "f1 dropped on the holdout set")


def expire(request, users, committed):
    vote(request, users["lead"], committed)
    with committed():
        deciding.requests_expire_overdue(now=request.expires_at + timedelta(seconds=1))


def cancel(request, users, committed):
    vote(request, users["scientist2"], committed)
    with committed():
        deciding.request_cancel(request_id=request.pk, user=users["requester"])


@pytest.mark.parametrize(
    ("act", "decision", "told", "said"),
    [
        (approve_all, "approved", {"lead", "scientist1", "scientist2"}, "Quorum reached"),
        (reject, "rejected", {"scientist1"}, "f1 dropped on the holdout set"),
        (expire, "expired", {"lead"}, "No decision before"),
        (cancel, "cancelled", {"scientist2"}, "Cancelled by requester"),
    ],
)
def test_a_decision_goes_to_the_requester_and_everyone_who_voted_only(
    mailroom, deliver, cast, committed, act, decision, told, said
):
    make_mirror()
    request = create(cast["requester"], committed)
    deliver()  # the review requests

    act(request, cast, committed)
    sent = deliver()

    assert to(sent) == {"requester"} | told
    assert subjects(sent) == {f"[Quorum] fraud-detector v2 → Production {decision}"}
    assert said in sent[0].body and said in html(sent[0])
    assert link(request) in sent[0].body


def test_an_approval_mail_names_the_whole_quorum_not_the_last_voter(
    mailroom, deliver, cast, committed
):
    make_mirror()
    request = create(cast["requester"], committed)
    deliver()

    approve_all(request, cast, committed)
    sent = deliver()

    assert "was approved by lead, scientist1 and scientist2." in sent[0].body
    assert "<strong>approved</strong> by lead, scientist1 and scientist2." in html(sent[0])


def test_an_auto_approve_gate_that_did_not_fire_is_neutral_in_the_mail(
    mailroom, deliver, cast, committed
):
    make_mirror()  # v2's accuracy 0.91 is short of the staging policy's auto-approve 0.97
    create(cast["requester"], committed, target="Staging")
    [message] = [m for m in deliver() if m.to == ["scientist1@example.com"]]

    assert "[not auto-approved: needs sign-off] accuracy 0.9100, not > 0.9700" in message.body
    assert "FAIL" not in message.body
    assert "#b3261e" not in html(message)  # nothing in the failure red


# -- execution: a real transition job against a real MLflow server ------------------------------


def test_a_transition_done_tells_the_requester(
    promoted, mailroom, deliver, cast, committed, run_transition
):
    request = create(cast["requester"], committed, model=promoted, version=3)
    approve_all(request, cast, committed)
    deliver()

    run_transition(request)
    sent = deliver()

    assert to(sent) == {"requester"}
    assert subjects(sent) == {f"[Quorum] {promoted} v3 is now in Production"}
    assert "Archived: v1." in sent[0].body


def test_a_transition_that_fails_for_good_tells_the_requester_and_staff(
    mlflow_server, mailroom, deliver, cast, committed, unique_name, run_transition
):
    make_mirror(name=unique_name)  # in the mirror, but MLflow has no such model
    request = create(cast["requester"], committed, model=unique_name)
    approve_all(request, cast, committed)
    deliver()

    run_transition(request)
    sent = deliver()

    request.refresh_from_db()
    assert request.execution == "failed"
    assert to(sent) == {"requester", "admin"}
    assert subjects(sent) == {
        f"[Quorum] {unique_name} v2 → Production transition failed: "
        f"{unique_name} version 2 no longer exists in MLflow."
    }
    # The version is gone: no retry can help, and the mail does not suggest one.
    assert "no retry can help" in sent[0].body
    assert "an admin can retry" not in sent[0].body
    assert AuditEvent.objects.get(action="transition.failed").details["permanent"] is True


# -- out of band --------------------------------------------------------------------------------


def test_a_change_made_in_mlflow_directly_is_reported_to_staff(
    mailroom, deliver, committed, requester
):
    versions = make_mirror()
    RegistryChange.objects.create(
        model=versions[2].model,
        version=versions[2],
        kind=ChangeKind.STAGE_CHANGED,
        old="None",
        new="Staging",
    )

    with committed():
        registry_events.classify_pending_changes()
    sent = deliver()

    assert to(sent) == {"admin"}
    assert subjects(sent) == {"[Quorum] fraud-detector v2 moved to Staging outside Quorum"}
    version_page = reverse("registry:version_detail", args=["fraud-detector", 2])
    assert BASE_URL + version_page in sent[0].body
    assert "no Quorum transition made that change" in sent[0].body


# -- what is in a mail ---------------------------------------------------------------------------


def test_mlflow_text_in_a_mail_is_escaped_in_html_and_kept_on_one_line_in_the_subject(
    mailroom, deliver, requester, committed
):
    name = "<b>fraud</b>\nBcc: x@example.com"
    make_mirror(name=name)
    create(requester, committed, model=name, comment="<script>alert(1)</script>")

    sent = deliver()

    # The line break is a control character: shown as a marker, never a second header line.
    assert subjects(sent) == {
        "[Quorum] <b>fraud</b>⟨U+000A⟩Bcc: x@example.com v2 → Production needs your review"
    }
    page = html(sent[0])
    assert "<b>fraud</b>" not in page and "&lt;b&gt;fraud&lt;/b&gt;" in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<script>alert(1)</script>" in sent[0].body  # plain text is plain text


def test_the_link_in_a_mail_asks_for_a_login_and_changes_nothing(
    mailroom, deliver, requester, lead, committed, client
):
    make_mirror()
    request = create(requester, committed)
    [message] = [m for m in deliver() if m.to == ["lead@example.com"]]
    path = link(request).removeprefix(BASE_URL)
    assert path in message.body
    events = AuditEvent.objects.count()

    anonymous = client.get(path)
    assert anonymous.status_code == 302
    assert anonymous["Location"] == f"/accounts/login/?next=/reviews/{request.pk}/"

    client.force_login(lead)
    page = client.get(path)
    assert page.status_code == 200 and "fraud-detector" in page.content.decode()

    request.refresh_from_db()
    assert request.decision == "pending" and not request.votes.exists()
    assert AuditEvent.objects.count() == events
