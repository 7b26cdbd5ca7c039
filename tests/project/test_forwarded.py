"""Requests that come through a proxy nobody declared (quorum/forwarded.py): with
QUORUM_PROXY_COUNT at 0, a request carrying X-Forwarded-For is logged once per process, noted in
the database, and `manage.py check --deploy` reports it (quorum.W004), also from another
process."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
import requests
from django.core.checks import Tags, run_checks
from django.utils import timezone

from quorum.models import ForwardedForSighting
from tests.processes import database_url, manage

pytestmark = pytest.mark.django_db

W004 = "so a proxy is in front of Quorum, but QUORUM_PROXY_COUNT is 0"


def through_proxy(client, forwarded="203.0.113.9"):
    return client.get("/accounts/login/", HTTP_X_FORWARDED_FOR=forwarded, REMOTE_ADDR="10.0.0.2")


def deploy_warnings() -> list[str]:
    found = run_checks(tags=[Tags.security], include_deployment_checks=True)
    return [message.msg for message in found if message.id == "quorum.W004"]


def proxy_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "quorum.forwarded"]


def test_a_forwarded_request_without_a_proxy_count_is_logged_once_and_reported(client, caplog):
    caplog.set_level(logging.INFO, logger="quorum.forwarded")
    assert deploy_warnings() == []

    for n in range(3):
        assert through_proxy(client, f"203.0.113.{n}").status_code == 200

    [logged] = proxy_warnings(caplog)
    assert "X-Forwarded-For '203.0.113.0'" in logged and W004 in logged
    assert "Set QUORUM_PROXY_COUNT" in logged
    [reported] = deploy_warnings()
    assert W004 in reported and "'203.0.113.0' from 10.0.0.2" in reported


def test_with_a_proxy_count_nothing_is_noted_or_reported(client, settings, caplog):
    settings.QUORUM_PROXY_COUNT = 1
    through_proxy(client)

    assert proxy_warnings(caplog) == []
    assert not ForwardedForSighting.objects.exists()
    # A note from before the count was set is not reported any more either.
    settings.QUORUM_PROXY_COUNT = 0
    through_proxy(client)
    settings.QUORUM_PROXY_COUNT = 1
    assert deploy_warnings() == []


def test_requests_without_the_header_note_nothing(client, caplog):
    client.get("/accounts/login/")

    assert proxy_warnings(caplog) == []
    assert not ForwardedForSighting.objects.exists()
    assert deploy_warnings() == []


def test_a_note_older_than_a_week_is_not_reported(client):
    through_proxy(client)
    ForwardedForSighting.objects.update(last_seen_at=timezone.now() - timedelta(days=8))

    assert deploy_warnings() == []


def test_check_deploy_in_another_process_reports_what_the_web_process_saw(live_server, tmp_path):
    response = requests.get(
        f"{live_server.url}/accounts/login/",
        headers={"X-Forwarded-For": "198.51.100.23"},
        timeout=30,
    )
    assert response.status_code == 200
    result = manage("check", "--deploy", var_dir=tmp_path, DATABASE_URL=database_url())

    assert "(quorum.W004) Requests arrive with X-Forwarded-For" in result.stderr, result.stderr
    assert "'198.51.100.23' from 127.0.0.1" in result.stderr
