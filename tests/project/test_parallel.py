"""Running the suite in xdist processes (tests/parallel.py): Redis databases, lanes of tests."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
from django.conf import settings

from tests.parallel import in_lanes, redis_url_for_worker, shared_server


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


def test_a_group_runs_in_one_lane_one_test_after_another_the_slowest_first():
    """The tests that share a server their process starts (`SHARED_SERVERS` in tests/parallel.py)
    stay together, so that one process starts it once, and the lanes stay as even as before."""
    weights = {f"e2e{i}": 1 for i in range(6)} | {f"unit{i}": 0 for i in range(30)}
    weights |= {"down0": 1, "down1": 1, "down-slow": 2, "guard0": 0, "guard1": 0, "guard2": 0}
    groups = {"down0": "down", "down1": "down", "down-slow": "down"}
    groups |= {f"guard{i}": "guard" for i in range(3)}
    items = list(weights)
    items.insert(5, items.pop(items.index("guard0")))  # a group need not be collected together

    ordered = in_lanes(items, weights.__getitem__, 4, groups.get)

    assert sorted(ordered) == sorted(items)
    shares = [ordered[i * 10 : (i + 1) * 10] for i in range(4)]  # worksteal's first split
    assert shares[0][:3] == ["down-slow", "down0", "down1"]
    for name, size in (("down", 3), ("guard", 3)):
        (lane,) = {
            i for i, share in enumerate(shares) for item in share if groups.get(item) == name
        }
        positions = [i for i, item in enumerate(shares[lane]) if groups.get(item) == name]
        assert positions == list(range(positions[0], positions[0] + size))
    # The group's end-to-end tests count: the other shares take the single ones first.
    assert [sum(weights[item] >= 1 for item in share) for share in shares] == [3, 2, 2, 2]
    assert in_lanes(items, weights.__getitem__, 1, groups.get)[:3] == [
        "down-slow",
        "down0",
        "down1",
    ]


def fake_item(**fixtures: tuple[str, str]) -> SimpleNamespace:
    """A pytest item using `fixtures`: name → (scope, the directory or module defining it)."""
    return SimpleNamespace(
        fixturenames=list(fixtures),
        _fixtureinfo=SimpleNamespace(
            name2fixturedefs={
                name: (SimpleNamespace(scope=scope, baseid=where),)
                for name, (scope, where) in fixtures.items()
            }
        ),
    )


def test_tests_sharing_a_module_fixture_or_a_server_of_their_process_are_grouped():
    """A module-scoped fixture spread over two processes is built twice (a wheel built and
    installed, models trained): its tests are one group, named after the fixture's own module."""
    wheel = ("module", "tests/project/test_package.py")
    assert shared_server(fake_item(db=("function", ""), installed=wheel)) == (
        "tests/project/test_package.py::installed"
    )
    assert shared_server(fake_item(private=("package", "tests/reliability"))) == (
        "tests/reliability::private"
    )
    # A server of the process's own groups by its name, whatever its scope.
    assert shared_server(fake_item(guarded_mlflow_servers=("session", ""), installed=wheel)) == (
        "guarded_mlflow_servers"
    )
    # The session's MLflow serves nearly every test: no group.
    assert shared_server(fake_item(mlflow_server=("session", ""), db=("function", ""))) is None
