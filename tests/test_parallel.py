"""Each pytest-xdist process gets a Redis database of its own (tests/parallel.py)."""

from __future__ import annotations

import os

import pytest
from django.conf import settings

from tests.parallel import redis_url_for_worker


def test_process_n_takes_the_database_n_below_the_chosen_one():
    assert redis_url_for_worker("redis://127.0.0.1:6379/15", "gw0") == "redis://127.0.0.1:6379/15"
    assert redis_url_for_worker("redis://127.0.0.1:6379/15", "gw3") == "redis://127.0.0.1:6379/12"
    assert redis_url_for_worker("rediss://h:1/9?ssl_cert_reqs=none", "gw1") == (
        "rediss://h:1/8?ssl_cert_reqs=none"
    )


def test_too_few_databases_is_said_plainly():
    with pytest.raises(ValueError, match="leaves no Redis database for test process gw2"):
        redis_url_for_worker("redis://127.0.0.1:6379/1", "gw2")


def test_the_settings_and_the_queues_read_this_processs_database():
    """The settings, every queue and the processes tests start (which inherit the environment)
    agree on the one database."""
    if "REDIS_URL" not in os.environ:
        pytest.skip("REDIS_URL is not set: the settings' default is used")
    assert settings.REDIS_URL == os.environ["REDIS_URL"]
    assert {queue["URL"] for queue in settings.RQ_QUEUES.values()} == {settings.REDIS_URL}
