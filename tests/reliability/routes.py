"""The routes outside the permission matrix of test_permissions.py, by why: read-only pages and
endpoints, which refuse a POST (test_permissions_read_only.py); django-ninja's schema and docs,
which answer any method; and routes that are not Quorum's to check. `routes()` lists every named
route of the URLconf, so a new one that is in none of these nor in the matrix fails."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, get_resolver

# Read-only pages and endpoints: a POST is refused (405) and changes nothing.
READ_ONLY = {
    "reviews:inbox": {},
    "reviews:request_detail": {"pk": "pending"},
    "reviews:request_status": {"pk": "pending"},
    "reviews:audit": {},
    "reviews:audit_export": {},
    "reviews:break_glass_report": {},
    "reviews:analytics": {},  # staff only: tests/insight/test_analytics.py
    "registry:model_list": {},
    "registry:model_detail": {"name": "fraud"},
    "registry:version_detail": {"name": "fraud", "version": "2"},
    "registry:compare": {"name": "fraud"},
    "api-v1:list_models": {},
    "api-v1:list_versions": {"name": "fraud"},
    "api-v1:model_timeline": {"name": "fraud"},
    "api-v1:get_request": {"id": "pending"},
    "api-v1:get_timeline": {"id": "pending"},
    "api-v1:list_keys": {},
    "api-v1:explain_policy": {},
    "api-v1:preview_rollback": {},
}
# django-ninja's schema and docs answer any method; they write nothing.
ANY_METHOD: dict[str, dict[str, str]] = {"api-v1:openapi-json": {}, "api-v1:openapi-view": {}}
# Same path as a matrix route, or Django's own views (auth forms, the admin site, the RQ
# dashboard), which check staff status themselves; the RQ dashboard's actions are checked in
# test_permissions_read_only.py.
NOT_OURS = {"api-v1:list_requests", "api-v1:list_comments", "api-v1:api-root"}
DJANGO_AUTH = {
    "login",
    "password_change",
    "password_change_done",
    "password_reset",
    "password_reset_done",
    "password_reset_confirm",
    "password_reset_complete",
    # The identity provider's round trip: it signs someone in only with a valid state, nonce and
    # ID token (tests/identity/test_sign_in.py refuses each forgery).
    "oidc_authentication_init",
    "oidc_authentication_callback",
}


def routes() -> set[str]:
    def walk(patterns, namespace=None):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                inner = pattern.namespace
                yield from walk(pattern.url_patterns, inner if inner else namespace)
            elif isinstance(pattern, URLPattern) and pattern.name:
                yield f"{namespace}:{pattern.name}" if namespace else pattern.name

    return set(walk(get_resolver().url_patterns))
