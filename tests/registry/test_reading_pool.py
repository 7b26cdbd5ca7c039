"""Reading many versions at once (`registry.reading_pool.read_each`): results in the items'
order, never more threads than asked, each thread with a client of its own whose calls are
counted, and an error that stops the reading after handing over what came before it."""

from __future__ import annotations

import threading

import pytest

from registry.mlflow_client import MlflowError, RegistryClient
from registry.reading_pool import read_each

NOWHERE = "http://127.0.0.1:9"  # no read here calls MLflow: the clients are only handed out


def test_results_come_in_order_from_concurrent_readers_with_their_own_clients():
    client = RegistryClient(NOWHERE)
    all_three_at_once = threading.Barrier(3, timeout=30)
    lock = threading.Lock()
    in_flight, most, clients_seen = 0, 0, set()

    def read(reader: RegistryClient, item: int) -> int:
        nonlocal in_flight, most
        with lock:
            in_flight += 1
            most = max(most, in_flight)
            clients_seen.add(id(reader))
        if item < 3:
            all_three_at_once.wait()  # raises unless three reads run at the same time
        reader.calls += 1  # as one MLflow call would
        with lock:
            in_flight -= 1
        return item * 10

    results = list(read_each(client, range(12), read, readers=3))

    assert results == [(item, item * 10) for item in range(12)]
    assert most == 3 and len(clients_seen) == 3
    assert client.calls == 12  # the forks' calls added back


def test_one_reader_reads_in_the_callers_thread():
    caller = threading.get_ident()

    def thread_of(_reader: RegistryClient, _item: int) -> int:
        return threading.get_ident()

    results = read_each(RegistryClient(NOWHERE), range(4), thread_of, readers=1)
    assert {ident for _, ident in results} == {caller}


def test_an_unreachable_mlflow_stops_the_reading_after_what_came_before():
    client = RegistryClient(NOWHERE)
    read_items: list[int] = []
    lock = threading.Lock()

    def read(reader: RegistryClient, item: int) -> int:
        with lock:
            read_items.append(item)
        if item == 2:
            raise MlflowError("connection refused", unreachable=True)
        return item

    handed = []
    with pytest.raises(MlflowError, match="connection refused"):
        for item, _ in read_each(client, range(200), read, readers=2):
            handed.append(item)

    assert handed == [0, 1]
    assert len(read_items) < 200  # the reads not yet started were dropped
