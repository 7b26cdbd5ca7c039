"""Every mutating URL × anonymous / outsider / requester / approver / staff gets the
expected status, and a refusal changes nothing (row counts, requests' states, the audit chain's
head); form posts without a CSRF token are refused.

The URLs come from the URLconf: `test_every_url_is_in_the_matrix_or_read_only` fails when a new
route is neither in the matrix below nor a read-only page that refuses POST
(tests/reliability/routes.py), so a new mutating view cannot slip past this file. That the
read-only ones and the jobs dashboard change nothing is tested in test_permissions_read_only.py.

Related checks live with the code they test, and are not repeated here:
- schemathesis over the REST API, 0 5xx: tests/api/test_schema.py::test_fuzzed_requests_never_get_a_server_error;
- hostile MLflow text escaped on every page, no dialog fires (Playwright):
  tests/web/test_browser_review.py, tests/web/test_views_review_page.py::test_mlflow_and_user_text_is_escaped_on_the_request_page;
- oversize, malformed, unsigned and replayed webhook bodies refused: tests/registry/test_webhooks.py;
- per-view GET → 405, anonymous → login, wrong state → nothing changed: one module per view,
  tests/web/test_views_review_{page,status,vote,cancel,retry,request_new}.py; comments, rollbacks
  and break glass in tests/web/test_views_conversation.py, tests/emergency/test_rollback.py and
  tests/web/test_views_break_glass.py.
"""  # noqa: E501

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.urls import reverse

from registry.models import ChangeKind, RegistryChange
from reviews.decisions import opening
from reviews.models import Decision, Execution, TransitionRequest
from reviews.policies.loading import policies_load
from reviews.policies.matching import policy_for
from tests.policy_files import STANDARD_POLICIES
from tests.reliability.checks import audit_holds, state
from tests.reliability.routes import ANY_METHOD, DJANGO_AUTH, NOT_OURS, READ_ONLY, routes

# In the everyday loop (not e2e): the test client only, no processes. Pages never call MLflow.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_mlflow")]

ROLES = ["anonymous", "outsider", "requester", "approver", "staff"]
LOGIN = "login"  # a redirect to the login page, nothing done


@dataclass(frozen=True)
class Case:
    """POST `data` to the route (`api`: as JSON with the role's bearer token); what each role gets:
    a status, or LOGIN. `allowed`: the roles for which the post changes something."""

    route: str
    expected: dict[str, int | str]
    allowed: tuple[str, ...] = ()
    data: dict | None = None
    api: bool = False
    # What the URL names: the "pending" or "failed" request, "v3", or the "model" (fraud).
    on: str = "pending"


CASES = [
    Case(
        "reviews:vote",
        {"anonymous": LOGIN, "outsider": 403, "requester": 403, "approver": 302, "staff": 403},
        allowed=("approver",),
        data={"decision": "approve"},
    ),
    # Any signed-in user may read a request, so may comment on it.
    Case(
        "reviews:comment",
        {"anonymous": LOGIN, "outsider": 302, "requester": 302, "approver": 302, "staff": 302},
        allowed=("outsider", "requester", "approver", "staff"),
        data={"body": "matrix"},
    ),
    Case(
        "reviews:cancel",
        {"anonymous": LOGIN, "outsider": 403, "requester": 302, "approver": 403, "staff": 302},
        allowed=("requester", "staff"),
    ),
    Case(
        "reviews:retry",
        {"anonymous": LOGIN, "outsider": 403, "requester": 403, "approver": 403, "staff": 302},
        allowed=("staff",),
        on="failed",
    ),
    # Any signed-in user may ask for a promotion; the policy's approvers decide.
    Case(
        "reviews:request_new",
        {"anonymous": LOGIN, "outsider": 302, "requester": 302, "approver": 302, "staff": 302},
        allowed=("outsider", "requester", "approver", "staff"),
        data={"target": "Staging", "comment": "matrix"},
        on="v3",
    ),
    # A rollback is a request: the policy's requesters may open it (the standard policies name
    # none, so any signed-in user), its approvers decide. v3 held Staging before (`history`).
    Case(
        "reviews:rollback",
        {"anonymous": LOGIN, "outsider": 302, "requester": 302, "approver": 302, "staff": 302},
        allowed=("outsider", "requester", "approver", "staff"),
        data={"target": "Staging"},
        on="model",
    ),
    # Only the policy's break-glass groups (`on_call`: the approver); staff are no exception.
    # A refusal is a message on the model page: 302 too, and nothing changes. The form's post
    # only shows the confirmation (200 for the approver); the confirmation's post moves.
    Case(
        "reviews:break_glass",
        {"anonymous": LOGIN, "outsider": 302, "requester": 302, "approver": 200, "staff": 302},
        data={"version": "3", "target": "Staging", "reason": "matrix"},
        on="model",
    ),
    Case(
        "reviews:break_glass_confirm",
        {"anonymous": LOGIN, "outsider": 302, "requester": 302, "approver": 302, "staff": 302},
        allowed=("approver",),
        data={"version": "3", "target": "Staging", "reason": "matrix", "step": "confirm"},
        on="model",
    ),
    # A user's own reminder preference.
    Case(
        "reviews:notification_settings",
        {"anonymous": LOGIN, "outsider": 302, "requester": 302, "approver": 302, "staff": 302},
        allowed=("outsider", "requester", "approver", "staff"),
        data={"reminders": ""},
    ),
    # Ends the session only: no row of Quorum's changes.
    Case("logout", dict.fromkeys(ROLES, 302)),
    # Signed deliveries only, whoever is signed in: an unsigned body is refused.
    Case("registry:mlflow_webhook", dict.fromkeys(ROLES, 401), data={"model": "fraud"}),
    # The API authenticates by bearer token only; "anonymous" has none.
    Case(
        "api-v1:create_request",
        {"anonymous": 401, "outsider": 201, "requester": 201, "approver": 201, "staff": 201},
        allowed=("outsider", "requester", "approver", "staff"),
        data={"model": "fraud", "version": 3, "target": "Staging"},
        api=True,
    ),
    Case(
        "api-v1:cast_vote",
        {"anonymous": 401, "outsider": 403, "requester": 403, "approver": 201, "staff": 403},
        allowed=("approver",),
        data={"decision": "approve"},
        api=True,
    ),
    Case(
        "api-v1:cancel_request",
        {"anonymous": 401, "outsider": 403, "requester": 200, "approver": 403, "staff": 200},
        allowed=("requester", "staff"),
        api=True,
    ),
    Case(
        "api-v1:post_comment",
        {"anonymous": 401, "outsider": 201, "requester": 201, "approver": 201, "staff": 201},
        allowed=("outsider", "requester", "approver", "staff"),
        data={"body": "matrix"},
        api=True,
    ),
    Case(
        "api-v1:create_rollback",
        {"anonymous": 401, "outsider": 201, "requester": 201, "approver": 201, "staff": 201},
        allowed=("outsider", "requester", "approver", "staff"),
        data={"model": "fraud", "target": "Staging"},
        api=True,
    ),
    Case(
        "api-v1:create_break_glass",
        {"anonymous": 401, "outsider": 403, "requester": 403, "approver": 201, "staff": 403},
        allowed=("approver",),
        data={"model": "fraud", "version": 3, "target": "Staging", "reason": "matrix"},
        api=True,
    ),
    # Checks a policy file against cases in memory, for any token holder: loads and stores
    # nothing, so no role's post changes anything.
    Case(
        "api-v1:test_policies",
        {"anonymous": 401, "outsider": 200, "requester": 200, "approver": 200, "staff": 200},
        data={"policies": STANDARD_POLICIES, "cases": "cases: []\n"},
        api=True,
    ),
]


def test_every_url_is_in_the_matrix_or_read_only():
    known = {case.route for case in CASES} | set(READ_ONLY) | set(ANY_METHOD)
    known |= NOT_OURS | DJANGO_AUTH
    unknown = {
        route for route in routes() - known if not route.startswith(("admin:", "django_rq:"))
    }
    assert not unknown, f"add these routes to the permission matrix or READ_ONLY: {unknown}"


@pytest.fixture
def on_call(policies):
    """The staging policy lets the approver (group on-call) break glass; nobody else may."""
    policies_load(
        text=STANDARD_POLICIES.replace(
            "  ml-leads: [lead]\n", "  ml-leads: [lead]\n  on-call: [lead]\n"
        ).replace(
            "    require: [{group: data-science, approvals: 1}]\n",
            "    require: [{group: data-science, approvals: 1}]\n"
            "    break_glass: {groups: [on-call], ratify_within: 1h, on_unratified: alert}\n",
        )
    )
    assert policy_for("fraud", "Staging").break_glass, "the break-glass section did not load"


@pytest.fixture
def history(world):
    """What the sync recorded of fraud: v3 arrived in Staging and left it, so a rollback of
    Staging puts v3 back."""
    v3 = world.model.versions.get(version=3)
    RegistryChange.objects.create(model=world.model, kind=ChangeKind.MODEL_CREATED)
    RegistryChange.objects.create(
        model=world.model,
        version=v3,
        kind=ChangeKind.VERSION_CREATED,
        new={"stage": "Staging", "aliases": []},
    )
    RegistryChange.objects.create(
        model=world.model, version=v3, kind=ChangeKind.STAGE_CHANGED, old="Staging", new="None"
    )


@pytest.fixture
def failed_request(world, requester):
    """v2 → Staging, approved, its transition failed."""
    request = opening.request_create(
        model="fraud", version=2, target="Staging", requester=requester
    )
    TransitionRequest.objects.filter(pk=request.pk).update(
        decision=Decision.APPROVED, execution=Execution.FAILED, execution_error="MLflow 503"
    )
    return request


def post(case: Case, role: str, people, target, *, csrf: bool = False):
    client = Client(enforce_csrf_checks=csrf)
    user, token = people.get(role, (None, None))
    if case.on == "v3":
        url = reverse(case.route, args=["fraud", "3"])
    elif case.on == "model":
        url = reverse(case.route, args=["fraud"])
    elif case.route in NO_ARGS:
        url = reverse(case.route)
    else:
        url = reverse(case.route, kwargs={"id" if case.api else "pk": target.pk})
    if case.api:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        body = json.dumps(case.data or {})
        return client.post(url, body, content_type="application/json", headers=headers)
    if user is not None:
        client.force_login(user)
    if case.route == "registry:mlflow_webhook":
        return client.post(url, json.dumps(case.data), content_type="application/json")
    return client.post(url, case.data or {})


NO_ARGS = {
    "logout",
    "reviews:notification_settings",
    "registry:mlflow_webhook",
    "api-v1:create_request",
    "api-v1:create_rollback",
    "api-v1:create_break_glass",
    "api-v1:test_policies",
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.route)
@pytest.mark.usefixtures("on_call", "history")
def test_permission_matrix(case, role, people, pending, failed_request, settings):
    settings.MLFLOW_WEBHOOK_SECRET = "a-webhook-secret"
    target = failed_request if case.on == "failed" else pending
    before = state()

    response = post(case, role, people, target)

    expected = case.expected[role]
    if expected == LOGIN:
        assert response.status_code == 302
        assert response["Location"].startswith(django_settings.LOGIN_URL)
    else:
        assert response.status_code == expected, response.content[:500]
    if role in case.allowed:
        assert state() != before, "an allowed post changed nothing"
    else:
        assert state() == before
    audit_holds()


FORMS = [case for case in CASES if not case.api and case.route != "registry:mlflow_webhook"]


@pytest.mark.parametrize("case", FORMS, ids=lambda case: case.route)
@pytest.mark.usefixtures("on_call", "history")
def test_form_posts_without_a_csrf_token_are_refused(case, people, pending, failed_request):
    """As the one user the post would work for: without the token, 403 and nothing changes."""
    role = case.allowed[0] if case.allowed else "requester"
    target = failed_request if case.on == "failed" else pending
    before = state()

    response = post(case, role, people, target, csrf=True)

    assert response.status_code == 403
    assert b"CSRF" in response.content
    assert state() == before
