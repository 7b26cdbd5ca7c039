"""What tests that start other processes (workers, gunicorn, the CLI's server) need: the test
database's address for them, and the processes they started in turn."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings


def database_url() -> str:
    """The test database as a DATABASE_URL for another process; skips the test on SQLite, which
    a second process cannot share with the test's transaction."""
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip(
            "a worker process needs a database it can share: set DATABASE_URL to PostgreSQL"
        )
    auth = quote(db["USER"] or "")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"])
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def children(pid: int) -> list[int]:
    """The ids of the processes whose parent is `pid` (Linux /proc), whatever thread forked them."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found
