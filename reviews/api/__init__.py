"""The REST API at /api/v1/: models, versions, transition requests and votes, as JSON.

Built with django-ninja, which routes, validates bodies and writes the OpenAPI schema
(/api/v1/openapi.json, interactive docs at /api/v1/docs). Endpoints are thin: they call
`reviews.decisions`, which checks permissions exactly as for the browser, and every refusal comes
back as `{"error": code, "detail": message}` with the status the refusal carries. Bad input is a
4xx, never a 500: bodies keep the forms' limits (`COMMENT_MAX`), versions are whole numbers, unknown
fields are refused, and `reviews.api.errors` answers unknown routes and oversized bodies in the
same shape.

One router per resource, each in its module and added here: `keys`, `registered_models` (models,
their versions and their timeline), `requests` (open, list, read, cancel, timeline), `rollbacks`,
`break_glass`, `votes`, `comments` and `policies` (explain, test). What their bodies and answers
look like is in `schemas`, `model_schemas` and `policy_schemas`; `representation` turns rows into
answers; `auth` is the bearer authentication.
"""

from __future__ import annotations

from ninja import NinjaAPI
from ninja.operation import Operation

from . import (
    break_glass,
    comments,
    errors,
    keys,
    policies,
    registered_models,
    requests,
    rollbacks,
    votes,
)
from .auth import BearerToken


class QuorumApi(NinjaAPI):
    def get_openapi_operation_id(self, operation: Operation) -> str:
        # Operation ids are published in the schema, and clients generated from it are named
        # after them: they keep the names they had when the API was the one module `reviews.api`.
        return f"reviews_api_{operation.view_func.__name__}"


api = QuorumApi(
    title="Quorum API",
    version="1",
    description="Request model promotions, follow their review, and vote. "
    "Authenticate with `Authorization: Bearer <token>`: a Quorum API token "
    "(`manage.py create_api_token USER`), or a CI system's workload identity token (a JWT from "
    "an issuer in QUORUM_CI_ISSUERS, acting as the service user its claims map to). "
    'Every error is `{"error": code, "detail": message}`. '
    "Every version Quorum promotes carries a signed approval proof (an in-toto Statement in a "
    "DSSE envelope, Ed25519) in its MLflow tag `quorum.attestation.<target>`; `GET /keys` "
    "(public) lists the keys that verify it, and `quorum verify` checks it.",
    auth=BearerToken(),
    urls_namespace="api-v1",
)
errors.install(api)
# The schema lists paths in this order, and so do the docs within each tag.
for resource in (
    keys,
    registered_models,
    requests,
    rollbacks,
    break_glass,
    votes,
    comments,
    policies,
):
    api.add_router("", resource.router)
