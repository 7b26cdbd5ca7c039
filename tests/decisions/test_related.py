"""Related requests: an earlier rejection of the same version for the same target must be
answered before asking again (form, API, engine), and other open requests for the same model
and target are pointed out on both pages."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from registry.models import Stage
from reviews.api.auth import token_create
from reviews.conversation import timeline
from reviews.decisions import opening, related, voting
from reviews.errors import AnswerRequired
from reviews.models import Decision, TransitionRequest
from tests.factories import make_model, make_version

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_mlflow")]
REASON = "Recall dropped on the March slice."


@pytest.fixture
def rejected(policies, requester, scientist1):
    """fraud v2 → Production, rejected by scientist1; v3 is another candidate."""
    model = make_model("fraud")
    make_version(model, 1, stage=Stage.PRODUCTION, metrics={"accuracy": 0.85, "f1": 0.80})
    make_version(model, 2, metrics={"accuracy": 0.90, "f1": 0.84})
    make_version(model, 3, metrics={"accuracy": 0.91, "f1": 0.85})
    request = opening.request_create(
        model="fraud", version=2, target="Production", requester=requester
    )
    voting.vote_cast(request_id=request.pk, user=scientist1, decision="reject", comment=REASON)
    return request


def again(requester, **extra):
    return opening.request_create(
        model="fraud", version=2, target="Production", requester=requester, **extra
    )


def test_requesting_a_rejected_version_again_needs_an_answer(rejected, requester):
    with pytest.raises(AnswerRequired) as refusal:
        again(requester)
    assert str(refusal.value).startswith(
        f"Previously rejected in #{rejected.pk} by scientist1: '{REASON}' Answer it"
    )
    with pytest.raises(AnswerRequired):
        again(requester, rejection_answer="   ")
    assert TransitionRequest.objects.count() == 1


def test_the_answer_is_kept_and_in_the_timeline(rejected, requester):
    repeat = again(requester, rejection_answer="Added March data to training.")
    assert repeat.rejection_answer == "Added March data to training."
    created = timeline.timeline(repeat)[0]
    assert created.items[0] == "Answer to the earlier rejection: Added March data to training."


def test_another_target_or_version_needs_no_answer(rejected, requester):
    other_version = opening.request_create(
        model="fraud", version=3, target="Production", requester=requester
    )
    other_target = opening.request_create(
        model="fraud", version=2, target="@champion", requester=requester
    )

    for request in (other_version, other_target):
        assert request.decision == Decision.PENDING
        assert request.rejection_answer == ""
    assert TransitionRequest.objects.count() == 3


def test_the_request_page_names_the_rejection_the_answer_and_the_other_open_request(
    client, rejected, requester, lead
):
    repeat = again(requester, rejection_answer="Added March data.")
    other = opening.request_create(
        model="fraud", version=3, target="Production", requester=requester
    )
    client.force_login(lead)
    page = client.get(reverse("reviews:request_detail", args=[repeat.pk]))
    body = page.content.decode()
    assert (
        f'Previously rejected in <a href="/reviews/{rejected.pk}/">#{rejected.pk}</a> by scientist1'
        in body
    )
    assert f"<q>{REASON}</q>" in body and "Added March data." in body
    assert f'<a href="/reviews/{other.pk}/">#{other.pk} (v3)</a>' in body
    # And the other request's page points back.
    body = client.get(reverse("reviews:request_detail", args=[other.pk])).content.decode()
    assert f'<a href="/reviews/{repeat.pk}/">#{repeat.pk} (v2)</a>' in body
    assert "Previously rejected" not in body


def test_the_promotion_form_shows_the_rejection_and_refuses_without_an_answer(
    client, rejected, requester
):
    client.force_login(requester)
    url = reverse("reviews:request_new", args=["fraud", 2])
    form = client.get(url).content.decode()
    assert f"Previously rejected in #{rejected.pk} by scientist1: &#x27;{REASON}&#x27;" in form
    assert 'name="rejection_answer"' in form and "required to request Production" in form
    response = client.post(url, {"target": "Production", "comment": "Retrained."})
    assert response.status_code == 400
    assert "Answer it (what changed since?)" in response.content.decode()
    assert "Retrained." in response.content.decode()  # what was typed stays
    assert TransitionRequest.objects.count() == 1
    response = client.post(url, {"target": "Production", "rejection_answer": "Added March data."})
    assert response.status_code == 302
    assert TransitionRequest.objects.latest("id").rejection_answer == "Added March data."


def test_the_promotion_form_points_to_another_open_request(client, rejected, requester):
    other = opening.request_create(
        model="fraud", version=3, target="Production", requester=requester
    )
    client.force_login(requester)
    form = client.get(reverse("reviews:request_new", args=["fraud", 2])).content.decode()
    assert f'Also open for Production: <a href="/reviews/{other.pk}/">#{other.pk} (v3)</a>' in form


def test_the_api_refuses_without_the_answer_and_takes_it(client, rejected, requester):
    headers = {"Authorization": f"Bearer {token_create(user=requester, name='t')[1]}"}

    def post(**extra):
        body = {"model": "fraud", "version": 2, "target": "Production", **extra}
        return client.post(
            "/api/v1/requests", json.dumps(body), content_type="application/json", headers=headers
        )

    refused = post()
    assert refused.status_code == 422
    assert refused.json()["error"] == "answer_required"
    assert f"#{rejected.pk} by scientist1" in refused.json()["detail"]
    created = post(rejection_answer="Added March data.")
    assert created.status_code == 201
    assert created.json()["rejection_answer"] == "Added March data."


def test_related_to_is_one_query(rejected, requester, django_assert_num_queries):
    repeat = again(requester, rejection_answer="ok")
    opening.request_create(model="fraud", version=3, target="Production", requester=requester)
    repeat = TransitionRequest.objects.select_related("version").get(pk=repeat.pk)
    with django_assert_num_queries(1):
        found = related.related_to(repeat)
        words = [related.rejection_words(r) for r in found.rejections]
    assert words == [f"Previously rejected in #{rejected.pk} by scientist1: '{REASON}'"]
    assert [r.version.version for r in found.open_others] == [3]
