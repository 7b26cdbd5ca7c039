"""Settings from the environment accept only the documented values (quorum/env.py): anything
else stops startup with the setting's name, so a typo such as QUORUM_HTTPS=enable can never
quietly turn a protection off, nor QUORUM_LOG_FORMAT=jsno quietly mean plain lines."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from quorum.env import env_bool, env_choice, env_secret
from tests.processes import manage

ACCEPTED = "use 1, true, yes, on to turn it on or 0, false, no, off to turn it off (any case)"
# Every boolean setting quorum/settings.py reads from the environment.
BOOLEAN_SETTINGS = [
    "DEBUG",
    "QUORUM_HTTPS",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "WHITENOISE_USE_FINDERS",
]


@pytest.mark.parametrize("value", ["1", "true", "True", "YES", "on", " On "])
def test_the_documented_true_values_are_true(monkeypatch, value):
    monkeypatch.setenv("QUORUM_TEST_FLAG", value)
    assert env_bool("QUORUM_TEST_FLAG", False) is True


@pytest.mark.parametrize("value", ["0", "false", "FALSE", "no", "Off", " off "])
def test_the_documented_false_values_are_false(monkeypatch, value):
    monkeypatch.setenv("QUORUM_TEST_FLAG", value)
    assert env_bool("QUORUM_TEST_FLAG", True) is False


@pytest.mark.parametrize("default", [True, False])
def test_unset_or_empty_is_the_default(monkeypatch, default):
    monkeypatch.delenv("QUORUM_TEST_FLAG", raising=False)
    assert env_bool("QUORUM_TEST_FLAG", default) is default
    for empty in ("", "  "):
        monkeypatch.setenv("QUORUM_TEST_FLAG", empty)
        assert env_bool("QUORUM_TEST_FLAG", default) is default


@pytest.mark.parametrize("value", ["enable", "enabled", "2", "y", "ture", "of", "-1"])
def test_any_other_value_is_refused_with_the_name_and_the_accepted_values(monkeypatch, value):
    monkeypatch.setenv("QUORUM_TEST_FLAG", value)

    with pytest.raises(ImproperlyConfigured) as refused:
        env_bool("QUORUM_TEST_FLAG", False)

    assert f"QUORUM_TEST_FLAG={value!r} is not a boolean: {ACCEPTED}" in str(refused.value)
    assert "leave it unset for the default (off)" in str(refused.value)


@pytest.mark.parametrize("name", BOOLEAN_SETTINGS)
def test_manage_py_check_stops_on_a_boolean_setting_it_cannot_read(name, tmp_path):
    result = manage("check", var_dir=tmp_path, **{name: "enable"})

    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert f"ImproperlyConfigured: {name}='enable' is not a boolean: {ACCEPTED}" in last_line


@pytest.mark.parametrize(
    ("value", "meant"), [("", "plain"), (" JSON ", "json"), ("plain", "plain")]
)
def test_a_choice_is_one_of_its_values_in_any_case_and_unset_is_the_first(
    monkeypatch, value, meant
):
    monkeypatch.setenv("QUORUM_TEST_FORMAT", value)
    assert env_choice("QUORUM_TEST_FORMAT", ("plain", "json")) == meant


def test_another_choice_is_refused_naming_the_values(monkeypatch):
    monkeypatch.setenv("QUORUM_TEST_FORMAT", "jsno")
    with pytest.raises(
        ImproperlyConfigured, match=r"QUORUM_TEST_FORMAT='jsno': use plain \(the default\) or json"
    ):
        env_choice("QUORUM_TEST_FORMAT", ("plain", "json"))


def test_a_secret_is_off_when_unset_and_refused_when_too_short(monkeypatch):
    monkeypatch.delenv("QUORUM_TEST_TOKEN", raising=False)
    assert env_secret("QUORUM_TEST_TOKEN", min_length=24) == ""
    monkeypatch.setenv("QUORUM_TEST_TOKEN", "x" * 24)
    assert env_secret("QUORUM_TEST_TOKEN", min_length=24) == "x" * 24
    monkeypatch.setenv("QUORUM_TEST_TOKEN", "x" * 23)
    with pytest.raises(
        ImproperlyConfigured, match="QUORUM_TEST_TOKEN is too short to resist guessing"
    ):
        env_secret("QUORUM_TEST_TOKEN", min_length=24)


def test_manage_py_check_stops_on_a_log_format_it_does_not_know(tmp_path):
    result = manage("check", var_dir=tmp_path, QUORUM_LOG_FORMAT="jsno")

    assert result.returncode != 0
    assert "QUORUM_LOG_FORMAT='jsno': use plain (the default) or json" in result.stderr
