"""Page latency under load: gunicorn serving the dashboard for a large registry and review history.

    .venv/bin/python bench/pages.py [--clients 20] [--seconds 10] [--requests 1000]
                                    [--audit-events 100000]

Mirrors the 200 x 10 benchmark registry (built once by bench/sync.py's code and reused from
var/bench/), opens REQUESTS transition requests with votes (pending with some approvals, approved,
rejected), then serves Quorum with gunicorn (2 processes x 4 threads, DEBUG off) and drives each
page with `wrk` (CLIENTS connections for SECONDS each, logged in, loopback only). Every page is
fetched once first and must answer 200 itself: wrk counts only 4xx and 5xx as errors, and a
redirect to the login form would pass for a fast page. In the same run it drives MLflow's own
JSON listing of 25 registered models (`registered-models/search`, the page size of our models
list) the same way, and prints each page's p50 against MLflow's. Then it lengthens the audit
chain to AUDIT_EVENTS events (0: not at all), verifies it as the reconciler would, and drives
every page again: a page whose cost grows with the chain shows here. Queries per page are counted
in-process with Django's test client, and each page's server time (one client, no HTTP) is the
median of 15 answers in this process.

Every page here is made afresh, as the first answer after a change is: the bench turns the page
cache off (`QUORUM_PAGE_CACHE_SECONDS=0`, infra/page_cache.py), in this process and in gunicorn,
so the figures are what a page costs to make at each size. bench/page_profile.py measures pages
kept and made side by side.

Needs `wrk` (Debian: apt-get install wrk) and a PostgreSQL server (several processes write).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import BENCH_DIR, ROOT, bench_stack, fresh_database

# A version has at most one open request per target: past 1,800 requests (one per version of
# the 200 x 10 registry not in Staging) the same versions are asked for the next target, an
# alias no version of the registry holds.
TARGETS = ["Staging", *(f"@bench_{n}" for n in range(1, 6))]

POLICY = """
groups:
  data-science: [approver1, approver2, approver3]
policies:
  - name: bench
    models: ["*"]
    targets: [Production, Staging, "@champion",
              "@bench_1", "@bench_2", "@bench_3", "@bench_4", "@bench_5"]
    require: [{group: data-science, approvals: 2}]
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=10, help="per page")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--audit-events", type=int, default=100_000)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench/pages.py needs wrk: apt-get install wrk")

    from quorum.localservices import free_port, stop_process, wait_for_http

    if "DATABASE_URL" not in os.environ:
        os.environ["DATABASE_URL"] = fresh_database("pages")
    if not os.environ["DATABASE_URL"].startswith("postgres"):
        sys.exit("bench/pages.py needs PostgreSQL on 127.0.0.1:5432 (or DATABASE_URL)")
    # The session the pages are driven with is made in this process: gunicorn must check it
    # with the same key, or every page answers with a redirect to the login form.
    os.environ.setdefault("SECRET_KEY", "bench-" + "x" * 50)
    # Pages made, not kept: what each costs at this size (bench/page_profile.py measures both).
    os.environ["QUORUM_PAGE_CACHE_SECONDS"] = "0"
    store = BENCH_DIR / "mlflow-200x10"
    with bench_stack("pages", store=store) as mlflow_url:
        if not (store / "complete").exists():
            from sync import build_registry

            build_registry(mlflow_url, 200, 10)
            (store / "complete").write_text("built\n")
        pages, credentials = prepare(mlflow_url, args.requests)
        port = free_port()
        web = gunicorn(port)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for_http(f"{base}/accounts/login/", timeout=30, process=web)
            report(base, mlflow_url, pages, credentials, args)
        finally:
            stop_process(web)


def gunicorn(port: int, environ: dict[str, str] | None = None) -> subprocess.Popen:
    """Quorum served on 127.0.0.1:`port` by gunicorn, 2 processes x 4 threads, DEBUG off, with
    this process's environment (its database, its SECRET_KEY), or `environ`."""
    return subprocess.Popen(
        [
            str(Path(sys.executable).with_name("gunicorn")),
            "quorum.wsgi",
            "--workers=2",
            "--threads=4",
            f"--bind=127.0.0.1:{port}",
            "--log-level=warning",
        ],
        cwd=ROOT,
        env={
            **(os.environ if environ is None else environ),
            "DEBUG": "0",
            "ALLOWED_HOSTS": "127.0.0.1",
            # Steady state: no per-request log line to write, no process recycling mid-run
            # (gunicorn.conf.py recycles every ~10,000 requests, which drops connections).
            "GUNICORN_ACCESS_LOG": "/dev/null",
            "GUNICORN_MAX_REQUESTS": "0",
        },
        start_new_session=True,
    )


def prepare(mlflow_url: str, count: int):
    """The mirror, users, policy and review history; returns (pages, credentials)."""
    import django_rq
    from django.contrib.auth.models import User
    from django.test import Client

    from registry.mlflow_client import RegistryClient
    from registry.models import ModelVersion
    from registry.sync import sync_registry
    from reviews.audit import verification
    from reviews.decisions import opening, voting
    from reviews.models import TransitionRequest
    from reviews.policies.loading import policies_load

    started = time.perf_counter()
    sync_registry(full=True, client=RegistryClient(mlflow_url))
    requester = User.objects.create_user("requester")
    approvers = [User.objects.create_user(f"approver{i}") for i in (1, 2, 3)]
    User.objects.create_superuser("reviewer")
    policies_load(text=POLICY)
    candidates = list(
        ModelVersion.objects.live()
        .exclude(stage="Staging")
        .select_related("model")
        .order_by("model__name", "version")
    )
    if count > len(candidates) * len(TARGETS):
        sys.exit(f"--requests {count}: at most {len(candidates) * len(TARGETS)} on this registry")
    opened = []
    for index in range(count):
        version = candidates[index % len(candidates)]
        request = opening.request_create(
            model=version.model.name,
            version=version.version,
            target=TARGETS[index // len(candidates)],
            requester=requester,
        )
        opened.append(request)
        kind = request.pk % 4
        if kind in (1, 2):  # pending with one approval, or approved
            for approver in approvers[:kind]:
                voting.vote_cast(request_id=request.pk, user=approver, decision="approve")
        elif kind == 3:
            voting.vote_cast(
                request_id=request.pk, user=approvers[0], decision="reject", comment="worse"
            )
    django_rq.get_queue("transitions").empty()  # no worker here: leave MLflow as it is
    # As the reconciler does every minute: the audit page then checks only what comes after.
    verified = verification.extend_verified_checkpoint()
    print(
        f"mirrored 2,000 versions and opened {len(opened)} requests with votes in "
        f"{time.perf_counter() - started:.0f} s "
        f"({TransitionRequest.objects.filter(decision='pending').count()} pending, "
        f"{verified.sequence:,} audit events)"
    )
    print_audit_check_costs()

    sample = opened[len(opened) // 2]  # with more than 2,000: a version with several requests
    name, number = sample.version.model.name, sample.version.version
    pages = {
        "models list": "/",
        "model": f"/models/{name}/",
        "version": f"/models/{name}/versions/{number}/",
        "compare": f"/models/{name}/compare?a={number}&b={max(1, number - 1)}",
        "inbox": "/reviews/",
        "request": f"/reviews/{sample.pk}/",
        "audit (staff)": "/audit/",
        "API: pending requests": "/api/v1/requests?state=pending",
        # What every call answered before summaries: full items, 50 a page.
        "API: full, 50 (as before)": "/api/v1/requests?state=pending&fields=full&limit=50",
    }
    from reviews.api.auth import token_create

    client = Client()
    client.force_login(User.objects.get(username="reviewer"))
    _, token = token_create(user=User.objects.get(username="reviewer"), name="bench")
    credentials = {
        "session": {"Cookie": f"sessionid={client.cookies['sessionid'].value}"},
        "token": {"Authorization": f"Bearer {token}"},
    }
    measured = {
        label: in_process(client, label, path, credentials) for label, path in pages.items()
    }
    return {label: (path, *measured[label]) for label, path in pages.items()}, credentials


def in_process(client, label: str, path: str, credentials: dict) -> tuple[int, float]:
    """The page's queries and its server time (`server_ms`), in this process."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    headers = {} if not label.startswith("API") else credentials["token"]
    client.get(path, headers=headers)  # once first: a token's last use is written once a minute
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path, headers=headers)
    assert response.status_code == 200, (path, response.status_code)
    return len(captured), server_ms(client, path, headers)


def server_ms(client, path: str, headers: dict, times: int = 15) -> float:
    """The median time Django takes to answer `path` in this process, with one client: the
    page's own cost (queries, counting, charts, templates), without HTTP or gunicorn."""
    spent = []
    for _ in range(times):
        started = time.perf_counter()
        client.get(path, headers=headers)
        spent.append(time.perf_counter() - started)
    return statistics.median(spent) * 1000


def lengthen_audit_chain(events: int) -> tuple[str, str, int, float]:
    """Appends events until the chain holds `events`, verifies them as the reconciler would, and
    returns the audit page's (label, path, queries, server ms) at that length."""
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from reviews.audit import verification
    from reviews.models import AuditHead
    from tests.factories import make_audit_chain

    started = time.perf_counter()
    make_audit_chain(max(0, events - AuditHead.objects.get(name="audit").sequence))
    built = time.perf_counter()
    verified = verification.extend_verified_checkpoint()
    print(
        f"audit chain lengthened to {verified.sequence:,} events in {built - started:.0f} s; "
        f"the reconciler's walk verified {verified.checked:,} of them in "
        f"{time.perf_counter() - built:.1f} s"
    )
    print_audit_check_costs()
    client = Client()
    client.force_login(User.objects.get(username="reviewer"))
    with CaptureQueriesContext(connection) as captured:
        assert client.get("/audit/").status_code == 200
    label = f"audit, {verified.sequence:,} events"
    return label, "/audit/", len(captured), server_ms(client, "/audit/", {})


def print_audit_check_costs() -> None:
    """In-process: the full walk each view of the audit page made before the checkpoint, against
    the page's check now (medians)."""
    from reviews.audit import verification

    def median_ms(function, runs: int) -> float:
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            function()
            times.append(time.perf_counter() - started)
        return statistics.median(times) * 1000

    print(
        f"  audit check: full walk {median_ms(verification.verify, 3):.0f} ms, "
        f"the page's check from the checkpoint {median_ms(verification.chain_status, 21):.1f} ms"
    )


def probe(url: str, headers: dict[str, str]) -> None:
    """The page answers 200 itself: not a redirect (to the login form), which wrk would time."""
    import requests

    response = requests.get(url, headers=headers, allow_redirects=False, timeout=60)
    if response.status_code != 200:
        raise SystemExit(f"{url} answered {response.status_code}, not 200: nothing to measure")


def wrk(url: str, args, headers: dict[str, str]) -> dict[str, float]:
    command = [
        "wrk",
        f"-t{min(2, args.clients)}",  # wrk needs a connection per thread
        f"-c{args.clients}",
        f"-d{args.seconds}s",
        "-s",
        str(ROOT / "bench" / "wrk_report.lua"),
        url,
    ]
    for key, value in headers.items():
        command[1:1] = ["-H", f"{key}: {value}"]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    match = re.search(r"RESULT (.*)", output)
    if match is None:
        raise SystemExit(f"wrk printed no result:\n{output}")
    return {key: float(value) for key, value in (pair.split("=") for pair in match[1].split())}


def drive_page(label: str, url: str, args, headers: dict[str, str]) -> dict[str, float]:
    """`url` checked to answer 200, then driven by `wrk`; its errors and non-2xx answers said."""
    probe(url, headers)
    result = wrk(url, args, headers)
    if result["errors"] or result["non2xx"]:
        print(f"  {label}: {result['errors']:.0f} errors, {result['non2xx']:.0f} non-2xx")
    return result


def report(base: str, mlflow_url: str, pages, credentials: dict, args) -> None:
    from django.db import connection

    mlflow = wrk(f"{mlflow_url}/api/2.0/mlflow/registered-models/search?max_results=25", args, {})
    print()
    print(
        f"{args.clients} clients, {args.seconds} s per page, gunicorn 2 x 4 threads, "
        f"database {connection.vendor}, {os.cpu_count()} cores shared with the load generator"
    )
    print(
        f"{'page':<28} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'req/s':>7} "
        f"{'queries':>8} {'server ms':>10} {'p50 / MLflow':>13}"
    )

    def drive(label: str, path: str, queries: int, server: float) -> None:
        headers = credentials["token" if label.startswith("API") else "session"]
        result = drive_page(label, base + path, args, headers)
        print(
            f"{label:<28} {result['p50']:8.1f} {result['p95']:8.1f} {result['p99']:8.1f} "
            f"{result['requests'] / args.seconds:7.0f} {queries:>8} {server:10.1f}"
            f" {result['p50'] / mlflow['p50']:12.2f}x",
            flush=True,
        )

    for label, (path, queries, server) in pages.items():
        drive(label, path, queries, server)
    if args.audit_events:
        audit = lengthen_audit_chain(args.audit_events)
        # Every page again with the long chain: what a year of reviews costs each of them.
        from django.contrib.auth.models import User
        from django.test import Client

        client = Client()
        client.force_login(User.objects.get(username="reviewer"))
        for label, (path, _queries, _server) in pages.items():
            again = f"{label}, {audit[0].split(', ')[1]}"
            drive(again, path, *in_process(client, label, path, credentials))
    print(
        f"{'MLflow models search (25)':<28} {mlflow['p50']:8.1f} {mlflow['p95']:8.1f} "
        f"{mlflow['p99']:8.1f} {mlflow['requests'] / args.seconds:7.0f} {'-':>8} {'-':>10} "
        f"{1:12.2f}x"
    )


if __name__ == "__main__":
    main()
