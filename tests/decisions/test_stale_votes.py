"""An approval that went stale, and its voter voting again: real MLflow, the real sync.

The steps that once locked a request for ever: lead (the only member of ml-leads) approves v3 for
Production; someone moves v2 into Production in MLflow directly; the sync sees it and the approval
goes stale (the baseline it was given against changed). lead must be able to approve again, on
the page, through the API and (tests/cli/test_cli.py) the CLI; the stale vote stays in the history.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from registry import content
from registry.sync import sync_registry
from reviews.api.auth import token_create
from reviews.audit import verification
from reviews.decisions import opening, voting
from reviews.execution import jobs
from reviews.models import Decision, Execution, TransitionRequest, Vote
from tests.mlflow_registry import register_in_mlflow

pytestmark = pytest.mark.django_db

STALE_REASON = "Production is now held by v2 (was v1)."


@pytest.fixture
def stale(mlflow_client, unique_name, policies, requester, lead):
    """A request for v3 → Production whose only approval, lead's, went stale when v2 was moved
    into Production in MLflow directly."""
    three_versions_v1_in_production(mlflow_client, unique_name)
    request = opening.request_create(
        model=unique_name, version=3, target="Production", requester=requester
    )
    voting.vote_cast(request_id=request.pk, user=lead, decision="approve", comment="v3 wins")

    mlflow_client.transition_stage(unique_name, 2, "Production")  # out of band
    sync_registry(model=unique_name, client=mlflow_client)

    vote = Vote.objects.get(request=request, user=lead)
    assert (vote.stale, vote.stale_reason) == (True, STALE_REASON)
    request.refresh_from_db()
    assert request.decision == Decision.PENDING and request.baseline.version == 2
    return request


def three_versions_v1_in_production(mlflow_client, name: str) -> None:
    """`name` v1–v3 in MLflow and the mirror, v1 in Production, their content digested (the
    digest job: requests pin the content)."""
    register_in_mlflow(mlflow_client, name, versions=3)
    mlflow_client.transition_stage(name, 1, "Production")
    sync_registry(model=name, client=mlflow_client)
    content.digest_missing(client=mlflow_client)


def history(request) -> list[tuple[str, str, bool]]:
    return [
        (v.user.username, v.decision, v.stale)
        for v in request.votes.select_related("user").order_by("created_at", "id")
    ]


def test_the_stale_voter_approves_again_and_the_transition_happens_in_mlflow(
    stale,
    mlflow_client,
    lead,
    scientist1,
    scientist2,
    rq_queue,
    simple_worker,
    django_capture_on_commit_callbacks,
):
    transitions = rq_queue(jobs.QUEUE)
    assert voting.vote_refusal(stale, lead) is None

    with django_capture_on_commit_callbacks(execute=True):
        again = voting.vote_cast(request_id=stale.pk, user=lead, decision="approve")
        for scientist in (scientist1, scientist2):
            voting.vote_cast(request_id=stale.pk, user=scientist, decision="approve")

    request = TransitionRequest.objects.get(pk=stale.pk)
    assert request.decision == Decision.APPROVED
    assert request.decision_reason == (
        "Quorum reached by 3 different people: "
        "ml-leads 1/1 (lead), data-science 2/2 (scientist1, scientist2)"
    )
    assert again.groups == ["ml-leads"]
    assert history(request) == [
        ("lead", "approve", True),  # kept, no longer counting
        ("lead", "approve", False),
        ("scientist1", "approve", False),
        ("scientist2", "approve", False),
    ]
    simple_worker(transitions)
    assert mlflow_client.get_version(request.version.model.name, 3).stage == "Production"
    request.refresh_from_db()
    assert request.execution == Execution.DONE
    actions = list(request.audit_events.order_by("sequence").values_list("action", flat=True))
    assert actions.index("votes.stale") < actions.index("request.approved")
    assert actions.count("vote.cast") == 4
    assert verification.verify().ok


def test_the_stale_voter_sees_why_and_votes_again_on_the_page(
    stale, client, lead, scientist1, scientist2
):
    client.force_login(lead)
    url = reverse("reviews:request_detail", args=[stale.pk])

    page = client.get(url).content.decode()
    assert "Your approval no longer counts: " + STALE_REASON in page
    assert 'name="decision" value="approve"' in page
    assert 'class="vote vote-approve is-stale"' in page  # the old vote, struck through

    response = client.post(
        reverse("reviews:vote", args=[stale.pk]), {"decision": "approve"}, follow=True
    )
    assert "You approved. The request waits for the other sign-offs." in [
        str(m) for m in response.context["messages"]
    ]
    page = response.content.decode()
    assert "You already voted (approve) on this request." in page  # once is enough
    assert "Your approval no longer counts" not in page
    for scientist in (scientist1, scientist2):
        voting.vote_cast(request_id=stale.pk, user=scientist, decision="approve")
    assert TransitionRequest.objects.get(pk=stale.pk).decision == Decision.APPROVED


def test_the_stale_voter_votes_again_through_the_api(stale, client, lead, scientist1, scientist2):
    def vote(user):
        return client.post(
            f"/api/v1/requests/{stale.pk}/votes",
            {"decision": "approve"},
            content_type="application/json",
            headers={"Authorization": f"Bearer {token_create(user=user)[1]}"},
        )

    response = vote(lead)

    assert response.status_code == 201, response.content
    votes = response.json()["votes"]
    assert [(v["user"], v["stale"], v["stale_reason"], v["counted_for"]) for v in votes] == [
        ("lead", True, STALE_REASON, None),
        ("lead", False, "", "ml-leads"),
    ]
    assert response.json()["requirements"][0]["approvers"] == ["lead"]
    twice = vote(lead)
    assert twice.status_code == 409 and twice.json()["error"] == "already_voted"
    vote(scientist1)
    assert vote(scientist2).json()["decision"] == "approved"


def test_the_stale_reason_links_the_version_moved_in_mlflow_directly(stale, client, lead):
    vote = Vote.objects.get(request=stale, user=lead)
    name = stale.version.model.name
    moved = reverse("registry:version_detail", args=[name, 2])
    assert vote.stale_cause == {"label": f"{name} v2", "url": moved}

    client.force_login(lead)
    page = client.get(reverse("reviews:request_detail", args=[stale.pk])).content.decode()
    assert f'<a href="{moved}">see {name} v2</a>' in page


def test_the_stale_reason_links_the_request_whose_move_caused_it(
    mlflow_client,
    unique_name,
    policies,
    requester,
    lead,
    scientist1,
    scientist2,
    rq_queue,
    simple_worker,
    django_capture_on_commit_callbacks,
):
    three_versions_v1_in_production(mlflow_client, unique_name)
    waiting = opening.request_create(
        model=unique_name, version=3, target="Production", requester=requester
    )
    voting.vote_cast(request_id=waiting.pk, user=scientist1, decision="approve")
    # Another request moves v2 into Production through Quorum.
    first = opening.request_create(
        model=unique_name, version=2, target="Production", requester=requester
    )
    transitions = rq_queue(jobs.QUEUE)
    with django_capture_on_commit_callbacks(execute=True):
        for voter in (lead, scientist1, scientist2):
            voting.vote_cast(request_id=first.pk, user=voter, decision="approve")
    simple_worker(transitions)
    first.refresh_from_db()
    assert first.execution == Execution.DONE
    sync_registry(model=unique_name, client=mlflow_client)

    vote = Vote.objects.get(request=waiting, user=scientist1)
    assert vote.stale and vote.stale_reason == STALE_REASON
    assert vote.stale_cause == {
        "label": f"request #{first.pk}",
        "url": reverse("reviews:request_detail", args=[first.pk]),
    }
