"""The inbox, the navigation's count, and what the review app adds to the registry's model and
version pages: request history with rejection reasons, the out-of-band banner, query budgets."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from registry.models import ChangeKind, ChangeOrigin, RegistryChange, Stage
from reviews.decisions import opening, voting
from reviews.models import Decision, TransitionRequest
from tests.factories import ESCAPED, HOSTILE, make_model, make_version
from tests.pages import login, text_of

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_mlflow")]

# Session and user (2); the user's groups and the requests awaiting them (2); each list's count
# and its page's rows (5: the awaiting list's count is its list of ids; an empty list reads no
# rows); the three lists' votes in one query (1).
INBOX_QUERIES = 10
# The model page's holders timeline: the replay, the requests that caused the holdings and their
# approvals, and the policies read to offer the break-glass form
# (tests/insight/test_holder_history.py).
MODEL_QUERIES = 12
# The promotion form loads the policies once, then looks up each named target's holder.
# +2, constant in the number of versions and requests: the "Which policy applies" panel reads
# the policies' targets (one query), and the preview sized through reviews.decisions.sizing
# reads the versions' evidence (one query). +1 more: the signed proofs panel reads the proofs'
# revocations (the proofs come with the promotion form's requests of the version, one query).
VERSION_QUERIES = 17


def good_model(name: str, versions: int = 2, **fields):
    model = make_model(name, **fields)
    make_version(model, stage=Stage.PRODUCTION, metrics={"accuracy": 0.85, "f1": 0.80})
    for _ in range(versions - 1):
        make_version(model, metrics={"accuracy": 0.90, "f1": 0.84})
    return model


def open_request(name: str, version: int, requester, target: str = "Production"):
    return opening.request_create(model=name, version=version, target=target, requester=requester)


def section(response, key: str) -> str:
    body = response.content.decode()
    start = body.index(f'id="{key}"')
    end = body.find("<section", start + 1)
    return body[start : end if end != -1 else len(body)].replace("\xa0", " ")


def test_inbox_lists_what_awaits_me_oldest_first_with_progress_gates_and_time_left(
    client, policies, requester, lead, scientist1
):
    for name in ("alpha", "beta"):
        good_model(name)
    older = open_request("alpha", 2, requester)
    two_days_ago = timezone.now() - timedelta(days=2)
    TransitionRequest.objects.filter(pk=older.pk).update(
        created_at=two_days_ago, expires_at=two_days_ago + timedelta(days=7)
    )
    newer = open_request("beta", 2, requester)
    voting.vote_cast(request_id=newer.pk, user=lead, decision="approve")

    response = login(client, scientist1).get("/reviews/")
    awaiting = section(response, "awaiting")
    assert awaiting.index("alpha") < awaiting.index("beta")
    assert "ml-leads 1/1" in awaiting and "data-science 0/2" in awaiting
    assert "2 gates passed" in awaiting
    assert "4 days, 23 hours" in awaiting  # a 7-day request made two days ago
    assert "requester" in awaiting


def test_inbox_leaves_out_what_i_voted_on_requested_or_am_not_eligible_for(
    client, policies, requester, lead, outsider
):
    good_model("alpha")
    good_model("beta")
    voted = open_request("alpha", 2, requester)
    voting.vote_cast(request_id=voted.pk, user=lead, decision="approve")
    open_request("beta", 2, lead)  # the lead's own request: no self-approval
    assert "No requests await you." in text_of(login(client, lead).get("/reviews/"))
    assert "No requests await you." in text_of(login(client, outsider).get("/reviews/"))


def test_a_request_whose_only_vote_of_mine_went_stale_awaits_me_again(
    client, policies, requester, lead
):
    good_model("alpha")
    request = open_request("alpha", 2, requester)
    voting.vote_cast(request_id=request.pk, user=lead, decision="approve")
    assert "No requests await you." in text_of(login(client, lead).get("/reviews/"))

    voting.approvals_mark_stale(request, reason="Production is now held by v3 (was v1).")

    response = client.get("/reviews/")
    assert "alpha" in section(response, "awaiting")
    assert "ml-leads 0/1" in section(response, "awaiting")


def test_my_requests_and_recently_decided_show_the_rejection_reason(
    client, policies, requester, scientist1
):
    good_model("alpha")
    rejected = open_request("alpha", 2, requester)
    voting.vote_cast(
        request_id=rejected.pk, user=scientist1, decision="reject", comment="Overfits March."
    )
    response = login(client, requester).get("/reviews/")
    for key in ("mine", "decided"):
        part = section(response, key)
        assert "Why rejected:" in part and "Overfits March." in part
        assert "rejected" in part


def test_inbox_filters_by_model_and_state(client, policies, requester, scientist1):
    good_model("alpha")
    good_model("beta")
    open_request("alpha", 2, requester)
    beta = open_request("beta", 2, requester)
    voting.vote_cast(request_id=beta.pk, user=scientist1, decision="reject", comment="no")
    login(client, requester)
    mine = section(client.get("/reviews/", {"model": "alp"}), "mine")
    assert "alpha" in mine and "beta" not in mine
    mine = section(client.get("/reviews/", {"state": "rejected"}), "mine")
    assert "beta" in mine and "alpha" not in mine
    response = client.get("/reviews/", {"state": "approved"})
    assert "Nothing here matches the filter." in text_of(response)


def test_inbox_pages_each_list(client, policies, requester):
    model = good_model("alpha", versions=1)
    for _ in range(23):
        make_version(model, metrics={"accuracy": 0.9, "f1": 0.84})
    for number in range(2, 25):
        open_request("alpha", number, requester)
    login(client, requester)
    first = client.get("/reviews/")
    assert "Page 1 of 2" in text_of(first)
    assert "?mine=2#mine" in first.content.decode()
    second = client.get("/reviews/", {"mine": "2"})
    assert section(second, "mine").count('class="request-link"') == 3


def test_what_awaits_me_is_paged_oldest_first_and_filtered(client, policies, requester, scientist1):
    model = good_model("alpha", versions=1)
    for _ in range(22):
        make_version(model, metrics={"accuracy": 0.9, "f1": 0.84})
    opened = [open_request("alpha", number, requester) for number in range(2, 24)]
    good_model("beta")
    beta = open_request("beta", 2, requester)
    login(client, scientist1)

    first = client.get("/reviews/")
    assert "Reviews 23 awaiting you" in text_of(first)
    links = section(first, "awaiting")
    assert links.count('class="request-link"') == 20
    assert links.index(f"/reviews/{opened[0].pk}/") < links.index(f"/reviews/{opened[19].pk}/")
    second = section(client.get("/reviews/", {"awaiting": "2"}), "awaiting")
    assert second.count('class="request-link"') == 3
    assert f"/reviews/{opened[20].pk}/" in second and f"/reviews/{beta.pk}/" in second
    filtered = client.get("/reviews/", {"model": "bet"})
    assert section(filtered, "awaiting").count('class="request-link"') == 1
    # The navigation counts everything that awaits me, whatever the list's filter.
    assert "Reviews 23 awaiting you" in text_of(filtered)


def test_empty_inbox_says_what_to_do_next(client, policies, outsider):
    text = text_of(login(client, outsider).get("/reviews/"))
    assert "No requests await you." in text
    assert "Open a model version and use “Request promotion”." in text


def test_navigation_counts_requests_awaiting_me(client, policies, requester, scientist1):
    good_model("alpha")
    good_model("beta")
    open_request("alpha", 2, requester)
    open_request("beta", 2, requester)
    response = login(client, scientist1).get("/")
    assert "Reviews 2 awaiting you" in text_of(response)
    assert "Audit" not in text_of(response)  # staff only
    response = login(client, requester).get("/")
    assert "awaiting you" not in text_of(response)


def test_navigation_shows_audit_and_admin_to_staff(client, admin_user):
    text = text_of(login(client, admin_user).get("/reviews/"))
    assert "Audit" in text and "Admin" in text and "Log out" in text


def test_inbox_needs_a_login(client):
    response = client.get("/reviews/")
    assert response.status_code == 302 and response.url.startswith("/accounts/login/")


@pytest.mark.parametrize("size", [2, 12])
def test_inbox_query_count_does_not_grow(
    client, policies, requester, scientist1, size, django_assert_max_num_queries
):
    science = Group.objects.get(name="data-science")
    for n in range(size):
        name = f"bulk-{n:02d}"
        good_model(name)
        request = open_request(name, 2, requester)
        voting.vote_cast(
            request_id=request.pk,
            user=science.user_set.get(username="scientist2"),
            decision="approve",
        )
        if n % 3 == 0:
            voting.vote_cast(
                request_id=request.pk, user=scientist1, decision="reject", comment="no"
            )
    login(client, scientist1)
    with django_assert_max_num_queries(INBOX_QUERIES):
        response = client.get("/reviews/")
    assert response.status_code == 200
    login(client, requester)
    with django_assert_max_num_queries(INBOX_QUERIES):
        assert client.get("/reviews/").status_code == 200


# -- the model page: request history and the out-of-band banner --------------------------------


def test_model_page_lists_its_requests_with_rejection_reasons(
    client, policies, requester, scientist1
):
    model = good_model("alpha", versions=3)
    rejected = open_request("alpha", 2, requester)
    voting.vote_cast(
        request_id=rejected.pk, user=scientist1, decision="reject", comment="Recall fell."
    )
    resubmitted = open_request("alpha", 3, requester)
    response = login(client, requester).get(f"/models/{model.name}/")
    part = section(response, "requests")
    assert part.index(f"/reviews/{resubmitted.pk}/") < part.index(f"/reviews/{rejected.pk}/")
    assert "Why rejected:" in part and "Recall fell." in part
    assert "v2 → Production" in part and "v3 → Production" in part


def test_model_page_without_requests_says_how_to_make_one(client, policies, requester):
    good_model("alpha")
    text = text_of(login(client, requester).get("/models/alpha/"))
    assert "No promotion has been requested for this model yet." in text


def test_out_of_band_change_is_flagged_on_model_and_version_pages(client, policies, admin_user):
    model = good_model("alpha")
    v1 = model.versions.get(version=1)
    RegistryChange.objects.create(
        model=model,
        version=v1,
        kind=ChangeKind.STAGE_CHANGED,
        old="Production",
        new="Archived",
        origin=ChangeOrigin.OUT_OF_BAND,
    )
    # Ones Quorum made, and old ones, are not news.
    RegistryChange.objects.create(
        model=model, version=v1, kind=ChangeKind.ALIAS_ADDED, new="x", origin=ChangeOrigin.QUORUM
    )
    old = RegistryChange.objects.create(
        model=model, version=v1, kind=ChangeKind.ALIAS_ADDED, new="old", origin="out_of_band"
    )
    RegistryChange.objects.filter(pk=old.pk).update(observed_at=timezone.now() - timedelta(days=60))
    login(client, admin_user)
    text = text_of(client.get("/models/alpha/"))
    assert "Changed in MLflow outside Quorum." in text
    assert "v1 : stage Production → Archived" in text
    # The banner is news; the timeline further down lists every holding, @x included.
    banner = text[: text.index("Who held what, when")]
    assert "@x" not in banner and "@old" not in banner
    assert "Changed in MLflow outside Quorum." in text_of(client.get("/models/alpha/versions/1/"))
    assert "Changed in MLflow outside Quorum." not in text_of(
        client.get("/models/alpha/versions/2/")
    )


def test_no_banner_without_out_of_band_changes(client, policies, requester):
    good_model("alpha")
    assert "outside Quorum" not in text_of(login(client, requester).get("/models/alpha/"))


@pytest.mark.parametrize("size", [2, 12])
def test_model_and_version_pages_with_reviews_stay_within_budget(
    client, policies, requester, scientist1, size, django_assert_max_num_queries
):
    model = good_model("alpha", versions=size + 2)
    for number in range(2, size + 2):
        request = open_request("alpha", number, requester)
        voting.vote_cast(request_id=request.pk, user=scientist1, decision="approve")
        RegistryChange.objects.create(
            model=model,
            version=request.version,
            kind=ChangeKind.ALIAS_ADDED,
            new=f"a{number}",
            origin=ChangeOrigin.OUT_OF_BAND,
        )
    login(client, scientist1)
    with django_assert_max_num_queries(MODEL_QUERIES):
        assert client.get("/models/alpha/").status_code == 200
    with django_assert_max_num_queries(VERSION_QUERIES):
        assert client.get(f"/models/alpha/versions/{size + 2}/").status_code == 200


def test_hostile_model_text_is_escaped_on_inbox_model_and_version_pages(
    client, policies, requester, scientist1
):
    model = good_model(HOSTILE, description=HOSTILE, tags={HOSTILE: HOSTILE})
    request = open_request(HOSTILE, 2, requester)
    voting.vote_cast(request_id=request.pk, user=scientist1, decision="reject", comment=HOSTILE)
    RegistryChange.objects.create(
        model=model,
        version=request.version,
        kind=ChangeKind.ALIAS_ADDED,
        new=HOSTILE,
        origin=ChangeOrigin.OUT_OF_BAND,
    )
    login(client, requester)
    for url in ("/reviews/", f"/models/{HOSTILE}/", f"/models/{HOSTILE}/versions/2/"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert HOSTILE not in response.content.decode(), url
        assert ESCAPED in response.content.decode(), url
    assert TransitionRequest.objects.get().decision == Decision.REJECTED
