"""/metrics (operations/metrics.py): a scrape parsed as Prometheus parses it, its numbers checked
against a seeded state, its cost pinned, and who may read it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from registry.models import RegistryChange, SyncRun
from reviews.execution import jobs
from reviews.models import OutOfBandRevert, TransitionRequest
from tests.factories import make_request, make_version

TOKEN = "metrics-token-for-the-tests-0123456789"


@pytest.fixture
def metrics_on(settings):
    settings.QUORUM_METRICS_TOKEN = TOKEN
    settings.QUORUM_METRICS_ALLOW = []


def scrape(client, **headers) -> dict:
    """{(name, labels as a sorted tuple): value} of every sample."""
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def set_times(request, **fields) -> None:
    TransitionRequest.objects.filter(pk=request.pk).update(**fields)


@pytest.fixture
def seeded(world, requester, rq_queue):
    """Four requests in known states with known timestamps, syncs, an out-of-band move and its
    failed revert, a locked-out sign-in and a job waiting on the transitions queue."""
    now = timezone.now()
    base = now - timedelta(days=1)
    pending = make_request("fraud", 2, "Production", requester=requester)
    set_times(pending, created_at=base, expires_at=now + timedelta(hours=1))
    done = make_request("fraud", 2, "Staging", requester=requester)
    set_times(
        done,
        created_at=base,
        decision="approved",
        decided_at=base + timedelta(seconds=120),
        execution="done",
        executed_at=base + timedelta(seconds=130),
        attestation="failed",
    )
    rejected = make_request("fraud", 3, "Production", requester=requester)
    set_times(rejected, created_at=base, decision="rejected", decided_at=base + timedelta(hours=2))
    glass = make_request("fraud", 3, "Staging", requester=requester)
    set_times(
        glass,
        kind="break_glass",
        created_at=base,
        decision="approved",
        decided_at=base + timedelta(seconds=30),
        execution="failed",
    )
    SyncRun.objects.create(kind="full", finished_at=now - timedelta(seconds=300))
    SyncRun.objects.create(kind="full", finished_at=now - timedelta(seconds=60), error="boom")
    v1 = world.model.versions.get(version=1)
    for origin in ("out_of_band", "quorum"):
        RegistryChange.objects.create(
            model=world.model,
            version=v1,
            kind="stage_changed",
            old="Production",
            new="None",
            origin=origin,
        )
    OutOfBandRevert.objects.create(model=world.model, state="failed")
    for username, failures in (("dave", 10), ("erin", 3)):
        AccessAttempt.objects.create(
            username=username,
            ip_address="10.0.0.1",
            user_agent="test",
            http_accept="*/*",
            path_info="/accounts/login/",
            get_data="",
            post_data="",
            failures_since_start=failures,
        )
    for name in ("default", "notifications", "sync"):
        rq_queue(name)
    rq_queue(jobs.QUEUE).enqueue("operator.add", 1, 2)
    return now


def test_a_scrape_reports_the_seeded_state(client, metrics_on, seeded):
    m = scrape(client)

    def value(name, **labels):
        return m[(name, tuple(sorted(labels.items())))]

    assert (
        value("quorum_open_requests", policy="production", target="Production", state="pending")
        == 1
    )
    assert value("quorum_open_requests", policy="staging", target="Staging", state="failed") == 1
    assert not any(k[0] == "quorum_open_requests" and ("state", "done") in k[1] for k in m)
    assert value("quorum_requests_decided_total", kind="promotion", decision="approved") == 1
    assert value("quorum_requests_decided_total", kind="promotion", decision="rejected") == 1
    assert value("quorum_requests_decided_total", kind="break_glass", decision="approved") == 1

    # 30 s and 120 s to an approval, two hours to a rejection.
    assert value("quorum_request_decision_seconds_bucket", decision="approved", le="60.0") == 1
    assert value("quorum_request_decision_seconds_bucket", decision="approved", le="300.0") == 2
    assert value("quorum_request_decision_seconds_count", decision="approved") == 2
    assert value("quorum_request_decision_seconds_sum", decision="approved") == 150
    assert value("quorum_request_decision_seconds_bucket", decision="rejected", le="3600.0") == 0
    assert value("quorum_request_decision_seconds_bucket", decision="rejected", le="14400.0") == 1
    assert value("quorum_request_decision_seconds_bucket", decision="rejected", le="+Inf") == 1
    # 10 s from the approval to done.
    assert value("quorum_request_execution_seconds_bucket", le="5.0") == 0
    assert value("quorum_request_execution_seconds_bucket", le="15.0") == 1
    assert value("quorum_request_execution_seconds_sum") == 10

    assert value("quorum_transitions_done_total") == 1
    assert value("quorum_transitions_failed") == 1
    assert value("quorum_proofs_failed") == 1
    assert value("quorum_break_glass_uses_total") == 1
    assert value("quorum_requests_past_reminder") == 1
    assert value("quorum_lockouts") == 1

    assert value("quorum_sync_last_success_timestamp_seconds") == pytest.approx(
        (seeded - timedelta(seconds=300)).timestamp()
    )
    assert 300 <= value("quorum_sync_lag_seconds") < 360
    assert value("quorum_sync_failures_in_a_row") == 1
    assert value("quorum_out_of_band_moves_total") == 1
    assert value("quorum_out_of_band_reverts", state="failed") == 1

    assert value("quorum_redis_up") == 1
    assert value("quorum_queue_jobs", queue="transitions") == 1
    assert 0 <= value("quorum_queue_oldest_job_age_seconds", queue="transitions") < 60
    assert value("quorum_queue_jobs", queue="sync") == 0
    assert value("quorum_queue_oldest_job_age_seconds", queue="sync") == 0


def test_a_scrape_costs_the_same_few_queries_however_many_requests(
    client, metrics_on, seeded, world, requester, django_assert_max_num_queries
):
    with django_assert_max_num_queries(9):
        first = scrape(client)
    for number in range(4, 10):
        make_version(world.model, number, metrics={"accuracy": 0.9, "f1": 0.85})
        make_request("fraud", number, "Staging", requester=requester)
    with django_assert_max_num_queries(9):
        second = scrape(client)
    pending = (
        "quorum_open_requests",
        (("policy", "staging"), ("state", "pending"), ("target", "Staging")),
    )
    assert pending not in first or first[pending] == 0
    assert second[pending] == 6


def test_redis_down_still_answers_with_the_database_metrics(client, metrics_on, world, settings):
    from quorum.localservices import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"
    settings.RQ_QUEUES = {name: {"URL": url} for name in settings.QUORUM_QUEUES}
    m = scrape(client)
    assert m[("quorum_redis_up", ())] == 0
    assert ("quorum_transitions_done_total", ()) in m
    assert not any(name == "quorum_queue_jobs" for name, _ in m)


# -- who may read it -------------------------------------------------------------------------


@pytest.mark.django_db
def test_metrics_are_off_without_a_token_or_an_allow_list(client, settings):
    settings.QUORUM_METRICS_TOKEN, settings.QUORUM_METRICS_ALLOW = "", []
    response = client.get("/metrics")
    assert response.status_code == 404
    assert b"Metrics are off: set QUORUM_METRICS_TOKEN" in response.content


@pytest.mark.django_db
def test_a_missing_or_wrong_token_is_refused(client, metrics_on):
    response = client.get("/metrics")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"Authorization: Bearer <QUORUM_METRICS_TOKEN>" in response.content
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer " + TOKEN[:-1])
    assert response.status_code == 401
    assert b"not the metrics token" in response.content
    assert client.get("/metrics", HTTP_AUTHORIZATION="Basic " + TOKEN).status_code == 401


@pytest.mark.django_db
def test_the_allow_list_admits_its_addresses_only(client, settings):
    import ipaddress

    settings.QUORUM_METRICS_TOKEN = ""
    settings.QUORUM_METRICS_ALLOW = [ipaddress.ip_network("10.0.0.0/8")]
    response = client.get("/metrics", REMOTE_ADDR="192.168.1.5")
    assert response.status_code == 403
    assert response.content == b"The address 192.168.1.5 is not in QUORUM_METRICS_ALLOW.\n"
    # A forged X-Forwarded-For does not make an address allowed.
    response = client.get("/metrics", REMOTE_ADDR="192.168.1.5", HTTP_X_FORWARDED_FOR="10.1.2.3")
    assert response.status_code == 403
    response = client.get("/metrics", REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 200
    assert b"quorum_open_requests" in response.content
    assert (
        client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION="Bearer x").status_code
        == 403
    )


@pytest.mark.django_db
def test_scrapers_by_address_over_plain_http_are_answered(client, metrics_on, settings):
    """Prometheus scrapes each process at its own address: no name in ALLOWED_HOSTS, plain
    HTTP while QUORUM_HTTPS redirects everything else."""
    settings.ALLOWED_HOSTS = ["quorum.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    response = client.get(
        "/metrics", HTTP_HOST="10.1.2.3:8000", HTTP_AUTHORIZATION=f"Bearer {TOKEN}"
    )
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    assert client.get("/accounts/login/", HTTP_HOST="10.1.2.3:8000").status_code == 400


@pytest.mark.django_db
def test_a_post_to_metrics_changes_nothing(client, metrics_on):
    response = client.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
