"""Running the suite in xdist processes (tests/parallel.py): Redis databases, lanes of tests."""

from __future__ import annotations

import os

import pytest
from django.conf import settings

from tests.parallel import in_lanes, redis_url_for_worker


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


def test_lanes_deal_the_slow_and_end_to_end_tests_out_evenly_and_keep_every_test():
    weights = {f"slow{i}": 2 for i in range(2)}
    weights |= {f"e2e{i}": 1 for i in range(8)}
    weights |= {f"unit{i}": 0 for i in range(30)}
    items = list(weights)

    ordered = in_lanes(items, weights.__getitem__, 4)

    assert sorted(ordered) == sorted(items)
    shares = [ordered[i * 10 : (i + 1) * 10] for i in range(4)]  # worksteal's first split
    assert [share[0] for share in shares[:2]] == ["slow0", "slow1"]
    assert [sum(weights[item] == 1 for item in share) for share in shares] == [2, 2, 2, 2]
    # Within a share the end-to-end tests are apart, not in a row.
    for share in shares:
        positions = [i for i, item in enumerate(share) if weights[item] == 1]
        assert positions[1] - positions[0] > 1


def test_one_process_runs_the_slowest_first_in_collection_order():
    weights = {"a": 0, "b": 1, "c": 2, "d": 0, "e": 1}
    assert in_lanes(list(weights), weights.__getitem__, 1) == ["c", "b", "e", "a", "d"]
