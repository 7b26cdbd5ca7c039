"""The API's OpenAPI schema and its docs page, and schema fuzzing against a live server."""

from __future__ import annotations

from datetime import timedelta

import pytest
import schemathesis
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from registry.models import ModelVersion
from reviews.api.auth import token_create
from reviews.models import COMMENT_MAX, TransitionRequest
from tests.factories import GOOD, make_model, make_version
from tests.pages import SUMMARY_FIELDS

pytestmark = pytest.mark.django_db


def test_openapi_schema_lists_the_endpoints(client):
    schema = client.get("/api/v1/openapi.json").json()
    assert set(schema["paths"]) == {
        "/api/v1/keys",
        "/api/v1/models",
        "/api/v1/models/{name}/versions",
        "/api/v1/models/{name}/timeline",
        "/api/v1/requests",
        "/api/v1/requests/{id}",
        "/api/v1/requests/{id}/votes",
        "/api/v1/requests/{id}/cancel",
        "/api/v1/rollbacks",
        "/api/v1/rollbacks/preview",
        "/api/v1/break-glass",
        "/api/v1/requests/{id}/comments",
        "/api/v1/requests/{id}/timeline",
        "/api/v1/policies/explain",
        "/api/v1/policies/test",
    }
    timeline = schema["paths"]["/api/v1/models/{name}/timeline"]["get"]
    assert {p["name"] for p in timeline["parameters"]} == {"name", "target", "at"}
    assert set(schema["paths"]["/api/v1/break-glass"]["post"]["responses"]) >= {"201", "429"}
    assert schema["components"]["securitySchemes"]["BearerToken"]["scheme"] == "bearer"
    listing = schema["paths"]["/api/v1/requests"]["get"]
    assert {p["name"] for p in listing["parameters"]} >= {"state", "model", "limit", "fields"}
    answer = listing["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer["discriminator"]["propertyName"] == "fields"
    assert set(schema["components"]["schemas"]["RequestSummary"]["properties"]) == SUMMARY_FIELDS
    request_in = schema["components"]["schemas"]["RequestIn"]
    assert request_in["properties"]["comment"]["maxLength"] == COMMENT_MAX
    assert request_in["properties"]["version"]["type"] == "integer"
    assert request_in["additionalProperties"] is False


def test_docs_page_loads_swagger_from_our_own_static_files(client):
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    html = page.content.decode()
    assert "/static/ninja/swagger-ui-bundle.js" in html
    assert "cdn" not in html.lower()
    asset = client.get("/static/ninja/swagger-ui-bundle.js")
    assert asset.status_code == 200
    assert b"SwaggerUI" in b"".join(asset.streaming_content)


# -- fuzzing ----------------------------------------------------------------------------------


@pytest.fixture
def lead_token(transactional_db, policies):
    return token_create(user=policies["lead"])[1]


@pytest.fixture
def api_schema(live_server, lead_token, rq_queue):
    """The schema as served, and a model with versions for the fuzzer to find."""
    rq_queue("transitions")  # approvals the fuzzer reaches queue jobs: keep them out of others'
    model = make_model("fraud-detector")
    make_version(model, 1, stage="Production", metrics={"f1": 0.87})
    make_version(model, 2, metrics=GOOD)
    return schemathesis.openapi.from_url(f"{live_server.url}/api/v1/openapi.json")


def fuzz(operation, mode, headers, **pinned) -> None:
    @given(case=operation.as_strategy(generation_mode=mode, **pinned))
    @settings(
        max_examples=20,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def call(case):
        case.call_and_validate(headers=headers, checks=[not_a_server_error])

    call()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_fuzzed_requests_never_get_a_server_error(api_schema, lead_token, requester, mode):
    """Every operation with valid and with invalid inputs: a 4xx at worst, never a 5xx. Random
    names and ids mostly miss, so path parameters are also pinned to rows that exist."""
    headers = {"Authorization": f"Bearer {lead_token}"}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) == 17  # every operation the schema lists
    pending = TransitionRequest.objects.create(
        version=make_version(ModelVersion.objects.get(version=2).model, metrics=GOOD),
        target="Production",
        requester=requester,
        policy_snapshot={"require": [{"group": "ml-leads", "approvals": 1}]},
        expires_at=timezone.now() + timedelta(days=1),
    )
    existing = {"id": pending.pk, "name": "fraud-detector"}

    for operation in operations:
        if mode == GenerationMode.NEGATIVE and not (
            operation.path_parameters or operation.query or operation.body
        ):
            continue  # nothing to get wrong (GET /keys)
        fuzz(operation, mode, headers)
        names = {p.name for p in operation.path_parameters}
        if names:
            fuzz(operation, mode, headers, path_parameters={n: existing[n] for n in names})
