"""Server time and queries of the pages with one client, in-process, for a small world; and a
profile of one page.

    .venv/bin/python bench/page_profile.py [--times 60] [--profile version] [--top 25]
                                           [--clients 20 --seconds 10]

Builds, in a fresh database (DATABASE_URL, else a new `qp_page_profile` PostgreSQL database on
127.0.0.1:5432), one model with 10 versions (v1 in Production and @champion, v3 in Staging, the
others candidates, every metric's history cached) and nine more models of 3 versions, the standard
policies of the tests and their cast, and the first model's history: 6 requests decided (approved
and rejected) and 4 open, with votes. No MLflow server: the pages read only the mirror.

Then, for the inbox, a request, a version, the model and the models pages, and the request's status
(which its open page polls), signed in as a reviewer (scientist1), it prints the queries of one
answer (the second, steady state) and the median of `--times` answers (Django's test client, no
HTTP): the time it took, and the CPU time this process spent on it (which other programs on a
shared machine disturb much less; the database's own work is not in it). Each page three times,
one after another: *off* (the page cache off, `QUORUM_PAGE_CACHE_SECONDS=0`), *made* (the cache
on and the database changed before each answer: what the first answer after any change costs,
the cache's own work included) and *kept* (served from the cache, infra/page_cache.py: every
other answer until the next change or the end of the window). `--profile PAGE` runs that
page `--times` times under cProfile and prints the `--top` functions by cumulative time.

With `--clients N`, it then serves the same world with gunicorn as bench/pages.py does (2
processes x 4 threads, DEBUG off) and drives each page with `wrk` (N connections, `--seconds`
per page, signed in as the same reviewer, with that browser's session and CSRF cookies): answers
per second, p50 and p95, from two gunicorns side by side, one with the cache off, one with it
on. `--writes W` commits W writes a second meanwhile, each of which ends every page kept.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import statistics
import sys
import threading
import time

from _common import LOCAL_POSTGRES, ROOT  # noqa: F401  (puts the repository on sys.path)

DATABASE = "qp_page_profile"


def fresh_database() -> str:
    import psycopg

    with psycopg.connect(f"{LOCAL_POSTGRES}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DATABASE}"')
    return f"{LOCAL_POSTGRES}/{DATABASE}"


def build_world() -> None:
    """The small world above."""
    from registry.models import Stage
    from reviews.decisions import voting
    from reviews.policies.loading import policies_load
    from tests.factories import (
        cache_all_history,
        make_model,
        make_request,
        make_user,
        make_version,
    )
    from tests.policy_files import STANDARD_POLICIES

    names = ["requester", "lead", "scientist1", "scientist2", "scientist3", "outsider"]
    people = {name: make_user(name) for name in names}
    policies_load(text=STANDARD_POLICIES)

    model = make_model("fraud", description="Scores card payments.")
    for number in range(1, 11):
        stage = {1: Stage.PRODUCTION, 3: Stage.STAGING}.get(number, Stage.NONE)
        version = make_version(
            model,
            number,
            stage=stage,
            aliases=["champion"] if number == 1 else [],
            metrics={
                "accuracy": 0.80 + number / 100,
                "f1": 0.78 + number / 100,
                "loss": 1 / number,
            },
            params={"lr": number / 10, "depth": number},
            tags={"owner": "risk"},
        )
        cache_all_history(version)
    for m in range(9):
        other = make_model(f"other-{m}")
        for number in range(1, 4):
            make_version(other, number, metrics={"accuracy": 0.9, "f1": 0.85})

    def vote(request, who: str, decision: str) -> None:
        comment = "accuracy drops on the holdout" if decision == "reject" else ""
        voting.vote_cast(
            request_id=request.pk, user=people[who], decision=decision, comment=comment
        )

    # Decided: approved and rejected requests, for Staging and Production.
    for number in (2, 4, 5):
        request = make_request("fraud", number, "Staging", requester=people["requester"])
        vote(request, "scientist2", "reject" if number == 4 else "approve")
    for number in (6, 7, 8):
        request = make_request("fraud", number, "Production", requester=people["requester"])
        vote(request, "scientist2", "reject")
    # Open: with and without votes.
    opened = []
    for number, target in ((9, "Production"), (10, "Production"), (6, "Staging"), (7, "@champion")):
        request = make_request("fraud", number, target, requester=people["requester"])
        opened.append(request)
    vote(opened[0], "lead", "approve")
    vote(opened[1], "scientist2", "approve")


def page_paths() -> dict[str, str]:
    from reviews.models import TransitionRequest

    request = TransitionRequest.objects.get(version__model__name="fraud", version__version=9)
    return {
        "inbox": "/reviews/",
        "request": f"/reviews/{request.pk}/",
        "version": "/models/fraud/versions/9/",
        "model": "/models/fraud/",
        "models": "/",
        # What every open request page polls (a JSON answer with an ETag).
        "status": f"/reviews/{request.pk}/status",
    }


def measure(client, path: str, times: int, *, changed: bool = False) -> tuple[int, float, float]:
    """(queries of the second answer, median server time and CPU time in ms of `times`
    answers). `changed`: the database changed before each answer (the page cache's generation
    bumped, as a committed write bumps it), so each answer is made and kept again."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from infra import page_cache

    assert client.get(path).status_code == 200, path
    if changed:
        page_cache.bump()
    with CaptureQueriesContext(connection) as captured:
        client.get(path)
    queries = len(captured)  # now: every request empties the log (request_started)
    spent, cpu = [], []
    for _ in range(times):
        if changed:
            page_cache.bump()
        start, start_cpu = time.perf_counter(), time.process_time()
        client.get(path)
        spent.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return queries, statistics.median(spent) * 1000, statistics.median(cpu) * 1000


def writes_meanwhile(per_second: float) -> threading.Event:
    """A thread committing `per_second` writes a second until the event returned is set: each
    one ends every page kept so far, as a vote, a comment or a sync's change would. The write
    changes nothing a page shows (a group renamed to its own name), so every page stays the
    same and only the cache's work is measured."""
    from django.contrib.auth.models import Group
    from django.db import connection
    from django.db.models import F

    stop = threading.Event()
    if per_second <= 0:
        return stop

    def write() -> None:
        try:
            while not stop.wait(1 / per_second):
                Group.objects.filter(name="data-science").update(name=F("name"))
        finally:
            connection.close()

    threading.Thread(target=write, daemon=True).start()
    return stop


def drive_http(pages: dict[str, str], cookies: str, args) -> None:
    """Each page under `args.clients` clients through gunicorn and wrk (bench/pages.py's), with
    the page cache off and on, side by side: one gunicorn each, page by page alternately."""
    from pages import drive_page, gunicorn

    from quorum.localservices import free_port, stop_process, wait_for_http

    servers = {}
    try:
        for label, window in (("off", "0"), ("on", os.environ["QUORUM_PAGE_CACHE_SECONDS"])):
            port = free_port()
            with_window = {**os.environ, "QUORUM_PAGE_CACHE_SECONDS": window}
            web = gunicorn(port, environ=with_window)
            servers[label] = (f"http://127.0.0.1:{port}", web)
        for base, web in servers.values():
            wait_for_http(f"{base}/accounts/login/", timeout=30, process=web)
        # The browser's cookies: its session and its CSRF secret (a page is kept per browser).
        headers = {"Cookie": cookies}
        writing = writes_meanwhile(args.writes)
        print(
            f"\n{args.clients} clients, {args.seconds} s per page, gunicorn 2 x 4 threads, "
            f"{args.writes} database writes a second meanwhile"
        )
        print(f"{'page':<8} {'cache':<5} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8}")
        for name, path in pages.items():
            for label, (base, _) in servers.items():
                result = drive_page(name, base + path, args, headers)
                print(
                    f"{name:<8} {label:<5} {result['requests'] / args.seconds:7.1f} "
                    f"{result['p50']:8.1f} {result['p95']:8.1f}",
                    flush=True,
                )
        writing.set()
    finally:
        for _, web in servers.values():
            stop_process(web)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--times", type=int, default=60)
    parser.add_argument(
        "--profile", default="", help="inbox, request, version, model, models or status"
    )
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--clients", type=int, default=0, help="drive gunicorn with wrk too")
    parser.add_argument("--seconds", type=int, default=10, help="per page, with --clients")
    parser.add_argument(
        "--writes",
        type=float,
        default=0,
        help="with --clients: database writes a second meanwhile, each ending the pages kept",
    )
    args = parser.parse_args()
    if args.clients and shutil.which("wrk") is None:
        sys.exit("bench/page_profile.py --clients needs wrk: apt-get install wrk")
    if "DATABASE_URL" not in os.environ:
        os.environ["DATABASE_URL"] = fresh_database()
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/10")
    # The page cache's window (infra/page_cache.py); the bench measures pages with it off, too.
    os.environ.setdefault("QUORUM_PAGE_CACHE_SECONDS", "30")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "quorum.settings")
    # The session is made here and checked by gunicorn (--clients): one key for both.
    os.environ.setdefault("SECRET_KEY", "bench-" + "x" * 50)
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client

    settings.ALLOWED_HOSTS = ["*"]
    call_command("migrate", verbosity=0)
    build_world()
    pages = page_paths()
    client = Client()
    from django.contrib.auth import get_user_model

    client.force_login(get_user_model().objects.get(username="scientist1"))
    # A browser has its CSRF cookie from its first page; pages are kept per browser.
    client.get("/reviews/")

    # Each page with the cache off, made (the cache on, the database changed since the last
    # answer: what the first answer after any change costs, the cache's own work included) and
    # kept (served from the cache: every other answer until the next change), one after another.
    window = int(os.environ["QUORUM_PAGE_CACHE_SECONDS"])
    print(
        f"{'page':<8} {'cache':<5} {'queries':>7} {'p50 ms':>8} {'CPU ms':>8}   "
        f"({args.times} answers each, one client)"
    )
    for name, path in pages.items():
        for label, seconds, changed in (
            ("off", 0, False),
            ("made", window, True),
            ("kept", window, False),
        ):
            settings.QUORUM_PAGE_CACHE_SECONDS = seconds
            queries, p50, cpu = measure(client, path, args.times, changed=changed)
            print(f"{name:<8} {label:<5} {queries:>7} {p50:>8.1f} {cpu:>8.1f}", flush=True)
    settings.QUORUM_PAGE_CACHE_SECONDS = window
    if args.profile:
        path = pages[args.profile]
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(args.times):
            client.get(path)
        profiler.disable()
        print(f"\ncProfile of {args.times} answers of the {args.profile} page ({path}):")
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(args.top)
    if args.clients:
        cookies = "; ".join(
            f"{name}={client.cookies[name].value}" for name in ("sessionid", "csrftoken")
        )
        drive_http(pages, cookies, args)


if __name__ == "__main__":
    main()
