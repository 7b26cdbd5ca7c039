"""A request's page as it changes under the reader's eyes, in a real browser: votes, comments and
the decision appear without a reload (quorum/static/request_status.js polls the status endpoint
with a conditional GET and fetches the page's live parts again when the request moved on); a
double click on Approve sends one vote (quorum/static/submit_once.js); what the user is typing
is never replaced."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from registry.models import Stage
from reviews.conversation import comments
from reviews.decisions import voting
from reviews.models import Vote
from tests.factories import cache_all_history, make_model, make_request, make_version

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# The page asks every 3 s at first, then less often, never more than every 30 s while pending.
SHOWN_WITHIN_MS = 45_000


@pytest.fixture
def pending(policies, requester):
    model = make_model("live-page")
    make_version(model, stage=Stage.PRODUCTION, metrics={"accuracy": 0.85, "f1": 0.8})
    cache_all_history(make_version(model, metrics={"accuracy": 0.9, "f1": 0.85}))
    return make_request(model.name, requester=requester)


def test_a_vote_and_a_comment_cast_elsewhere_appear_without_a_reload(
    sign_in, live_server, pending, policies
):
    watcher = sign_in("requester")
    page = watcher.goto(f"/reviews/{pending.pk}/")
    page.evaluate("window.notReloaded = true")
    assert "No votes yet." in page.inner_text("#signoffs")

    voting.vote_cast(
        request_id=pending.pk, user=policies["lead"], decision="approve", comment="Looks right."
    )
    expect(page.locator("#signoffs")).to_contain_text("Looks right.", timeout=SHOWN_WITHIN_MS)
    assert "Approved: lead" in page.inner_text("#signoffs")
    assert "Looks right." in page.inner_text("#timeline")

    comments.comment_post(request_id=pending.pk, user=policies["scientist1"], body="Checking.")
    expect(page.locator("#timeline")).to_contain_text("Checking.", timeout=SHOWN_WITHIN_MS)
    for username in ("scientist1", "scientist2"):
        voting.vote_cast(request_id=pending.pk, user=policies[username], decision="approve")
    expect(page.locator("#status-badge")).not_to_have_text("pending", timeout=SHOWN_WITHIN_MS)
    assert "approved" in page.inner_text("#decision").lower()
    assert page.evaluate("window.notReloaded") is True
    watcher.shot("request-live-approved.png")
    watcher.assert_clean()


def test_what_the_reader_is_typing_is_kept_while_the_page_updates(
    sign_in, live_server, pending, policies
):
    reviewer = sign_in("scientist1")
    page = reviewer.goto(f"/reviews/{pending.pk}/")
    page.fill("#vote-comment", "Half-written thoughts on recall")

    voting.vote_cast(request_id=pending.pk, user=policies["lead"], decision="approve")
    expect(page.locator("#signoffs")).to_contain_text("Approved: lead", timeout=SHOWN_WITHIN_MS)
    assert page.input_value("#vote-comment") == "Half-written thoughts on recall"
    reviewer.assert_clean()


def test_a_double_click_on_approve_sends_one_vote(sign_in, live_server, pending):
    reviewer = sign_in("lead")
    page = reviewer.goto(f"/reviews/{pending.pk}/")
    with page.expect_navigation():
        page.dblclick("button[value=approve]")
    page.wait_for_load_state()

    assert Vote.objects.filter(request=pending).count() == 1
    text = page.inner_text("main")
    # The page after one vote: the confirmation, and the sign-off card saying the vote is in;
    # not the refusal of a second POST ("not recorded", the vote's text moved to a comment).
    assert "You approved" in text
    assert text.count("already voted") == 1
    assert "not recorded" not in text
    reviewer.assert_clean()
