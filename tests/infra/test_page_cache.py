"""Pages kept across responses (infra/page_cache.py): served again only to the same user and
browser, never after a committed change, never older than the time window, and made as if there
were no cache when Redis fails.

These tests commit (`transaction=True`): inside a test's own transaction every page is made
afresh, as the cache leaves alone a connection with uncommitted writes.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.contrib.auth.models import Group
from django.db import connection, transaction
from django.http import HttpResponse
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from infra import page_cache
from registry.models import ModelVersion, Stage
from reviews.conversation.comments import comment_post
from reviews.decisions import voting
from reviews.models import ApprovalPolicy, TransitionRequest
from reviews.policies.loading import policies_load
from tests.factories import make_request
from tests.pages import login, text_of
from tests.policy_files import STANDARD_POLICIES

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("no_mlflow", "fresh_generation"),
]

# A page served from the cache reads the session and the user, nothing else.
HIT_QUERIES = 2


@pytest.fixture
def fresh_generation(redis_url, settings, monkeypatch):
    """No page kept, a new generation, and the clock stopped at the start of a time window: a
    window that ended between two answers would make the second one afresh."""
    settings.QUORUM_PAGE_CACHE_SECONDS = 30
    redis = page_cache.client()
    for key in redis.scan_iter("quorum:pages:*"):
        redis.delete(key)
    start = (time.time() // 30 + 1) * 30
    monkeypatch.setattr(page_cache.time, "time", lambda: start)


def browser_of(user) -> Client:
    """A signed-in browser that has its CSRF cookie already (the first page sets it)."""
    client = login(Client(), user)
    client.get(reverse("reviews:inbox"))
    return client


def answer(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200
    return text_of(response)


def served_from_cache(client: Client, url: str, django_assert_num_queries) -> str:
    """Asks twice; the second answer must come from the cache (2 queries) and equal the first."""
    first = client.get(url)
    with django_assert_num_queries(HIT_QUERIES):
        second = client.get(url)
    assert second.content == first.content
    return text_of(second)


# ---- what counts as a write ----------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        'INSERT INTO "reviews_vote" ("x") VALUES (1)',
        '  update "reviews_transitionrequest" SET "decision" = 1',
        'DELETE FROM "auth_user_groups" WHERE 1',
        'TRUNCATE "registry_modelversion"',
        "WITH moved AS (UPDATE t SET a = 1 RETURNING id) SELECT * FROM moved",
        'ALTER TABLE "reviews_vote" ADD COLUMN "y" int',
    ],
)
def test_statements_that_change_a_table_are_writes(sql):
    assert page_cache.is_write(sql)


@pytest.mark.parametrize(
    "sql",
    [
        'SELECT "id" FROM "reviews_transitionrequest" FOR UPDATE',
        "WITH recent AS (SELECT 1) SELECT * FROM recent",
        'SAVEPOINT "s1"',
        'RELEASE SAVEPOINT "s1"',
    ],
)
def test_reads_and_savepoints_are_not_writes(sql):
    assert not page_cache.is_write(sql)


def generation() -> int:
    return int(page_cache.client().get(page_cache.GENERATION_KEY) or 0)


def test_a_write_bumps_once_its_transaction_commits_and_not_before(world):
    before = generation()
    with transaction.atomic():
        TransitionRequest.objects.filter(pk=-1).update(comment="x")
        Group.objects.create(name="one")
        assert page_cache.has_uncommitted_writes(connection)
        assert generation() == before
    assert generation() == before + 1
    assert not page_cache.has_uncommitted_writes(connection)


def test_a_rolled_back_write_bumps_nothing_and_leaves_the_connection_clean(world):
    before = generation()
    with pytest.raises(RuntimeError), transaction.atomic():
        Group.objects.create(name="gone")
        raise RuntimeError
    assert generation() == before
    assert not page_cache.has_uncommitted_writes(connection)
    with transaction.atomic():
        with pytest.raises(RuntimeError), transaction.atomic():
            Group.objects.create(name="savepoint")
            raise RuntimeError
        assert not page_cache.has_uncommitted_writes(connection)


def test_writes_in_autocommit_raw_sql_and_bulk_writes_bump_at_once(world):
    before = generation()
    Group.objects.bulk_create([Group(name="a"), Group(name="b")])
    with connection.cursor() as cursor:
        cursor.execute("UPDATE auth_group SET name = name WHERE name = 'a'")
    Group.objects.filter(name="b").delete()
    assert generation() >= before + 3


def test_a_connection_opened_in_another_thread_is_watched(world):
    before = generation()

    def write():
        try:
            Group.objects.create(name="from-a-thread")
        finally:
            connection.close()

    thread = threading.Thread(target=write)
    thread.start()
    thread.join()
    assert generation() == before + 1


# ---- served again, to whom -----------------------------------------------------------------


def test_each_page_is_served_again_from_the_cache(world, requester, django_assert_num_queries):
    review = make_request("fraud", 2, requester=requester)
    client = browser_of(world.people["scientist1"])
    for url in [
        reverse("reviews:inbox"),
        reverse("reviews:request_detail", args=[review.pk]),
        reverse("registry:version_detail", args=["fraud", 2]),
        reverse("registry:model_detail", args=["fraud"]),
        reverse("registry:model_list"),
        reverse("registry:compare", args=["fraud"]) + "?a=1&b=2",
    ]:
        served_from_cache(client, url, django_assert_num_queries)


def test_another_user_or_another_browser_gets_a_page_of_its_own(world, requester):
    review = make_request("fraud", 2, requester=requester)
    url = reverse("reviews:request_detail", args=[review.pk])
    scientist = browser_of(world.people["scientist1"])
    scientist.get(url)
    kept = scientist.get(url).content

    other_user = browser_of(world.people["lead"])
    assert other_user.get(url).content != kept
    # The same user in another browser: its CSRF secret differs, so must its forms' tokens.
    same_user_elsewhere = browser_of(world.people["scientist1"])
    elsewhere = same_user_elsewhere.get(url)
    assert elsewhere.content != kept
    token = same_user_elsewhere.cookies["csrftoken"].value
    assert token not in kept.decode()


def test_a_cached_page_form_is_accepted_from_its_own_browser(world, requester):
    review = make_request("fraud", 2, requester=requester)
    url = reverse("reviews:request_detail", args=[review.pk])
    client = login(Client(enforce_csrf_checks=True), world.people["scientist1"])
    client.get(reverse("reviews:inbox"))
    client.get(url)
    page = client.get(url).content.decode()
    token = page.split('name="csrfmiddlewaretoken" value="', 1)[1].split('"', 1)[0]
    response = client.post(
        reverse("reviews:vote", args=[review.pk]),
        {"csrfmiddlewaretoken": token, "decision": "approve", "comment": "fine"},
    )
    assert response.status_code in (200, 302)
    assert review.votes.filter(user=world.people["scientist1"]).exists()


def test_a_page_with_a_message_waiting_is_neither_served_nor_kept(world, rf):
    """A message ("Your comment is posted.") is shown once, on the next page: that page is made."""
    request = rf.get(reverse("reviews:inbox"))
    request.user = world.people["lead"]
    request.META["CSRF_COOKIE"] = "s" * 32
    request.session = {}
    assert page_cache.page_key(request, "inbox", 1) is not None
    request.COOKIES["messages"] = "waiting"
    assert page_cache.page_key(request, "inbox", 1) is None
    del request.COOKIES["messages"]
    request.session = {"_messages": "waiting"}
    assert page_cache.page_key(request, "inbox", 1) is None


def test_a_page_whose_view_changed_the_session_is_not_kept(world, rf):
    """Values kept for a form are taken out of the session by the page that shows them once."""
    from django.contrib.sessions.backends.db import SessionStore

    session = SessionStore()
    session["kept-form:break-glass"] = {"model": "fraud", "values": {"reason": "outage"}}
    session.save()
    shown = []

    @page_cache.cached_page
    def view(request):
        shown.append(request.session.pop("kept-form:break-glass", None))
        return HttpResponse(f"form: {shown[-1]}")

    def ask():
        request = rf.get("/models/fraud/")
        request.user = world.people["lead"]
        request.META["CSRF_COOKIE"] = "s" * 32
        request.session = SessionStore(session.session_key)
        response = view(request)
        if request.session.modified:
            request.session.save()
        return response.content.decode()

    assert "outage" in ask()
    assert ask() == "form: None"  # made afresh: the page that showed the values was not kept
    assert ask() == "form: None" and len(shown) == 2  # this one was


def asking_at_once(view, user, answers: int) -> list[str]:
    """`answers` threads asking `view` for the same page at once, as one browser."""
    from django.contrib.sessions.backends.base import SessionBase
    from django.test import RequestFactory

    start = threading.Barrier(answers)
    bodies: list[str] = []

    def ask():
        request = RequestFactory().get("/models/fraud/")
        request.user = user
        request.META["CSRF_COOKIE"] = "s" * 32
        request.session = SessionBase()
        start.wait(10)
        bodies.append(view(request).content.decode())

    threads = [threading.Thread(target=ask) for _ in range(answers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return bodies


def test_answers_asking_for_one_page_at_once_make_it_once(world):
    made = []

    @page_cache.cached_page
    def view(request):
        made.append(1)
        time.sleep(0.2)  # long enough for the others to find it being made
        return HttpResponse(f"page {len(made)}")

    bodies = asking_at_once(view, world.people["lead"], 5)
    assert bodies == ["page 1"] * 5
    assert len(made) == 1


def test_when_the_maker_keeps_nothing_the_others_make_their_own_without_waiting_long(world):
    made = []

    @page_cache.cached_page
    def view(request):
        made.append(1)
        time.sleep(0.1)
        return HttpResponse("not kept", status=503)

    started = time.monotonic()
    bodies = asking_at_once(view, world.people["lead"], 4)
    assert bodies == ["not kept"] * 4 and len(made) == 4
    assert time.monotonic() - started < page_cache.WAIT_FOR_MAKER_SECONDS


# ---- never after a change: each kind of change the pages show --------------------------------


def test_a_vote_shows_on_the_request_page_the_inbox_and_the_navigation(world, requester):
    review = make_request("fraud", 2, requester=requester)
    scientist = browser_of(world.people["scientist1"])
    request_url = reverse("reviews:request_detail", args=[review.pk])
    inbox_url = reverse("reviews:inbox")
    for url in (request_url, inbox_url):
        scientist.get(url)
    assert "Drift checked" not in answer(scientist, request_url)
    assert "fraud" in answer(scientist, inbox_url).split("My requests")[0]

    voting.vote_cast(
        request_id=review.pk,
        user=world.people["scientist1"],
        decision="approve",
        comment="Drift checked.",
    )

    assert "Drift checked" in answer(scientist, request_url)
    # No longer awaiting this reviewer: gone from the list and from the navigation's count.
    assert "No requests await you" in answer(scientist, inbox_url)


def test_a_decision_shows_on_the_model_and_version_pages(world, requester, scientist2):
    review = make_request("fraud", 2, requester=requester, target="Staging")
    client = browser_of(world.people["lead"])
    model_url = reverse("registry:model_detail", args=["fraud"])
    version_url = reverse("registry:version_detail", args=["fraud", 2])
    before = {url: (client.get(url), answer(client, url))[1] for url in (model_url, version_url)}

    voting.vote_cast(request_id=review.pk, user=scientist2, decision="reject", comment="no")

    for url in (model_url, version_url):
        assert answer(client, url) != before[url]
    assert "rejected" in answer(client, model_url).lower()


def test_joining_a_group_shows_what_now_awaits_me(world, requester):
    make_request("fraud", 2, requester=requester)
    outsider = world.people["outsider"]
    client = browser_of(outsider)
    url = reverse("reviews:inbox")
    client.get(url)
    assert "No requests await you" in answer(client, url)

    outsider.groups.add(Group.objects.get(name="data-science"))

    assert "No requests await you" not in answer(client, url)


def test_a_policy_change_shows_on_the_version_page(world):
    client = browser_of(world.people["lead"])
    url = reverse("registry:version_detail", args=["fraud", 2])
    client.get(url)
    assert "ml-leads" in answer(client, url)

    policies_load(text=STANDARD_POLICIES.replace("ml-leads", "model-owners"))

    page = answer(client, url)
    assert "model-owners" in page
    assert ApprovalPolicy.objects.filter(name="production").exists()


def test_a_synced_stage_change_shows_on_the_version_and_models_pages(world):
    client = browser_of(world.people["lead"])
    version_url = reverse("registry:version_detail", args=["fraud", 3])
    models_url = reverse("registry:model_list")
    for url in (version_url, models_url):
        client.get(url)
    assert "Staging" not in answer(client, version_url).split("Request promotion")[0]
    models_before = answer(client, models_url)

    # What the sync writes, as a guarded update.
    ModelVersion.objects.filter(model__name="fraud", version=3).update(stage=Stage.STAGING)

    assert "Staging" in answer(client, version_url).split("Request promotion")[0]
    assert answer(client, models_url) != models_before


def test_a_comment_shows_on_the_request_page(world, requester):
    review = make_request("fraud", 2, requester=requester)
    client = browser_of(world.people["lead"])
    url = reverse("reviews:request_detail", args=[review.pk])
    client.get(url)
    assert "Please add the drift report" not in answer(client, url)

    comment_post(request_id=review.pk, user=requester, body="Please add the drift report.")

    assert "Please add the drift report" in answer(client, url)


# ---- the races and the bounds ----------------------------------------------------------------


def test_a_page_made_while_another_transaction_writes_is_not_served_after_its_commit(
    world, requester
):
    """The page is made from the data before the other transaction commits and kept; once that
    transaction commits, the kept page is not served again."""
    review = make_request("fraud", 2, requester=requester)
    client = browser_of(world.people["lead"])
    url = reverse("reviews:request_detail", args=[review.pk])
    written = threading.Event()
    commit = threading.Event()

    def writer():
        try:
            with transaction.atomic():
                comment_post(request_id=review.pk, user=requester, body="Written meanwhile.")
                written.set()
                commit.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=writer)
    thread.start()
    assert written.wait(10)
    assert "Written meanwhile" not in answer(client, url)  # made and kept, before the commit
    assert "Written meanwhile" not in answer(client, url)  # served from the cache
    commit.set()
    thread.join(10)

    assert "Written meanwhile" in answer(client, url)


def test_a_connection_with_uncommitted_writes_neither_reads_nor_keeps_pages(
    world, requester, django_assert_num_queries
):
    review = make_request("fraud", 2, requester=requester)
    client = browser_of(world.people["lead"])
    url = reverse("reviews:request_detail", args=[review.pk])
    client.get(url)
    client.get(url)  # kept
    with transaction.atomic():
        comment_post(request_id=review.pk, user=requester, body="Not committed yet.")
        # This connection sees its own write: it must make the page, not serve the kept one.
        assert "Not committed yet" in answer(client, url)
        transaction.set_rollback(True)
    assert "Not committed yet" not in answer(client, url)


def test_no_page_outlives_its_time_window_even_when_a_bump_was_lost(
    world, requester, settings, monkeypatch
):
    settings.QUORUM_PAGE_CACHE_SECONDS = 5
    review = make_request("fraud", 2, requester=requester)
    client = browser_of(world.people["lead"])
    url = reverse("reviews:request_detail", args=[review.pk])
    client.get(url)
    client.get(url)
    # A process that died between its commit and its bump: the write is there, the bump is not.
    monkeypatch.setattr(page_cache, "bump", lambda: None)
    comment_post(request_id=review.pk, user=requester, body="Lost bump.")
    assert "Lost bump" not in answer(client, url)  # the kept page, within its window
    now = page_cache.time.time()
    monkeypatch.setattr(page_cache.time, "time", lambda: now + 5)
    assert "Lost bump" in answer(client, url)


def test_pages_are_made_without_the_cache_when_redis_is_down(
    world, requester, settings, caplog, monkeypatch
):
    # The warning is logged once a minute: as if none was logged yet in this process.
    monkeypatch.setattr(page_cache, "_last_complaint", float("-inf"))
    review = make_request("fraud", 2, requester=requester)
    client = browser_of(world.people["lead"])
    settings.REDIS_URL = "redis://127.0.0.1:9/0"
    url = reverse("reviews:request_detail", args=[review.pk])
    assert "Please review" not in answer(client, url)
    comment_post(request_id=review.pk, user=requester, body="Please review soon.")
    assert "Please review soon" in answer(client, url)
    assert "page cache" in caplog.text


def test_a_zero_window_turns_the_cache_off(world, settings):
    settings.QUORUM_PAGE_CACHE_SECONDS = 0
    client = browser_of(world.people["lead"])
    url = reverse("registry:model_list")
    client.get(url)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    assert len(queries) > HIT_QUERIES


def test_metrics_count_the_answers_kept_made_and_the_invalidations(world, requester, settings):
    from prometheus_client.parser import text_string_to_metric_families

    settings.QUORUM_METRICS_TOKEN = token = "metrics-token-for-the-page-cache-0123456789"
    settings.QUORUM_METRICS_ALLOW = []
    page_cache.client().delete(page_cache.COUNTS_KEY)

    def scrape() -> dict:
        response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
        return {
            (sample.name, sample.labels.get("result")): sample.value
            for family in text_string_to_metric_families(response.content.decode())
            for sample in family.samples
            if sample.name.startswith("quorum_page_cache")
        }

    review = make_request("fraud", 2, requester=requester)
    client = browser_of(world.people["lead"])
    url = reverse("reviews:request_detail", args=[review.pk])
    before = scrape()
    for _ in range(3):
        client.get(url)  # made once, then kept twice
    comment_post(request_id=review.pk, user=requester, body="A change.")
    client.get(url)  # made again

    after = scrape()
    assert (
        after[("quorum_page_cache_answers_total", "made")]
        - before.get(("quorum_page_cache_answers_total", "made"), 0)
        == 2
    )
    assert (
        after[("quorum_page_cache_answers_total", "kept")]
        - before.get(("quorum_page_cache_answers_total", "kept"), 0)
        == 2
    )
    assert after[("quorum_page_cache_invalidations_total", None)] > before.get(
        ("quorum_page_cache_invalidations_total", None), 0
    )


def test_one_user_keeps_a_bounded_number_of_pages_a_window(world, monkeypatch):
    """Each query string is a page of its own: a user asking for `?page=1`, `?page=2`, ... must
    not fill Redis, which also holds RQ's jobs."""
    monkeypatch.setattr(page_cache, "MOST_KEPT_PER_USER", 3)
    client = browser_of(world.people["lead"])
    url = reverse("registry:model_list")
    for number in range(5):
        client.get(f"{url}?page={number}")
    kept = [
        client.get(f"{url}?page={number}")  # served from the cache if kept
        for number in range(5)
    ]
    assert all(response.status_code == 200 for response in kept)

    def kept_pages() -> int:
        return len(page_cache.client().keys(page_cache.PAGE_KEY_PREFIX + "*"))

    # The first three of the five (browser_of's inbox came before the CSRF cookie: not kept).
    assert kept_pages() == 3
    # Another user has room of their own.
    other = browser_of(world.people["scientist1"])
    other.get(url)
    assert kept_pages() == 4
