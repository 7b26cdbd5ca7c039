"""The request page (`reviews:request_detail`): header, evidence, gates, sign-offs, who may vote
and why not, its query count, hostile MLflow text escaped, and a break-glass move and its
ratification said as what they are.

The request page is read-only; the permission matrix of every mutating route is in
tests/reliability/test_permissions.py. The world it starts from is `world` (tests/conftest.py).
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from registry.models import Stage
from reviews.decisions import opening, voting
from reviews.emergency.break_glass import break_glass_move
from reviews.emergency.ratification import ratification_open
from reviews.models import Decision, Execution, RequestKind, TransitionRequest
from reviews.policies.loading import policies_load
from tests.factories import ESCAPED, HOSTILE, make_hostile_request, make_user, make_version
from tests.pages import action_url, detail_url, login, text_of
from tests.policy_files import policies_with

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_mlflow")]

# Session + user, then the page's own: the same for 2 votes and versions as for 12.
# One each for the activity timeline (whose last event is the page's live revision) and related
# requests; the votes and the user's groups are read once, for the tally, the vote form and the
# navigation's count.
DETAIL_QUERIES = 11
STATUS_QUERIES = 4  # with the last event, which tells the page to fetch its live parts again


def test_request_page_shows_header_evidence_gates_and_sign_offs(client, pending, lead):
    response = login(client, lead).get(detail_url(pending))
    assert response.status_code == 200
    text = text_of(response)
    assert "fraud v2 → Production" in text
    assert "Retrained." in text and "requester" in text
    assert "production : needs 1 of ml-leads and 2 of data-science" in text
    # Evidence: candidate against the version in Production, deltas and direction.
    assert "Δ = v2 − v1" in text
    assert "+0.0500 (better)" in text  # accuracy 0.90 vs 0.85
    assert "−0.0900 (better)" in text  # log_loss went down: better
    assert "lr (differs)" in text
    targets = [chart["target"] for chart in response.context["chart_data"]["charts"]]
    assert "chart-comparison" in targets and "chart-history-0" in targets
    # Gates with their values and why.
    assert "accuracy 0.9000 >= 0.8000" in text and "✓ pass" in text
    # Sign-offs: nobody yet, who can still sign.
    assert "ml-leads 0/1" in text and "data-science 0/2" in text
    assert "Can still sign: scientist1, scientist2, scientist3" in text
    assert 'name="decision" value="approve"' in response.content.decode()


def test_request_page_shows_nan_and_infinite_metrics_and_the_gate_they_fail(
    client, world, requester, lead
):
    # Mirror rows as the sync writes them when MLflow holds NaN and infinities.
    make_version(world.model, 4, metrics={"accuracy": "NaN", "f1": 0.84, "log_loss": "Infinity"})
    request = opening.request_create(
        model="fraud", version=4, target="Production", requester=requester
    )

    response = login(client, lead).get(detail_url(request))

    assert response.status_code == 200
    text = text_of(response)
    assert "accuracy is NaN: not a finite number" in text
    assert re.search(r"accuracy .*? NaN 0\.8500", text)
    assert re.search(r"log_loss .*? ∞ 0\.4000", text)
    bars = next(c for c in response.context["chart_data"]["charts"] if c["kind"] == "bar")
    assert bars["notes"] == ["v4: NaN for accuracy, ∞ for log_loss (not drawn)"]


def test_request_page_says_plainly_when_nothing_holds_the_target(client, world, requester, lead):
    world.model.versions.filter(version=1).update(stage=Stage.ARCHIVED)
    request = opening.request_create(
        model="fraud", version=2, target="Production", requester=requester
    )
    text = text_of(login(client, lead).get(detail_url(request)))
    assert "No baseline: nothing holds Production for fraud yet" in text
    assert "no baseline: nothing holds the target yet" in text  # the f1 gate's reason


@pytest.mark.parametrize(
    ("who", "sentence"),
    [
        ("requester", "You requested this; this policy does not allow self-approval."),
        ("outsider", "You are not in ml-leads or data-science."),
    ],
)
def test_who_cannot_vote_sees_why_and_no_buttons(client, pending, cast, who, sentence):
    response = login(client, cast[who]).get(detail_url(pending))
    assert sentence in text_of(response)
    assert 'value="approve"' not in response.content.decode()


def test_decided_request_says_already_approved_and_shows_no_buttons(
    client, pending, cast, lead, scientist1, scientist2
):
    for voter in (lead, scientist1, scientist2):
        voting.vote_cast(request_id=pending.pk, user=voter, decision="approve")
    response = login(client, cast["scientist3"]).get(detail_url(pending))
    assert "This request is already approved." in text_of(response)
    assert 'value="approve"' not in response.content.decode()


def test_stale_approval_is_struck_through_with_its_reason(client, pending, lead, scientist1):
    voting.vote_cast(request_id=pending.pk, user=scientist1, decision="approve", comment="ok")
    voting.approvals_mark_stale(pending, reason="v2's metrics changed in MLflow")
    response = login(client, lead).get(detail_url(pending))
    body = response.content.decode()
    assert re.search(r'class="vote vote-approve is-stale"', body)
    assert "No longer counts: v2&#x27;s metrics changed in MLflow" in body
    assert "data-science 0/2" in text_of(response)


def test_each_approval_shows_the_one_group_it_counts_for(
    client, pending, cast, lead, scientist1, scientist2
):
    from django.contrib.auth.models import Group

    Group.objects.get(name="data-science").user_set.add(lead)
    for voter in (lead, scientist1):
        voting.vote_cast(request_id=pending.pk, user=voter, decision="approve")
    text = text_of(login(client, scientist2).get(detail_url(pending)))
    assert "lead (for ml-leads) approved" in text
    assert "scientist1 (for data-science) approved" in text
    # lead is in both groups but one person: data-science still needs another.
    assert "ml-leads 1/1" in text and "data-science 1/2" in text
    assert "1 more needed" in text


def test_an_approval_no_group_needs_says_it_is_not_counted(client, pending, cast, lead):
    # data-science needs 2: the third scientist's approval counts for nothing.
    for name in ("scientist1", "scientist2", "scientist3"):
        voting.vote_cast(request_id=pending.pk, user=cast[name], decision="approve")
    text = text_of(login(client, lead).get(detail_url(pending)))
    assert "scientist2 (for data-science) approved" in text
    assert "scientist3 approved" in text and "scientist3 (for" not in text
    assert "Not counted: data-science has every approval it needs." in text


def test_unknown_request_is_a_404_page(client, lead):
    response = login(client, lead).get("/reviews/999999/")
    assert response.status_code == 404
    assert "There is no request #999999." in text_of(response)


def test_request_page_needs_a_login(client, pending):
    response = client.get(detail_url(pending))
    assert response.status_code == 302 and response.url.startswith("/accounts/login/")


@pytest.mark.parametrize("votes", [2, 12])
def test_request_page_query_count_does_not_grow(
    client, world, requester, lead, votes, django_assert_max_num_queries
):
    from django.contrib.auth.models import Group

    science = Group.objects.get(name="data-science")
    for n in range(votes):
        make_version(world.model, metrics={"accuracy": 0.8, "f1": 0.8})
        science.user_set.add(make_user(f"extra{n}"))
    request = opening.request_create(
        model="fraud", version=2, target="Production", requester=requester
    )
    pending_policy = request.policy_snapshot
    pending_policy["require"][1]["approvals"] = votes + 5  # keep it pending while they vote
    TransitionRequest.objects.filter(pk=request.pk).update(policy_snapshot=pending_policy)
    for user in science.user_set.filter(username__startswith="extra"):
        voting.vote_cast(request_id=request.pk, user=user, decision="approve", comment="ok")
    login(client, lead)
    with django_assert_max_num_queries(DETAIL_QUERIES):
        response = client.get(detail_url(request))
    assert response.status_code == 200
    assert f"data-science {votes}/{votes + 5}" in text_of(response)
    with django_assert_max_num_queries(STATUS_QUERIES):
        assert client.get(action_url("request_status", request)).status_code == 200


def test_mlflow_and_user_text_is_escaped_on_the_request_page(client, policies, requester, lead):
    request = make_hostile_request(
        requester=requester, voter=lead, decision="approve", text=HOSTILE
    )
    response = login(client, lead).get(detail_url(request))
    body = response.content.decode()
    assert HOSTILE not in body
    assert body.count(ESCAPED) >= 5  # title, comment, vote, params, metric name
    # Chart labels travel as JSON inside a script element: < and > are escaped there too.
    assert "\\u003Cimg" in body


# -- honest summaries -----------------------------------------------------------------------------


def test_an_approval_names_the_quorum_not_only_the_last_voter(
    client, pending, lead, scientist1, scientist2
):
    for user in (lead, scientist1, scientist2):
        voting.vote_cast(request_id=pending.pk, user=user, decision="approve")

    text = text_of(login(client, lead).get(detail_url(pending)))

    assert "approved by lead, scientist1 and scientist2" in text


def test_a_request_past_its_deadline_reads_expired_before_the_reconciler_runs(
    client, pending, requester, lead
):
    TransitionRequest.objects.filter(pk=pending.pk).update(
        expires_at=timezone.now() - timedelta(minutes=5)
    )

    page = login(client, lead).get(detail_url(pending))
    text = text_of(page)
    badge = 'id="status-badge" class="badge badge-large state-expired">expired<'
    assert badge in page.content.decode()
    assert "Decision: expired" in text and "nobody can vote any more" in text
    assert 'name="decision"' not in page.content.decode()  # no vote buttons
    status = login(client, lead).get(action_url("request_status", pending)).json()
    assert (status["decision"], status["status"], status["state"]) == (
        "pending",
        "expired",
        "expired",
    )

    mine = text_of(login(client, requester).get(reverse("reviews:inbox")))
    assert f"v2 → Production #{pending.pk}" in mine and " expired" in mine
    assert TransitionRequest.objects.get(pk=pending.pk).decision == Decision.PENDING


def test_an_auto_approve_gate_that_did_not_fire_is_neutral_not_failed(client, world, requester):
    """Staging auto-approves above 0.97 accuracy; v2 has 0.90: people sign off instead."""
    request = opening.request_create(
        model="fraud", version=2, target="Staging", requester=requester
    )

    response = login(client, requester).get(detail_url(request))
    page = response.content.decode()
    assert '<tr class="is-needs_sign_off">' in page and "is-failed" not in page
    assert "not auto-approved: needs sign-off" in text_of(response)
    assert "✗ fail" not in page

    inbox = login(client, requester).get(reverse("reviews:inbox")).content.decode()
    assert "not auto-approved: needs sign-off" in inbox
    assert "gates failed" not in inbox
    # The activity says it in the same words, with no failure's cross and no "not met".
    activity = page[page.index('id="timeline"') :]
    assert "– not auto-approved: needs sign-off: accuracy 0.9000, not &gt; 0.9700" in activity
    assert "✗" not in activity and "not met" not in page


# -- break glass ----------------------------------------------------------------------------------

# The production policy without gates, and `outsider` (oncall) allowed to break glass.
UNGATED_GLASS = policies_with(break_glass="ratify_within: 1h, on_unratified: alert").replace(
    "    gates:\n"
    '      - {metric: accuracy, op: ">=", value: 0.80, kind: required}\n'
    '      - {metric: f1, op: ">=", baseline_delta: -0.01, kind: required}\n',
    "    gates: []\n",
)


@pytest.fixture
def glass_move(world, outsider):
    """fraud v2 moved to Production by `outsider`'s break glass under a policy with no gates,
    carried out, its ratification open."""
    policies_load(text=UNGATED_GLASS)
    move = break_glass_move(
        model="fraud", version=2, target="Production", user=outsider, reason="INC-7: v1 leaks"
    )
    TransitionRequest.objects.filter(pk=move.pk).update(execution=Execution.DONE)
    ratification_open(TransitionRequest.objects.get(pk=move.pk))
    return move


def test_a_break_glass_move_says_who_broke_glass_and_that_gates_were_skipped(
    client, glass_move, lead
):
    response = login(client, lead).get(detail_url(glass_move))
    text = text_of(response)

    assert "Decision: approved by break glass (outsider); gates skipped" in text
    assert "Gates skipped: break glass (this policy has no metric gates)." in text
    assert "policy's gates" not in text and "the sign-offs decide alone" not in text
    assert (
        "outsider Approved at once by break glass, without a quorum (a member of oncall); "
        "gates skipped: break glass"
    ) in text
    assert "break_glass." not in text  # no event by its raw name


def test_a_ratification_names_the_breaker_in_its_header_and_its_activity(client, glass_move, lead):
    ratification = TransitionRequest.objects.get(kind=RequestKind.RATIFICATION)

    text = text_of(login(client, lead).get(detail_url(ratification)))

    assert "Opened by Quorum, for outsider's break-glass move" in text
    assert f"system Ratification opened for outsider's break-glass move #{glass_move.pk}" in text
    assert "Requested by" not in text and "Requested Production" not in text
