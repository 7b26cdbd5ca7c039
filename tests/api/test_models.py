"""The registry through /api/v1: registered models and their versions, in pages, and an
unknown model's 404."""

from __future__ import annotations

import json

import pytest

from tests.factories import make_model, make_version
from tests.pages import create, refused

pytestmark = pytest.mark.django_db


def test_models_lists_names_aliases_and_version_counts(fraud, requester, as_user):
    make_model("zz-empty")
    make_model("gone", deleted=True)

    response = as_user(requester).get("/models")

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    first, second = body["items"]
    assert first == {
        "name": "fraud-detector",
        "description": "scores payments",
        "tags": {},
        "aliases": {"champion": 1},
        "versions": 3,
        "latest_version": 3,
    }
    assert (second["name"], second["versions"], second["latest_version"]) == ("zz-empty", 0, None)


def test_models_are_paginated(policies, requester, as_user):
    for n in range(5):
        make_model(f"m{n}")
    page = as_user(requester).get("/models", limit=2, offset=2).json()
    assert page["count"] == 5
    assert [m["name"] for m in page["items"]] == ["m2", "m3"]


def test_versions_show_stage_aliases_and_metrics_newest_first(fraud, requester, as_user):
    body = as_user(requester).get("/models/fraud-detector/versions").json()

    assert body["count"] == 3
    assert [v["version"] for v in body["items"]] == [3, 2, 1]
    v1 = body["items"][2]
    assert (v1["stage"], v1["aliases"], v1["metrics"]) == ("Production", ["champion"], {"f1": 0.87})
    assert body["items"][1]["params"] == {"alpha": "0.2"}


def test_nan_and_infinite_metrics_are_served_as_strings_and_fail_their_gates(
    fraud, requester, as_user
):
    make_version(fraud, 4, metrics={"accuracy": "NaN", "f1": "Infinity"})
    api = as_user(requester)

    versions = api.get("/models/fraud-detector/versions")
    created = create(api, version=4)

    assert versions.status_code == 200
    assert versions.json()["items"][0]["metrics"] == {"accuracy": "NaN", "f1": "Infinity"}
    assert created.status_code == 201, created.content
    body = json.loads(created.content, parse_constant=lambda c: pytest.fail(f"bare {c}"))
    assert body["decision"] == "rejected"
    accuracy = next(g for g in body["gates"] if g["metric"] == "accuracy")
    assert (
        accuracy["value"] == "NaN" and accuracy["reason"] == "accuracy is NaN: not a finite number"
    )


def test_versions_of_an_unknown_model_is_404(fraud, requester, as_user):
    detail = refused(as_user(requester).get("/models/nope/versions"), 404, "unknown_model")
    assert "nope" in detail
