"""The link in a review email, opened in a real browser: sign in, see the request, change nothing.

The request is made through the engine, the mail is sent by a real worker, and the link is taken
from the mail itself. Debian's Chromium drives the live server.
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model

from reviews import notify
from reviews.execution import jobs
from reviews.models import AuditEvent, NotificationPreference, TransitionRequest
from tests.browser import PASSWORD, SCREENSHOTS, chromium
from tests.factories import make_mirror, make_request

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_review_link_in_the_mail_opens_the_request_after_login_and_changes_nothing(
    live_server, policies, settings, mailoutbox, rq_queue, simple_worker
):
    settings.QUORUM_BASE_URL = live_server.url
    for user in get_user_model().objects.all():
        user.email = f"{user.username}@example.com"
        user.save(update_fields=["email"])
    rq_queue(jobs.QUEUE)
    queue = rq_queue(notify.QUEUE)
    make_mirror()
    request = make_request("fraud-detector", requester=policies["requester"])
    simple_worker(queue)
    [mail] = [m for m in mailoutbox if m.to == ["lead@example.com"]]
    [link] = re.findall(r"http://\S+", mail.body)
    assert link == f"{live_server.url}/reviews/{request.pk}/"
    assert f'href="{link}"' in mail.alternatives[0][0]
    before = (AuditEvent.objects.count(), list(TransitionRequest.objects.values()))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(link)
        assert page.url == f"{live_server.url}/accounts/login/?next=/reviews/{request.pk}/"
        page.fill("input[name=username]", "lead")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(link)

        assert "fraud-detector" in page.locator("h1").inner_text()
        assert page.get_by_role("button", name=re.compile("Approve")).count() >= 1
        page.screenshot(path=SCREENSHOTS / "email-link-request.png", full_page=True)
        page.reload()  # a second open, as a mail scanner or a double click would

        page.get_by_role("link", name="Settings").click()
        page.get_by_label("Send me reminder emails").uncheck()
        page.get_by_role("button", name="Save").click()
        assert "Reminder emails are off." in page.locator(".messages").inner_text()
        page.screenshot(path=SCREENSHOTS / "notification-settings.png")

    after = (AuditEvent.objects.count(), list(TransitionRequest.objects.values()))
    assert after == before
    assert not request.votes.exists()
    assert NotificationPreference.objects.get(user__username="lead").reminders is False
