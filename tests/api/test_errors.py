"""The API's limits and edges: bodies over its limit (and the longest one it must take), JSON too
deep, unknown routes and methods, all refused in its JSON shape; pages outside it keep HTML."""

from __future__ import annotations

import json

import pytest

from reviews.api.auth import token_create
from reviews.models import COMMENT_MAX, TransitionRequest
from tests.pages import Api, create, refused

pytestmark = pytest.mark.django_db


def test_the_longest_comment_fits_the_body_limit_however_it_is_escaped(fraud, requester, client):
    # Every character outside the BMP, sent as a \ud83d\ude00 pair: the most bytes per character.
    api = Api(client, requester)
    comment = "\N{GRINNING FACE}" * COMMENT_MAX
    raw = json.dumps(
        {"model": "fraud-detector", "version": 2, "target": "Production", "comment": comment}
    )
    assert len(raw) > COMMENT_MAX * 12

    response = api.post("/requests", raw=raw)

    assert response.status_code == 201, response.content
    assert TransitionRequest.objects.get().comment == comment


def test_a_body_over_the_api_limit_is_413_unread_and_nothing_is_logged_whole(
    fraud, requester, as_user, caplog
):
    huge = "x" * (1024 * 1024)
    raw = json.dumps(
        {"model": "fraud-detector", "version": 2, "target": "Production", "comment": huge}
    )

    detail = refused(as_user(requester).post("/requests", raw=raw), 413, "payload_too_large")

    assert "65,536 bytes" in detail
    assert not TransitionRequest.objects.exists()
    assert all(len(record.getMessage()) < 1000 for record in caplog.records)


@pytest.mark.parametrize("size", [64 * 1024 + 1, 3 * 1024 * 1024], ids=["over-64k", "over-django"])
def test_oversized_bodies_are_413_even_without_a_token(fraud, client, size):
    response = client.post("/api/v1/requests", "x" * size, content_type="application/json")

    refused(response, 413, "payload_too_large")


def test_djangos_own_body_limit_answers_413_in_the_apis_shape(fraud, requester, as_user, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000

    response = create(as_user(requester), comment="x" * 2000)

    assert "1,000 bytes" in refused(response, 413, "payload_too_large")
    assert not TransitionRequest.objects.exists()


def test_json_nested_too_deeply_is_400_not_a_server_error(fraud, requester, as_user):
    response = as_user(requester).post("/requests", raw="[" * 20_000 + "]" * 20_000)

    refused(response, 400, "malformed_request")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/nope"),
        ("post", "/api/v1/nope"),
        ("get", "/api/v1/requests/"),
        ("get", "/api/v1/models/fraud-detector"),
        ("get", "/api/v2/requests"),
        ("get", "/api/"),
    ],
)
def test_unknown_api_routes_are_404_in_json(fraud, requester, client, method, path):
    headers = {"Authorization": f"Bearer {token_create(user=requester)[1]}"}

    response = getattr(client, method)(path, headers=headers)

    assert response["Content-Type"].startswith("application/json")
    assert "/api/v1/docs" in refused(response, 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("get", "/requests/1/votes", "POST"),
        ("delete", "/requests/1", "GET"),
        ("put", "/models", "GET"),
    ],
)
def test_a_method_a_route_lacks_is_405_in_json(fraud, requester, client, method, path, allowed):
    headers = {"Authorization": f"Bearer {token_create(user=requester)[1]}"}

    response = getattr(client, method)("/api/v1" + path, headers=headers)

    assert allowed in refused(response, 405, "method_not_allowed")
    assert response["Allow"] == allowed


def test_pages_outside_the_api_keep_their_html_errors(client):
    response = client.get("/nope/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
