"""/healthz and /readyz (operations/health.py): alive without asking anyone; ready only when the
database, Redis, MLflow and a worker on every queue answer, and the answer names what did not,
without an address or a password in it."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from quorum.localservices import free_port
from tests.waiting import wait_for

REDIS_PASSWORD = "redis-secret-in-the-url"


@pytest.fixture
def private_redis(settings):
    """A redis-server of this test's own, with a password, that the test may stop; the queues
    point at it. `.stop()` stops it."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    process = subprocess.Popen(
        [
            server,
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--requirepass",
            REDIS_PASSWORD,
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{port}/0"
    settings.RQ_QUEUES = {name: {"URL": url} for name in settings.QUORUM_QUEUES}
    import redis

    def answers() -> bool:
        try:
            return redis.Redis.from_url(url, socket_timeout=1).ping()
        except redis.RedisError:
            return False

    wait_for(answers, timeout=10, message="the private redis-server to answer")

    def stop() -> None:
        process.terminate()
        process.wait(timeout=10)

    process.stop = stop
    yield process
    if process.poll() is None:
        stop()


def ready(client, query: str = ""):
    response = client.get("/readyz" + query)
    assert response["Content-Type"] == "application/json"
    return response.status_code, json.loads(response.content)


@pytest.mark.django_db
def test_healthz_answers_alive_to_anyone_at_any_address(client, settings):
    settings.ALLOWED_HOSTS = ["quorum.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    response = client.get("/healthz", HTTP_HOST="10.1.2.3:8000")
    assert response.status_code == 200
    assert json.loads(response.content) == {"status": "alive"}
    assert response["Cache-Control"] == "no-store"
    assert client.head("/healthz/", HTTP_HOST="10.1.2.3:8000").status_code == 200


@pytest.mark.django_db
def test_readyz_without_a_worker_is_503_naming_the_queues(client, mlflow_server, private_redis):
    status, body = ready(client)
    assert status == 503
    assert body["status"] == "not ready"
    checks = body["checks"]
    assert checks["database"]["ok"] is True
    assert checks["redis"]["ok"] is True
    assert checks["mlflow"]["ok"] is True
    assert checks["workers"] == {
        "ok": False,
        "error": "no worker has sent a heartbeat within 480 s on the queues transitions, "
        "default, notifications, sync",
        "seconds": checks["workers"]["seconds"],
    }


@pytest.mark.django_db
def test_readyz_with_redis_stopped_is_503_naming_redis_and_no_password(
    client, mlflow_server, private_redis
):
    status, body = ready(client, "?check=database,redis")
    assert status == 200
    assert set(body["checks"]) == {"database", "redis"}

    private_redis.stop()
    response = client.get("/readyz")
    assert response.status_code == 503
    body = json.loads(response.content)
    assert body["checks"]["redis"]["ok"] is False
    assert body["checks"]["redis"]["error"] == "Redis did not answer (ConnectionError)"
    assert body["checks"]["workers"]["error"].startswith("the workers could not be listed")
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["mlflow"]["ok"] is True
    assert REDIS_PASSWORD.encode() not in response.content
    assert b"127.0.0.1" not in response.content


@pytest.mark.django_db
def test_readyz_with_mlflow_stopped_is_503_naming_mlflow(client, settings, monkeypatch):
    settings.MLFLOW_TRACKING_URI = f"http://quorum:mlflow-password@127.0.0.1:{free_port()}"
    response = client.get("/readyz?check=database,mlflow")
    assert response.status_code == 503
    body = json.loads(response.content)
    assert body["checks"]["mlflow"] == {
        "ok": False,
        "error": "MLflow did not answer",
        "seconds": body["checks"]["mlflow"]["seconds"],
    }
    assert body["checks"]["database"]["ok"] is True
    assert b"mlflow-password" not in response.content


@pytest.mark.django_db
def test_readyz_refuses_an_unknown_check(client):
    response = client.get("/readyz?check=database,disk")
    assert response.status_code == 400
    assert json.loads(response.content) == {
        "error": "unknown check disk: the checks are database, redis, mlflow, workers"
    }


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_readyz_is_200_once_a_real_worker_serves_every_queue(
    client, mlflow_server, redis_url, workers
):
    worker = workers.start(mlflow_url=mlflow_server.url)
    wait_for(
        lambda: client.get("/readyz").status_code == 200,
        timeout=60,
        interval=0.5,
        message="/readyz to say ready once the worker registered",
    )
    status, body = ready(client)
    assert body["status"] == "ready"
    assert body["checks"]["workers"]["live"] >= 1
    assert worker.poll() is None
