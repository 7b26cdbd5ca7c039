"""The newest-first lists of requests with and without their indexes, on a long review history.

    .venv/bin/python bench/pages.py --clients 1 --seconds 3 --requests 10000
    .venv/bin/python bench/request_lists.py [--rounds 3]

Reads the database bench/pages.py leaves behind (`quorum_bench_pages`, or DATABASE_URL), whose
history has REQUESTS requests, three in four of them pending. For each page that lists the newest
few of many requests (the inbox's "recently decided", the API's pending requests, in summaries and
in full, and the inbox of an approver whom every pending request awaits) it times the answer in
this process (Django's test client, no HTTP; the median of 15) and `EXPLAIN ANALYZE`s the page's
slowest query, once with the indexes of migration 0019 and once without them (dropped in a
transaction that is rolled back), alternating ROUNDS times so that the machine's drift falls on
both alike. PostgreSQL only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from _common import LOCAL_POSTGRES

INDEXES = ("request_state_newest", "request_mine_newest", "request_decided_newest")
PAGES = {
    "inbox": "/reviews/",
    # approver3 is in the group every request needs: every pending request awaits them.
    "inbox, an approver's": "/reviews/",
    "API: pending requests": "/api/v1/requests?state=pending",
    "API: full, 50": "/api/v1/requests?state=pending&fields=full&limit=50",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("DATABASE_URL", f"{LOCAL_POSTGRES}/quorum_bench_pages")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "quorum.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.db import connection, transaction
    from django.test import Client

    from reviews.api.auth import token_create
    from reviews.models import TransitionRequest

    if connection.vendor != "postgresql":
        raise SystemExit("bench/request_lists.py needs the PostgreSQL database of bench/pages.py")
    settings.ALLOWED_HOSTS = ["*"]
    reviewer = User.objects.get(username="reviewer")
    client, approver = Client(), Client()
    client.force_login(reviewer)
    approver.force_login(User.objects.get(username="approver3"))
    with transaction.atomic():
        _, token = token_create(user=reviewer, name="request lists")
    headers = {"Authorization": f"Bearer {token}"}
    total = TransitionRequest.objects.count()
    pending = TransitionRequest.objects.filter(decision="pending").count()
    print(f"{total:,} requests, {pending:,} pending; medians of 15 answers, {args.rounds} rounds")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE reviews_transitionrequest")
    results: dict[tuple[str, bool], list[float]] = {}
    plans: dict[tuple[str, bool], tuple[float, str]] = {}
    for _ in range(args.rounds):
        for indexed in (True, False):
            with transaction.atomic():
                if not indexed:
                    with connection.cursor() as cursor:
                        for name in INDEXES:
                            cursor.execute(f'DROP INDEX "{name}"')
                for label, path in PAGES.items():
                    given = headers if label.startswith("API") else {}
                    who = approver if "approver" in label else client
                    results.setdefault((label, indexed), []).append(server_ms(who, path, given))
                    plans[(label, indexed)] = slowest_query(who, path, given)
                transaction.set_rollback(True)
    print(f"{'page':24} {'with ms':>8} {'without ms':>11}   slowest query with / without")
    for label in PAGES:
        with_, without = (statistics.median(results[(label, i)]) for i in (True, False))
        (fast, fast_plan), (slow, slow_plan) = plans[(label, True)], plans[(label, False)]
        print(
            f"{label:24} {with_:8.1f} {without:11.1f}   {fast:.2f} ms ({fast_plan}) / "
            f"{slow:.2f} ms ({slow_plan})"
        )


def server_ms(client, path: str, headers: dict, times: int = 15) -> float:
    client.get(path, headers=headers)
    spent = []
    for _ in range(times):
        started = time.perf_counter()
        response = client.get(path, headers=headers)
        spent.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    return statistics.median(spent)


def slowest_query(client, path: str, headers: dict) -> tuple[float, str]:
    """The execution time and the first access path of the page's slowest query."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        client.get(path, headers=headers)
    sql = max(captured.captured_queries, key=lambda q: float(q["time"]))["sql"]
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql)
        (plan,) = cursor.fetchone()
    plan = plan[0] if isinstance(plan, list) else plan
    return plan["Execution Time"], first_scan(plan["Plan"])


def first_scan(node: dict) -> str:
    """The scan the plan starts from: the request table's, when it is read."""
    scans = []

    def walk(each: dict) -> None:
        if "Scan" in each["Node Type"] and each.get("Relation Name") == "reviews_transitionrequest":
            scans.append(f"{each['Node Type']} {each.get('Index Name', '')}".strip())
        for child in each.get("Plans", []):
            walk(child)

    walk(node)
    return scans[0] if scans else node["Node Type"]


if __name__ == "__main__":
    main()
