"""The version page's "Which policy applies" panel: a GET form picks a target and the page
explains it as the API does, creating nothing."""

from __future__ import annotations

import pytest

from reviews.models import TransitionRequest
from tests.factories import make_fraud_detector
from tests.pages import text_of

pytestmark = pytest.mark.django_db

PAGE = "/models/fraud-detector/versions/2/"


@pytest.fixture
def page(client, policies, requester):
    make_fraud_detector()
    client.force_login(requester)
    return client


def test_the_panel_offers_the_targets_policies_cover_and_explains_none_until_asked(page):
    shown = text_of(page.get(PAGE))

    assert "Which policy applies" in shown
    assert "A request would need" not in shown


def test_a_picked_target_is_explained_and_nothing_is_created(page):
    response = page.get(PAGE, {"explain": "Production"})

    shown = text_of(response)
    assert response.status_code == 200
    assert "A request would need" in shown
    assert "Compared with v1, which holds Production now" in shown
    assert "1 of ml-leads and 2 of data-science" in shown
    assert TransitionRequest.objects.count() == 0


def test_a_target_no_policy_covers_says_so(page):
    shown = text_of(page.get(PAGE, {"explain": "@shadow"}))

    assert "No approval policy covers fraud-detector → @shadow" in shown
