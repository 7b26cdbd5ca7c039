"""Reviewer analytics: the numbers against a history with known times, the page and its CSV,
staff only, and a query budget that holds at 100,000 audit events."""

from __future__ import annotations

import csv
import io
import statistics
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from reviews.audit import chain
from reviews.decisions import voting
from reviews.insight import analytics
from reviews.insight.presentation import duration_label
from reviews.models import AuditEvent, Decision, TransitionRequest, Vote
from tests.factories import make_history, make_request, make_version
from tests.pages import login, text_of

pytestmark = pytest.mark.django_db

H = 3600.0  # an hour in seconds
# Passes the production policy's gates; `AUTO` passes staging's auto-approval too.
PASSING = {"accuracy": 0.90, "f1": 0.84, "log_loss": 0.31}
AUTO = {"accuracy": 0.99, "f1": 0.90, "log_loss": 0.20}
# Session, user, the navigation's awaiting count, the requests in the window and awaiting a
# decision, their votes, the policy percentiles, the audit log's reminders and escalations.
PAGE_QUERIES = 10


def opened(request, *, days_ago: float, votes=(), now):
    """Moves `request` and the votes cast on it (in order, `votes` = [(hours after opening)])
    to known times; its decision, if a vote or a gate made one, to the last vote's time."""
    start = now - timedelta(days=days_ago)
    TransitionRequest.objects.filter(pk=request.pk).update(created_at=start)
    cast = list(Vote.objects.filter(request=request).order_by("pk"))
    assert len(cast) == len(votes)
    for vote, hours in zip(cast, votes, strict=True):
        Vote.objects.filter(pk=vote.pk).update(created_at=start + timedelta(hours=hours))
    request.refresh_from_db()
    if request.decision != Decision.PENDING:
        decided = start + timedelta(hours=votes[-1] if votes else 0)
        TransitionRequest.objects.filter(pk=request.pk).update(decided_at=decided)
    return request


def vote(request, user, decision="approve"):
    voting.vote_cast(request_id=request.pk, user=user, decision=decision, comment="Looked.")


@pytest.fixture
def history(world, no_mlflow):
    """Production (1 ml-lead + 2 data-science) and staging (1 data-science) requests with
    known times, the reminders and escalations on them; returns `now`."""
    people, model = world.people, world.model
    for number in range(4, 10):
        version = make_version(model, number, metrics=AUTO if number == 8 else PASSING)
        if number == 8:
            # Staging's gate approves it with no vote: the gate reads each metric's history,
            # cached here as a page would have (logged before the version was registered).
            for key, value in AUTO.items():
                make_history(version, key, [value])
    lead, ana, bo = people["lead"], people["scientist1"], people["scientist2"]
    now = timezone.now()

    def new(version, target="Production"):
        return make_request(model.name, version, target, requester=people["requester"])

    # Approved: data-science signs last (5 h); first review after 1 h.
    r1 = new(2)
    vote(r1, ana), vote(r1, lead), vote(r1, bo)
    opened(r1, days_ago=10, votes=[1, 2, 5], now=now)
    # Approved: ml-leads signs last (10 h); first review after 3 h.
    r2 = new(4)
    vote(r2, ana), vote(r2, bo), vote(r2, lead)
    opened(r2, days_ago=9, votes=[3, 4, 10], now=now)
    # Rejected by a reviewer after 2 h; rejected by the accuracy gate at once.
    r3 = new(5)
    vote(r3, ana, "reject")
    opened(r3, days_ago=8, votes=[2], now=now)
    r4 = new(3)
    assert r4.decision == Decision.REJECTED
    opened(r4, days_ago=7, now=now)
    # Awaiting: one data-science approval after 1 h (both groups short); and one from before the
    # 30-day window, never reviewed.
    r5 = new(6)
    vote(r5, ana)
    opened(r5, days_ago=2, votes=[1], now=now)
    r6 = opened(new(7), days_ago=40, now=now)
    # Staging: approved after 30 min; approved by its gate (no review); awaiting for 12 h.
    s1 = new(2, "Staging")
    vote(s1, bo)
    opened(s1, days_ago=5, votes=[0.5], now=now)
    s2 = new(8, "Staging")
    assert s2.decision == Decision.APPROVED
    opened(s2, days_ago=4, now=now)
    s3 = opened(new(9, "Staging"), days_ago=0.5, now=now)

    chain.record("notify.reminder", actor="system", request=r5)
    chain.record("notify.reminder", actor="system", request=s3)
    chain.record("notify.escalation", actor="system", request=r6)
    old = chain.record("notify.escalation", actor="system", request=r6)
    AuditEvent.objects.filter(pk=old.pk).update(created_at=now - timedelta(days=35))
    # The report's `now`: after the events just recorded (the times above are all days apart).
    return timezone.now()


def by_name(rows, attribute):
    return {getattr(row, attribute): row for row in rows}


def test_percentiles_interpolate_between_closest_ranks_like_percentile_cont():
    values = [4.0, 1.0, 3.0, 2.0, 10.0]
    assert analytics.percentile(values, 0.5) == 3.0
    assert analytics.percentile(values, 0.9) == pytest.approx(7.6)
    assert analytics.percentile([1.0, 2.0, 3.0, 4.0, 10.0, 11.0], 0.9) == pytest.approx(
        statistics.quantiles([1.0, 2.0, 3.0, 4.0, 10.0, 11.0], n=10, method="inclusive")[8]
    )
    assert analytics.percentile([7.0], 0.9) == 7.0
    assert analytics.percentile([], 0.5) is None


def test_time_to_first_review_and_to_quorum_per_policy(history):
    report = analytics.report(days=30, now=history)
    policies = by_name(report.policies, "policy")
    assert list(policies) == ["production", "staging"]
    production, staging = policies["production"], policies["staging"]
    # First reviews after 1, 3, 2 and 1 h (the gate's rejection had none).
    assert production.first_review == analytics.Spread(
        4, pytest.approx(1.5 * H), pytest.approx(2.7 * H)
    )
    # Quorum after 5 and 10 h.
    assert production.quorum == analytics.Spread(2, pytest.approx(7.5 * H), pytest.approx(9.5 * H))
    assert staging.first_review == analytics.Spread(1, pytest.approx(0.5 * H), 0.5 * H)
    # The gate's approval is no quorum of reviewers.
    assert staging.quorum == analytics.Spread(1, pytest.approx(0.5 * H), 0.5 * H)
    expected = "PostgreSQL" if connection.vendor == "postgresql" else "Python"
    assert report.percentiles_in == expected


def test_python_percentiles_agree_with_the_databases(history):
    for days in analytics.WINDOWS:
        in_python = analytics.report(days=days, now=history, in_database=False)
        default = analytics.report(days=days, now=history)
        assert in_python.percentiles_in == "Python"
        for ours, theirs in zip(in_python.policies, default.policies, strict=True):
            for field in ("first_review", "quorum"):
                a, b = getattr(ours, field), getattr(theirs, field)
                assert a.count == b.count
                assert a.p50 == pytest.approx(b.p50) and a.p90 == pytest.approx(b.p90)


def test_time_to_first_review_and_to_last_sign_off_per_group(history):
    groups = by_name(analytics.report(days=30, now=history).groups, "group")
    assert list(groups) == ["data-science", "ml-leads"]
    science, leads = groups["data-science"], groups["ml-leads"]
    # data-science's first votes: 1, 3, 2, 1 h in production, 30 min in staging.
    assert science.first_review == analytics.Spread(5, 1 * H, pytest.approx(2.6 * H))
    # Its last needed sign-off: 5 and 4 h in production, 30 min in staging.
    assert science.sign_off == analytics.Spread(3, 4 * H, pytest.approx(4.8 * H))
    assert leads.first_review == analytics.Spread(2, 6 * H, pytest.approx(9.2 * H))
    assert leads.sign_off == analytics.Spread(2, 6 * H, pytest.approx(9.2 * H))


def test_the_bottleneck_is_the_last_group_to_sign_and_the_groups_still_short(history):
    groups = by_name(analytics.report(days=30, now=history).groups, "group")
    # data-science signed last on the first production request and on staging's; ml-leads on
    # the second production request.
    assert (groups["data-science"].signed_last, groups["ml-leads"].signed_last) == (2, 1)
    # Awaiting: production 1/2 data-science and no lead; production from 40 days ago, nobody;
    # staging, nobody. Open requests count whenever they were opened.
    assert (groups["data-science"].still_short, groups["ml-leads"].still_short) == (3, 2)


def test_open_requests_by_age(history):
    report = analytics.report(days=30, now=history)
    assert report.open_by_age == [
        ("under 1 day", 1),
        ("1–3 days", 1),
        ("3–7 days", 0),
        ("7–14 days", 0),
        ("14 days or more", 1),
    ]


def test_reminders_escalations_and_rejections_per_policy_and_window(history):
    recent = analytics.report(days=30, now=history)
    policies = by_name(recent.policies, "policy")
    production, staging = policies["production"], policies["staging"]
    assert (recent.reminders, recent.escalations) == (2, 1)
    assert (production.reminders, production.escalations) == (1, 1)
    assert (staging.reminders, staging.escalations) == (1, 0)
    assert (production.opened, production.approved, production.rejected) == (5, 2, 2)
    assert production.rejected_by_gates == 1
    assert (staging.opened, staging.approved, staging.rejected) == (3, 2, 0)

    longer = analytics.report(days=90, now=history)
    production = by_name(longer.policies, "policy")["production"]
    assert (longer.reminders, longer.escalations) == (2, 2)
    assert (production.opened, production.escalations) == (6, 2)
    assert production.first_review.count == 4  # the old request was never reviewed


def test_a_window_other_than_30_or_90_days_is_refused():
    with pytest.raises(ValueError, match="one of 30, 90 days"):
        analytics.report(days=7)


@pytest.mark.parametrize(
    ("seconds", "label"),
    [
        (None, "—"),
        (20, "under 1 min"),
        (45 * 60, "45 min"),
        (2 * H, "2 h"),
        (3.5 * H, "3 h 30 min"),
        (24 * H, "1 d"),
        (53 * H, "2 d 5 h"),
    ],
)
def test_duration_labels(seconds, label):
    assert duration_label(seconds) == label


# -- the page and its CSV ----------------------------------------------------------------------


def rows_of(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.content.decode())))


def test_staff_see_the_tables_with_the_numbers(client, history, admin_user):
    response = login(client, admin_user).get("/analytics/")
    assert response.status_code == 200
    text = text_of(response)
    # Production: 4 reviewed, first review p50 1 h 30 min, p90 2 h 42 min; quorum 7 h 30 min and
    # 9 h 30 min.
    assert "production 4 1 h 30 min 2 h 42 min 2 7 h 30 min 9 h 30 min" in text
    assert "data-science 1 h 2 h 36 min 4 h 4 h 48 min 2 3" in text
    assert "14 days or more 1" in text
    assert "production 5 2 2 1 1 1" in text
    charts = response.context["chart_data"]["charts"]
    assert [c["target"] for c in charts] == [
        "chart-policy-times",
        "chart-group-times",
        "chart-bottleneck",
        "chart-open-age",
        "chart-outcomes",
    ]
    assert charts[0]["series"][0]["y"] == [1.5, 0.5]  # first review p50 in hours


def test_the_csv_holds_the_pages_numbers(client, history, admin_user):
    response = login(client, admin_user).get("/analytics/", {"days": "90", "format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert 'filename="quorum-analytics-90d-' in response["Content-Disposition"]
    rows = rows_of(response)
    assert rows[0] == ["table", "row", "measure", "value"]
    values = {(table, row, measure): value for table, row, measure, value in rows[1:]}
    report = analytics.report(days=90, now=history)
    assert values[("window", "", "days")] == "90"
    assert values[("window", "", "escalations")] == "2"
    assert values[("policy", "production", "opened")] == "6"
    assert values[("policy", "production", "rejected")] == "2"
    assert values[("policy", "production", "rejected_by_gates")] == "1"
    assert values[("policy", "production", "first_review_p50_seconds")] == "5400.0"
    assert values[("policy", "production", "first_review_p90_seconds")] == "9720.0"
    assert values[("policy", "production", "quorum_p90_seconds")] == "34200.0"
    assert values[("policy", "staging", "quorum_count")] == "1"
    assert values[("group", "data-science", "sign_off_p90_seconds")] == "17280.0"
    assert values[("group", "ml-leads", "signed_last")] == "1"
    assert values[("group", "data-science", "still_short")] == "3"
    assert values[("open_by_age", "14 days or more", "requests")] == "1"
    # Every number of the report is in the file, once.
    assert len(rows) - 1 == 5 + len(report.policies) * 12 + len(report.groups) * 8 + 5


def test_a_bad_window_or_format_is_explained(client, admin_user):
    login(client, admin_user)
    response = client.get("/analytics/", {"days": "7"})
    assert response.status_code == 400
    assert "Choose the last 30 or the last 90 days." in text_of(response)
    response = client.get("/analytics/", {"format": "xlsx"})
    assert response.status_code == 400
    assert "The format is csv, or none for the page." in text_of(response)


def test_analytics_are_staff_only(client, world):
    people = world.people
    assert client.get("/analytics/").status_code == 302  # to the sign-in page
    assert "/accounts/login/" in client.get("/analytics/")["Location"]
    response = login(client, people["lead"]).get("/analytics/", {"format": "csv"})
    assert response.status_code == 403
    assert login(client, people["lead"]).get("/analytics/").status_code == 403
    assert "Analytics" not in text_of(client.get("/reviews/"))
    login(client, people["admin"])
    assert client.post("/analytics/").status_code == 405
    assert "Analytics" in text_of(client.get("/reviews/"))


def bulk_events(count: int, actions: tuple[str, ...]) -> None:
    """`count` events of `actions` in turn over the last day, written in bulk after the chain's
    head. Their hashes are placeholders: this read never looks at them, and the test's
    transaction, rolled back at its end, keeps them from any other test's chain."""
    last = AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first()
    start = timezone.now() - timedelta(days=1)
    AuditEvent.objects.bulk_create(
        (
            AuditEvent(
                sequence=(last or 0) + 1 + n,
                created_at=start + timedelta(seconds=n * 0.8),
                actor="system",
                action=actions[n % len(actions)],
                details={},
                prev_hash="0" * 64,
                hash="0" * 64,
            )
            for n in range(count)
        ),
        batch_size=10_000,
    )


def test_the_page_costs_the_same_queries_at_100_000_audit_events(
    client, history, admin_user, django_assert_max_num_queries
):
    bulk_events(100_000, ("notify.reminder", "notify.escalation", "vote.cast", "request.created"))
    login(client, admin_user)
    with django_assert_max_num_queries(PAGE_QUERIES):
        response = client.get("/analytics/")
    assert response.status_code == 200
    # The bulk events carry no request, so they count under no policy; 2 and 1 of the history.
    report = response.context["report"]
    assert (report.reminders, report.escalations) == (25_002, 25_001)
    assert by_name(report.policies, "policy")["(no policy)"].reminders == 25_000
    with django_assert_max_num_queries(PAGE_QUERIES):
        assert client.get("/analytics/", {"format": "csv"}).status_code == 200
