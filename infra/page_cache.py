"""Whole pages kept across responses, for the user they were made for, until anything changes.

A page is answered from Redis when the same user, in the same browser, asked for the same
address since the last change to the database and within the last `QUORUM_PAGE_CACHE_SECONDS`.

**What invalidates.** Every statement that writes to the database through Django's connections
(an `INSERT`, `UPDATE`, `DELETE` or `TRUNCATE` of any table: the ORM's saves, guarded
`UPDATE`s, bulk writes, raw SQL, the admin, every process: web, workers, cron, `manage.py`)
counts. Once the transaction that made it commits, the *generation* (a Redis counter every key
includes) is bumped, so every page made before is never served again. The hook sits under the
ORM (`connection.execute_wrappers`, installed on every new connection), not in the modules that
write: a new kind of change needs nothing added here. A statement in autocommit bumps at once.

**Why it cannot serve a page older than the change it missed:** the generation is read before
the page reads anything. A page that read the database before a commit and is stored after the
bump is stored under the generation before the bump, which no one asks for any more; a page that
read after the commit holds the change. A connection with writes it has not committed yet (a
view that writes, a test inside its transaction) neither reads nor stores pages: only it could
see those writes.

**What bounds the rest:** a page also shows the time ("3 minutes ago", "expires in 2 hours") and
a few things outside the database (whether a worker serves a queue). Keys also include the time
window (`QUORUM_PAGE_CACHE_SECONDS`, 30 by default; 0 turns the cache off), so no page is served
older than that, even when a process died between its commit and its bump, or Redis refused the
bump.

**Whose page.** The key holds the user, the browser's CSRF secret (a cached form's token is
valid for that browser only), the host and the full address with its query; one user keeps at
most `MOST_KEPT_PER_USER` pages a window (an address is a page per query string, and Redis must
not fill up: it holds RQ's jobs too). A page with a flash
message waiting is neither served from nor kept in the cache: the message is shown once; nor is
a page whose view changed the session (it took out values kept for a form, shown once; keeping
them wrote the session, a database write). Only 200 answers without cookies are kept, with the
headers the view set.

**Made once.** The answers asking for one page at once (a user's tabs, the reloads after a
change) wait for the one that makes it, up to a second, instead of each making it.

Redis unreachable: pages are made as if there were no cache, and one line is logged a minute.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.http import HttpRequest, HttpResponse

logger = logging.getLogger(__name__)

GENERATION_KEY = "quorum:pages:generation"
# Answers counted for /metrics (operations/metrics.py): every answer that asked the cache, those
# that made their page, and those that waited for another answer's.
COUNTS_KEY = "quorum:pages:answers"
PAGE_KEY_PREFIX = "quorum:pages:page:"
# Larger pages are made each time rather than kept.
LARGEST_KEPT = 2 * 1024 * 1024
# Pages one user may have kept per time window. Each address with its query is a page of its
# own: without a bound, one signed-in user asking for `?x=1`, `?x=2`, ... would fill Redis, which
# runs with `noeviction` for RQ's sake. Past it, that user's pages are made and not kept.
MOST_KEPT_PER_USER = 200
KEPT_COUNT_PREFIX = "quorum:pages:kept:"
# Answers asking for a page that another answer is making wait for it, this long at most.
WAIT_FOR_MAKER_SECONDS = 1.0
WAIT_POLL_SECONDS = 0.005
MAKING_SUFFIX = ":making"
# How long Redis may take before a page gives up on the cache and is made anyway.
REDIS_TIMEOUT_SECONDS = 0.25

# The statements that change a table. A `WITH` starts a statement that may write (a CTE ending
# in an UPDATE); it is counted when a write keyword follows.
_WRITE_START = (
    "INSERT",
    "UPDATE",
    "DELETE",
    "TRUNCATE",
    "REPLACE",
    "MERGE",
    "CREATE",
    "ALTER",
    "DROP",
)
_WRITE_IN_WITH = re.compile(r"\b(INSERT|UPDATE|DELETE|MERGE)\b", re.IGNORECASE)


def seconds() -> int:
    return int(getattr(settings, "QUORUM_PAGE_CACHE_SECONDS", 30))


# A client of its own, not infra.queues' (which waits as long as Redis takes, as queueing a
# job must): a page gives up on a slow Redis within REDIS_TIMEOUT_SECONDS and is made instead.
@functools.cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url, socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS
    )


def client() -> redis.Redis:
    return _client(settings.REDIS_URL)


_last_complaint = float("-inf")


def _complain(what: str, error: Exception) -> None:
    """One log line a minute while Redis fails, not one per page."""
    global _last_complaint
    now = time.monotonic()
    if now - _last_complaint >= 60:
        _last_complaint = now
        logger.warning("page cache: %s failed, pages are made without it: %s", what, error)


# ---- what invalidates: writes, seen under the ORM ------------------------------------------


def is_write(sql: str) -> bool:
    head = sql.lstrip()[:8].upper()
    if head.startswith(_WRITE_START):
        return True
    return head.startswith("WITH") and bool(_WRITE_IN_WITH.search(sql))


def bump() -> None:
    """Makes every page kept so far unreachable."""
    try:
        client().incr(GENERATION_KEY)
    except redis.RedisError as error:
        _complain("a bump", error)


def _bump_after_commit() -> None:
    bump()


def has_uncommitted_writes(connection: BaseDatabaseWrapper) -> bool:
    """Whether this connection wrote in the transaction it is in. Django drops the callbacks of
    a rolled-back transaction or savepoint, so a rollback clears it too."""
    # Each entry is (savepoint ids, callback, robust).
    return any(entry[1] is _bump_after_commit for entry in connection.run_on_commit)


def _note_write(connection: BaseDatabaseWrapper) -> None:
    if not connection.in_atomic_block:
        bump()
    elif not has_uncommitted_writes(connection):
        connection.on_commit(_bump_after_commit)


def _watch_writes(execute, sql, params, many, context):
    result = execute(sql, params, many, context)
    # SQL composed by psycopg's `sql` module is not text: counted as a write, to be safe.
    if not isinstance(sql, str) or is_write(sql):
        _note_write(context["connection"])
    return result


def install(sender=None, connection: BaseDatabaseWrapper | None = None, **_: Any) -> None:
    """`connection_created` receiver: watch the new connection's writes (once per wrapper; a
    wrapper reconnects with its list kept)."""
    if connection is not None and _watch_writes not in connection.execute_wrappers:
        connection.execute_wrappers.append(_watch_writes)


# ---- what is kept: pages ---------------------------------------------------------------------


def _messages_waiting(request: HttpRequest) -> bool:
    # Django's default storage keeps messages in a cookie, then in the session.
    if request.COOKIES.get(getattr(settings, "MESSAGE_COOKIE_NAME", "messages")):
        return True
    session = getattr(request, "session", None)
    return bool(session is not None and session.get("_messages"))


def page_key(request: HttpRequest, view: str, generation: int) -> str | None:
    """The page's key, or None when this answer must not come from, nor go to, the cache."""
    csrf_secret = request.META.get("CSRF_COOKIE")
    user = getattr(request, "user", None)
    if (
        request.method != "GET"
        or user is None
        or not user.is_authenticated
        or not csrf_secret
        or _messages_waiting(request)
    ):
        return None
    window = int(time.time() // seconds())
    parts = [
        view,
        str(generation),
        str(window),
        str(user.pk),
        csrf_secret,
        request.get_host(),
        "https" if request.is_secure() else "http",
        request.get_full_path(),
    ]
    digest = hashlib.sha256("\x00".join(parts).encode()).hexdigest()
    return PAGE_KEY_PREFIX + digest


def _encode(response: HttpResponse) -> bytes:
    head = {"status": response.status_code, "headers": list(response.items())}
    return json.dumps(head).encode() + b"\n" + response.content


def _decode(stored: bytes) -> HttpResponse:
    head, _, body = stored.partition(b"\n")
    meta = json.loads(head)
    response = HttpResponse(body, status=meta["status"])
    for name, value in meta["headers"]:
        response[name] = value
    return response


def _keepable(response: HttpResponse) -> bool:
    return (
        response.status_code == 200
        # A TemplateResponse not rendered yet has no content to keep.
        and getattr(response, "is_rendered", True)
        and not response.streaming
        and not response.cookies
        and len(response.content) <= LARGEST_KEPT
    )


def cached_page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Serves `view`'s page from the cache when it may (see the module's docstring). Goes under
    `login_required`: only signed-in users' pages are kept."""
    name = f"{view.__module__}.{view.__qualname__}"

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if seconds() <= 0 or has_uncommitted_writes(connections[DEFAULT_DB_ALIAS]):
            return view(request, *args, **kwargs)
        try:
            generation = int(client().get(GENERATION_KEY) or 0)
        except redis.RedisError as error:
            _complain("reading the generation", error)
            return view(request, *args, **kwargs)
        key = page_key(request, name, generation)
        if key is None:
            return view(request, *args, **kwargs)
        try:
            pipeline = client().pipeline(transaction=False)
            pipeline.get(key)
            pipeline.hincrby(COUNTS_KEY, "asked", 1)
            stored, _ = pipeline.execute()
        except redis.RedisError as error:
            _complain("reading a page", error)
            return view(request, *args, **kwargs)
        if isinstance(stored, bytes):
            return _decode(stored)
        try:
            stored, maker = _make_or_wait(key)
        except redis.RedisError as error:
            _complain("waiting for a page", error)
            return view(request, *args, **kwargs)
        if stored is not None:
            return _decode(stored)
        try:
            return _make(view, request, key, *args, **kwargs)
        finally:
            if maker:
                _let_go(key)

    return wrapper


def _make(view, request: HttpRequest, key: str, *args: Any, **kwargs: Any) -> HttpResponse:
    response = view(request, *args, **kwargs)
    # A view that took something out of the session (values kept for a form, shown once) made a
    # page for this answer only.
    session = getattr(request, "session", None)
    keep = (
        _keepable(response)
        and not (session is not None and session.modified)
        and not has_uncommitted_writes(connections[DEFAULT_DB_ALIAS])
    )
    try:
        if keep and _room_for(request.user.pk):
            pipeline = client().pipeline(transaction=False)
            pipeline.set(key, _encode(response), ex=seconds())
            pipeline.hincrby(COUNTS_KEY, "made", 1)
            pipeline.execute()
        else:
            client().hincrby(COUNTS_KEY, "made", 1)
    except redis.RedisError as error:
        _complain("keeping a page", error)
    return response


def _room_for(user_id: object) -> bool:
    """Whether the user may keep one more page in this time window (`MOST_KEPT_PER_USER`)."""
    window = int(time.time() // seconds())
    count_key = f"{KEPT_COUNT_PREFIX}{user_id}:{window}"
    pipeline = client().pipeline(transaction=False)
    pipeline.incr(count_key)
    pipeline.expire(count_key, seconds())
    kept, _ = pipeline.execute()
    return int(kept) <= MOST_KEPT_PER_USER


@dataclass(frozen=True)
class Counts:
    """Answers since Redis started: served from the cache, made (kept unless it may not be),
    served from another answer's making; and the generation: committed write transactions,
    each ending every page."""

    kept: int
    made: int
    waited: int
    generation: int


def counts() -> Counts:
    """For /metrics; raises `redis.RedisError` when Redis does not answer."""
    pipeline = client().pipeline(transaction=False)
    pipeline.hgetall(COUNTS_KEY)
    pipeline.get(GENERATION_KEY)
    answers, generation = pipeline.execute()
    asked, made, waited = (int(answers.get(field, 0)) for field in (b"asked", b"made", b"waited"))
    # The answers that asked and neither made their page nor waited for another's were served
    # from the cache (but for the few that found Redis failing in between).
    return Counts(
        kept=max(0, asked - made - waited),
        made=made,
        waited=waited,
        generation=int(generation or 0),
    )


def _make_or_wait(key: str) -> tuple[bytes | None, bool]:
    """(None, True): this answer makes the page under `key`, the others asking for it meanwhile
    wait. (page, False): another answer made it meanwhile. (None, False): make it anyway, after
    waiting `WAIT_FOR_MAKER_SECONDS` or once the maker let go keeping nothing. So the answers
    asking for one page at once (a user's tabs, a reload, the polls after a change) make it once,
    not each."""
    making = key + MAKING_SUFFIX
    if client().set(making, 1, nx=True, px=int(WAIT_FOR_MAKER_SECONDS * 1000)):
        return None, True
    deadline = time.monotonic() + WAIT_FOR_MAKER_SECONDS
    while time.monotonic() < deadline:
        time.sleep(WAIT_POLL_SECONDS)
        pipeline = client().pipeline(transaction=False)
        pipeline.get(key)
        pipeline.exists(making)
        stored, still_making = pipeline.execute()
        if isinstance(stored, bytes):
            client().hincrby(COUNTS_KEY, "waited", 1)
            return stored, False
        if not still_making:
            break
    return None, False


def _let_go(key: str) -> None:
    try:
        client().delete(key + MAKING_SUFFIX)
    except redis.RedisError as error:
        _complain("letting go of a page", error)
