"""Reading many versions from MLflow at once: a bounded pool of threads, each thread with a
client of its own (`RegistryClient.fork`), the results handed back in order to the calling
thread, which alone writes to the database.

Most of a version's read is waiting on MLflow's answers (tens of milliseconds a call, several
calls a version), so a few threads divide a first read of a whole registry without asking
MLflow anything more: each version is still read once, with the same calls.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from .mlflow_client import RegistryClient

Item = TypeVar("Item")
Result = TypeVar("Result")


def read_each(
    client: RegistryClient,
    items: Iterable[Item],
    read: Callable[[RegistryClient, Item], Result],
    *,
    readers: int,
) -> Iterator[tuple[Item, Result]]:
    """Yields `(item, read(a_client, item))` for every item, in the items' order, reading with up
    to `readers` threads. `read` must not touch the database (its thread has no transaction of
    the caller's); the caller stores what it is given.

    An exception from `read` (MLflow unreachable, say) stops the reading: the results before it
    are yielded, then it is raised, and reads not yet started are dropped (they are read again
    next time). The calls of the threads' clients are added to `client.calls`."""
    items = list(items)
    readers = max(1, min(readers, len(items)))
    if readers == 1:
        for item in items:
            yield item, read(client, item)
        return
    forks = [client.fork() for _ in range(readers - 1)]
    idle: queue.SimpleQueue[RegistryClient] = queue.SimpleQueue()
    for each in (client, *forks):
        idle.put(each)

    def one(item: Item) -> Result:
        # Each client serves one thread at a time: a thread takes one and gives it back.
        reader = idle.get()
        try:
            return read(reader, item)
        finally:
            idle.put(reader)

    pool = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="mlflow-reader")
    try:
        futures = [pool.submit(one, item) for item in items]
        for item, future in zip(items, futures, strict=True):
            yield item, future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        client.calls += sum(fork.calls for fork in forks)
