"""CI without long-lived secrets: workload identity tokens (JWTs) from a real issuer process
(tests/oidc_provider.py, which publishes its keys), accepted by the API as a service user, and
refused with a 401 that says why when anything about them is wrong."""

from __future__ import annotations

import json
import time

import pytest

from quorum_cli.main import main as cli_main
from reviews.models import AuditEvent, TransitionRequest
from tests.factories import make_model, make_version
from tests.processes import manage

pytestmark = pytest.mark.django_db

CI_CLAIMS = {
    "sub": "repo:acme/fraud:environment:production",
    "repository": "acme/fraud",
    "environment": "production",
    "ref": "refs/heads/main",
}


@pytest.fixture
def ci(settings, oidc_provider, policies, django_user_model):
    """The provider trusted as a CI issuer; its tokens from acme/fraud's production
    environment act as `ci-fraud`, who may request promotions."""
    from identity import provider

    django_user_model.objects.create_user("ci-fraud")
    settings.QUORUM_CI_ISSUERS = json.dumps(
        [
            {
                "issuer": oidc_provider.url,
                "audience": "quorum",
                "users": [
                    {
                        "user": "ci-fraud",
                        "claims": {"repository": "acme/fraud", "environment": "production"},
                    }
                ],
            }
        ]
    )
    provider.forget()
    model = make_model("fraud-detector")
    make_version(model, 1, stage="Production", metrics={"accuracy": 0.9, "f1": 0.87})
    make_version(model, 2, metrics={"accuracy": 0.91, "f1": 0.88})
    yield oidc_provider
    provider.forget()


def post_request(client, token):
    return client.post(
        "/api/v1/requests",
        json.dumps({"model": "fraud-detector", "version": 2, "target": "Staging"}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )


def test_a_valid_ci_token_requests_a_promotion_as_its_service_user(client, ci):
    response = post_request(client, ci.mint(CI_CLAIMS))

    assert response.status_code == 201, response.content
    request = TransitionRequest.objects.get(pk=response.json()["id"])
    assert request.requester.username == "ci-fraud"


def test_keys_rotated_by_the_issuer_are_fetched_again(client, ci, monkeypatch):
    from identity import provider

    # A key published after the last fetch is looked for again once the refetch pause is over.
    monkeypatch.setattr(provider, "UNKNOWN_KEY_REFETCH_SECONDS", 0)
    assert post_request(client, ci.mint(CI_CLAIMS)).status_code == 201
    ci.rotate()
    response = client.get(
        "/api/v1/requests", headers={"Authorization": f"Bearer {ci.mint(CI_CLAIMS)}"}
    )
    assert response.status_code == 200, response.content


@pytest.mark.parametrize(
    "claims, options, reason",
    [
        (
            {"iss": "https://evil.example.com"},
            {},
            "issuer 'https://evil.example.com' is not trusted",
        ),
        ({"aud": "someone-else"}, {}, "is for audience 'someone-else', not 'quorum'"),
        ({}, {"sign_with": "stranger"}, "signature does not verify"),
        ({"iat": 1, "nbf": 1, "exp": 2}, {}, "The token expired at 1970-01-01T00:00:02+00:00"),
        ({}, {"kid": "never-published"}, "key id 'never-published', which"),
        ({"repository": "acme/other"}, {}, "No service user is configured for this token's claims"),
    ],
    ids=["issuer", "audience", "signature", "expired", "unknown-key", "unmapped"],
)
def test_bad_ci_tokens_are_401_with_the_reason_and_change_nothing(
    client, ci, claims, options, reason
):
    events = AuditEvent.objects.count()

    response = post_request(client, ci.mint({**CI_CLAIMS, **claims}, **options))

    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert reason in response.json()["detail"]
    assert not TransitionRequest.objects.exists()
    assert AuditEvent.objects.count() == events


def test_a_deactivated_service_user_is_refused(client, ci, django_user_model):
    django_user_model.objects.filter(username="ci-fraud").update(is_active=False)
    response = post_request(client, ci.mint(CI_CLAIMS))
    assert response.status_code == 401
    assert "does not exist or is deactivated" in response.json()["detail"]


def test_without_trusted_issuers_a_jwt_is_refused(client, ci, settings):
    settings.QUORUM_CI_ISSUERS = ""
    response = post_request(client, ci.mint(CI_CLAIMS))
    assert response.status_code == 401
    assert "QUORUM_CI_ISSUERS is unset" in response.json()["detail"]


def test_the_openapi_schema_describes_both_kinds_of_bearer(client):
    schemes = client.get("/api/v1/openapi.json").json()["components"]["securitySchemes"]
    [scheme] = schemes.values()
    assert scheme["scheme"] == "bearer"
    assert "QUORUM_CI_ISSUERS" in scheme["description"]
    assert "JWT" in scheme["bearerFormat"]


def test_the_cli_sends_the_token_from_the_named_variable(ci, live_server, monkeypatch, capsys):
    monkeypatch.setenv("CI_ID_TOKEN", ci.mint(CI_CLAIMS))
    monkeypatch.delenv("QUORUM_TOKEN", raising=False)

    code = cli_main(
        [
            "request",
            "fraud-detector",
            "2",
            "--to",
            "Staging",
            "--url",
            live_server.url,
            "--oidc-token-env",
            "CI_ID_TOKEN",
            "--json",
        ]
    )

    assert code == 0, capsys.readouterr().err
    assert TransitionRequest.objects.get().requester.username == "ci-fraud"


def test_the_cli_says_when_the_named_variable_is_empty(monkeypatch, capsys):
    monkeypatch.delenv("CI_ID_TOKEN", raising=False)
    with pytest.raises(SystemExit) as exit_:
        cli_main(["status", "1", "--url", "http://127.0.0.1:1", "--oidc-token-env", "CI_ID_TOKEN"])
    assert exit_.value.code == 2
    assert "CI_ID_TOKEN: that environment variable is empty" in capsys.readouterr().err


def test_tokens_are_checked_for_expiry_with_a_little_leeway_only(client, ci):
    now = int(time.time())
    assert post_request(client, ci.mint({**CI_CLAIMS, "exp": now - 120})).status_code == 401
    assert post_request(client, ci.mint({**CI_CLAIMS, "exp": now - 5})).status_code == 201


def test_forged_tokens_count_towards_the_address_lockout_and_expired_ones_do_not(
    client, ci, settings
):
    from axes.models import AccessAttempt

    post_request(client, ci.mint({**CI_CLAIMS, "exp": 2, "iat": 1, "nbf": 1}))
    assert not AccessAttempt.objects.exists()
    post_request(client, ci.mint(CI_CLAIMS, sign_with="stranger"))
    assert AccessAttempt.objects.get().failures_since_start == 1


# -- a rule must name its caller -----------------------------------------------------------------

# Rules that pin no caller (repository, project or sub) to an exact value: with GitHub's issuer,
# where every workflow picks its own audience, any repository could use them.
UNNAMED_CALLERS = {
    "no-claims": {},
    "only-wildcards": {"repository": "*", "sub": "*"},
    "wildcard-repository": {"repository": "acme/*", "environment": "production"},
    "no-caller-claim": {"environment": "production", "ref": "refs/heads/main"},
}
# Another repository's token, which every rule above would match.
STRANGER_CLAIMS = {
    "sub": "repo:acme/forked:environment:production",
    "repository": "acme/forked",
    "environment": "production",
    "ref": "refs/heads/main",
}


def trust_rules(settings, issuer: str, rules: list[tuple[str, dict]]) -> None:
    settings.QUORUM_CI_ISSUERS = json.dumps(
        [
            {
                "issuer": issuer,
                "audience": "quorum",
                "users": [{"user": user, "claims": claims} for user, claims in rules],
            }
        ]
    )


@pytest.mark.parametrize("claims", UNNAMED_CALLERS.values(), ids=UNNAMED_CALLERS.keys())
def test_a_rule_that_names_no_caller_never_matches_even_unchecked(client, ci, settings, claims):
    trust_rules(settings, ci.url, [("ci-fraud", claims)])

    for token_claims in (STRANGER_CLAIMS, CI_CLAIMS):
        response = post_request(client, ci.mint(token_claims))

        assert response.status_code == 401
        assert "No service user is configured" in response.json()["detail"]
    assert not TransitionRequest.objects.exists()


def test_a_rule_that_names_its_caller_still_matches_after_one_that_is_ignored(client, ci, settings):
    trust_rules(
        settings,
        ci.url,
        [("ci-fraud", {}), ("ci-fraud", {"repository": "acme/fraud", "environment": "production"})],
    )

    assert post_request(client, ci.mint(STRANGER_CLAIMS)).status_code == 401
    response = post_request(client, ci.mint(CI_CLAIMS))
    assert response.status_code == 201, response.content


def test_manage_py_check_refuses_rules_that_name_no_caller(tmp_path):
    rules = [{"user": f"ci-{name}", "claims": claims} for name, claims in UNNAMED_CALLERS.items()]
    rules.append({"user": "ci-fraud", "claims": {"repository_id": "123456", "ref": "refs/tags/v*"}})
    issuers = [
        {
            "issuer": "https://token.actions.githubusercontent.com",
            "audience": "https://quorum.example.com",
            "users": rules,
        }
    ]
    result = manage("check", var_dir=tmp_path, QUORUM_CI_ISSUERS=json.dumps(issuers))

    assert result.returncode == 1, result.stdout + result.stderr
    for name in UNNAMED_CALLERS:
        assert (
            f"(identity.E004) QUORUM_CI_ISSUERS: the rule for service user 'ci-{name}' of "
            "https://token.actions.githubusercontent.com pins none of repository, repository_id, "
            "project_path, project_id, sub to an exact value"
        ) in result.stderr
    assert "'ci-fraud'" not in result.stderr, "a rule pinning repository_id is fine"
