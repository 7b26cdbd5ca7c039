"""Requesting a promotion (`reviews:request_new`) and the form on the version page that posts to
it: the targets policies cover with a preview, gates that would reject, who may request, inline
errors; GET creates nothing, anonymous → login, an unknown version → 404.

Every role against every mutating route: tests/reliability/test_permissions.py.
"""

from __future__ import annotations

import re

import pytest

from reviews.models import Decision, TransitionRequest
from tests.factories import make_model, make_version
from tests.pages import detail_url, login, messages_of, request_url, text_of

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_mlflow")]


def promotion_form(response) -> str:
    """The request form's HTML alone: the page's "Which policy applies" panel lists every
    covered target in its own select, whoever may request it."""
    body = response.content.decode()
    if 'id="promotion-form"' not in body:
        return ""
    return body.split('id="promotion-form"')[1].split("</form>")[0]


def test_version_page_offers_the_targets_policies_cover_with_a_preview(client, world, requester):
    response = login(client, requester).get("/models/fraud/versions/2/")
    body = response.content.decode()
    options = re.findall(
        r'<option value="([^"]+)"', body.split('id="promotion-target"')[1].split("</select>")[0]
    )
    assert options == ["Staging", "Production", "@champion"]
    assert '<option value="Production" selected>' in body
    text = text_of(response)
    assert "Policy production needs 1 of ml-leads and 2 of data-science , not counting you" in text
    assert "Compared with v1 , which holds Production now." in text
    assert "accuracy 0.9000 >= 0.8000" in text


def test_version_page_warns_when_a_required_gate_would_reject(client, world, requester):
    text = text_of(login(client, requester).get("/models/fraud/versions/3/"))
    assert "accuracy 0.7000, not >= 0.8000" in text
    assert "A required gate fails: this request would be rejected at once." in text


def test_version_page_links_an_open_request_instead_of_offering_it(client, pending, requester):
    response = login(client, requester).get("/models/fraud/versions/2/")
    assert f"request #{pending.pk} → Production is open" in text_of(response)
    assert '<option value="Production"' not in promotion_form(response)


def test_version_page_offers_a_target_only_to_its_policys_requester_groups(
    client, world, requester, lead
):
    from django.contrib.auth.models import Group

    from reviews.models import ApprovalPolicy
    from reviews.policies.loading import set_requesters

    set_requesters(
        ApprovalPolicy.objects.get(name="production"), [Group.objects.get(name="ml-leads")]
    )

    response = login(client, requester).get("/models/fraud/versions/2/")
    assert '<option value="Production"' not in promotion_form(response)
    assert '<option value="Staging"' in promotion_form(response)
    assert "Production: Only members of ml-leads may request Production" in text_of(response)
    refused = client.post(request_url("fraud", 2), {"target": "Production"})
    assert refused.status_code == 400 and not TransitionRequest.objects.exists()
    offered = promotion_form(login(client, lead).get("/models/fraud/versions/2/"))
    assert '<option value="Production"' in offered
    client.post(request_url("fraud", 2), {"target": "Production"})
    made = TransitionRequest.objects.get()
    assert "only ml-leads may request" in text_of(client.get(detail_url(made)))


def test_version_page_says_when_no_policy_covers_the_model(client, requester):
    from reviews.models import ApprovalPolicy

    model = make_model("uncovered")
    make_version(model, metrics={"accuracy": 0.9})
    ApprovalPolicy.objects.all().delete()
    text = text_of(login(client, requester).get("/models/uncovered/versions/1/"))
    assert "No approval policy covers uncovered" in text


def test_requesting_a_promotion_redirects_to_the_new_request(client, world, requester):
    response = login(client, requester).post(
        request_url("fraud", 2), {"target": "Production", "comment": "Weekly retrain."}, follow=True
    )
    created = TransitionRequest.objects.get()
    assert response.redirect_chain == [(detail_url(created), 302)]
    assert (created.target, created.requester, created.comment) == (
        "Production",
        requester,
        "Weekly retrain.",
    )
    assert f"Request #{created.pk} is open; the approvers are told." in messages_of(response)


def test_request_a_failing_candidate_is_rejected_at_once_and_says_why(client, world, requester):
    response = login(client, requester).post(
        request_url("fraud", 3), {"target": "Production"}, follow=True
    )
    created = TransitionRequest.objects.get()
    assert created.decision == Decision.REJECTED
    assert any("rejected at once: Required gate failed" in m for m in messages_of(response))


def test_request_for_a_target_no_policy_covers_is_an_inline_error(client, world, requester):
    response = login(client, requester).post(request_url("fraud", 2), {"target": "Archived"})
    assert response.status_code == 400
    assert "Pick one of the targets listed" in text_of(response)
    assert not TransitionRequest.objects.exists()


def test_duplicate_request_is_an_inline_error_and_changes_nothing(client, pending, requester):
    # Posted from a version page opened before the first request: Production still on offer.
    response = login(client, requester).post(request_url("fraud", 2), {"target": "Production"})
    assert response.status_code == 400
    assert "Pick one of the targets listed" in text_of(response)
    assert TransitionRequest.objects.count() == 1


def test_get_on_the_request_form_creates_nothing(client, world, requester):
    response = login(client, requester).get(request_url("fraud", 2), {"target": "Production"})
    assert response.status_code == 200
    assert not TransitionRequest.objects.exists()


def test_anonymous_request_goes_to_login(client, world):
    response = client.post(request_url("fraud", 2), {"target": "Production"})
    assert response.status_code == 302 and response.url.startswith("/accounts/login/")
    assert not TransitionRequest.objects.exists()


def test_request_for_an_unknown_version_is_a_404(client, world, requester):
    login(client, requester)
    assert client.post(request_url("fraud", 99), {"target": "Production"}).status_code == 404
    assert client.post(request_url("nope", 1), {"target": "Production"}).status_code == 404
    assert not TransitionRequest.objects.exists()
