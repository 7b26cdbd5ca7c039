"""The guard's reading of the `quorum.protected` tag and of its own configuration
(mlflow-quorum-guard: `protection.py`, `config.py`), without a server."""

from __future__ import annotations

import json

import pytest
from mlflow_quorum_guard.config import GuardConfig, GuardConfigError
from mlflow_quorum_guard.protection import (
    PROTECTED_TAG,
    TargetError,
    is_reserved_tag,
    protection_of,
    split_targets,
)

from reviews.execution import guard

TOKEN_ENV = {"QUORUM_GUARD_SERVICE_TOKEN": "a-long-enough-secret-token"}


def protection(tags: dict, default=("Staging", "Production")):
    return protection_of(tags, default_targets=default, default_request_url="https://q/")


def tag(targets, url="https://quorum/models/m/") -> dict:
    return {PROTECTED_TAG: json.dumps({"targets": targets, "request_url": url})}


def test_quorum_and_the_guard_agree_on_the_tag_key():
    assert guard.PROTECTED_TAG == PROTECTED_TAG


def test_tag_lists_the_protected_stages_and_aliases_in_any_case():
    found = protection(tag(["Production", "@champion"]))
    assert found.covers_stage("production") and found.covers_stage("Production")
    assert not found.covers_stage("Staging") and not found.covers_stage("None")
    assert found.covers_alias("Champion") and not found.covers_alias("canary")
    assert found.request_url == "https://quorum/models/m/" and found.source == "tag"


def test_quorums_tag_value_is_what_the_guard_reads(settings):
    settings.QUORUM_BASE_URL = "https://quorum.example"
    found = protection({PROTECTED_TAG: guard.guard_tag_value("fraud", ["@champion", "Staging"])})
    assert found.covers_alias("champion") and found.covers_stage("Staging")
    assert found.request_url == "https://quorum.example/models/fraud/"
    assert found.page_for(5) == "https://quorum.example/models/fraud/versions/5/"
    assert found.page_for(None) == "https://quorum.example/models/fraud/"


def test_a_version_page_without_its_placeholder_or_not_text_is_ignored_not_fatal():
    for version_url in ("https://q/models/m/versions/", 7, ["x"]):
        raw = json.dumps(
            {"targets": ["Production"], "request_url": "https://q/m/", "version_url": version_url}
        )
        found = protection({PROTECTED_TAG: raw})
        assert found.source == "tag" and found.covers_stage("Production")
        assert found.page_for(3) == "https://q/m/"


def test_an_odd_version_number_is_quoted_into_the_page():
    raw = json.dumps(
        {"targets": [], "request_url": "https://q/m/", "version_url": "https://q/m/v/{version}/"}
    )
    assert protection({PROTECTED_TAG: raw}).page_for("2/../x") == "https://q/m/v/2%2F..%2Fx/"


def test_an_empty_target_list_protects_nothing():
    found = protection(tag([]))
    assert not found.covers_stage("Production") and not found.covers_alias("champion")


def test_an_untagged_model_gets_the_default_targets():
    found = protection({"team": "risk"})
    assert found.source == "default"
    assert found.covers_stage("Production") and found.covers_stage("Staging")
    assert not found.covers_alias("champion")
    assert not protection({}, default=()).covers_stage("Production")


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        json.dumps(["Production"]),
        json.dumps({"targets": "Production"}),
        json.dumps({"targets": ["Production", 3]}),
        json.dumps({"targets": ["Nowhere"]}),
        json.dumps({"request_url": "https://q/"}),
    ],
)
def test_an_unreadable_tag_fails_closed(raw):
    found = protection({PROTECTED_TAG: raw}, default=())
    assert found.source == "unreadable tag"
    assert all(found.covers_stage(s) for s in ("Staging", "Production", "Archived"))
    assert found.covers_alias("anything")
    assert not found.covers_stage("None")  # where every new version starts


def test_held_targets_names_only_protected_ones():
    found = protection(tag(["Production", "@champion"]))
    held = found.held_targets(stages=["Production", "Archived"], aliases=["champion", "canary"])
    assert held == ["@champion", "Production"]


def test_targets_that_are_neither_stage_nor_alias_are_refused():
    assert split_targets(["Staging", "@Champion", " "]) == (
        frozenset({"staging"}),
        frozenset({"champion"}),
    )
    with pytest.raises(TargetError, match="'Prod' is not a stage"):
        split_targets(["Prod"])


def test_only_quorum_tags_are_reserved():
    assert is_reserved_tag("quorum.protected") and is_reserved_tag("Quorum.attestation")
    assert not is_reserved_tag("team") and not is_reserved_tag("quorumish")


def test_config_defaults_to_token_mode_with_stages_protected():
    config = GuardConfig.from_env(TOKEN_ENV)
    assert config.auth == "token" and not config.wraps_basic_auth
    assert config.default_targets == ("Staging", "Production")
    assert (
        GuardConfig.from_env({**TOKEN_ENV, "QUORUM_GUARD_DEFAULT_TARGETS": "none"}).default_targets
        == ()
    )  # noqa: E501


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({}, "QUORUM_GUARD_SERVICE_TOKEN must be set"),
        ({"QUORUM_GUARD_SERVICE_TOKEN": "short"}, "at least 16 characters"),
        ({"QUORUM_GUARD_AUTH": "basic-auth"}, "QUORUM_GUARD_SERVICE_USERS must name"),
        ({"QUORUM_GUARD_AUTH": "ldap"}, "QUORUM_GUARD_AUTH='ldap'"),
        ({**TOKEN_ENV, "QUORUM_GUARD_DEFAULT_TARGETS": "Prod"}, "QUORUM_GUARD_DEFAULT_TARGETS"),
    ],
)
def test_config_errors_name_the_variable(env, problem):
    with pytest.raises(GuardConfigError, match=problem):
        GuardConfig.from_env(env)


def test_basic_auth_mode_names_quorums_users():
    config = GuardConfig.from_env(
        {"QUORUM_GUARD_AUTH": "Basic-Auth", "QUORUM_GUARD_SERVICE_USERS": "quorum, quorum-ci"}
    )
    assert config.wraps_basic_auth and config.service_users == {"quorum", "quorum-ci"}
