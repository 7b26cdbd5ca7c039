"""Every server error is logged with its traceback on standard error (LOGGING in the settings):
in this process, and in the web process as production runs it (gunicorn, DEBUG off)."""

from __future__ import annotations

import io
import logging
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from django.urls import include, path

from quorum.localservices import free_port, stop_process, wait_for_http

ROOT = Path(__file__).resolve().parents[2]


def explode(request):
    raise RuntimeError("the view failed on purpose")


# This module is the URLconf of the test that marks it so: Quorum's URLs and one that fails.
urlpatterns = [path("explode/", explode), path("", include("quorum.urls"))]


@pytest.fixture
def request_log():
    """What the django.request logger's handler writes, taken from it for the test."""
    # The one the settings configure; pytest adds capturing handlers of its own beside it.
    [handler] = [
        h for h in logging.getLogger("django.request").handlers if type(h) is logging.StreamHandler
    ]
    stream = io.StringIO()
    previous = handler.setStream(stream)
    yield stream
    handler.setStream(previous)


@pytest.mark.urls(__name__)
def test_a_view_that_raises_is_logged_with_its_traceback(client, request_log, settings):
    settings.DEBUG = False
    client.raise_request_exception = False

    response = client.get("/explode/")

    assert response.status_code == 500
    log = request_log.getvalue()
    assert "ERROR django.request: Internal Server Error: /explode/" in log
    assert "Traceback (most recent call last):" in log
    assert 'in explode\n    raise RuntimeError("the view failed on purpose")' in log
    assert "RuntimeError: the view failed on purpose" in log


@pytest.mark.urls(__name__)
def test_client_errors_are_not_logged_as_errors(client, request_log):
    assert client.get("/no-such-page/").status_code == 404
    assert request_log.getvalue() == ""


def test_the_web_process_logs_a_server_errors_traceback_on_stderr(tmp_path):
    """gunicorn as the Procfile runs it, with a database it cannot open: the API's 500 is JSON,
    and the traceback is in the process's standard error."""
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "DATABASE_URL": f"sqlite:///{tmp_path}/missing/dir/quorum.sqlite3",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "QUORUM_VAR_DIR": str(tmp_path / "var"),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "1",
    }
    stderr = (tmp_path / "web.log").open("w")
    web = subprocess.Popen(
        [Path(sys.executable).parent / "gunicorn", "quorum.wsgi", "--config", "gunicorn.conf.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        start_new_session=True,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/accounts/login/", timeout=60, process=web)
        response = requests.get(
            f"http://127.0.0.1:{port}/api/v1/models",
            headers={"Authorization": "Bearer qrm_anything"},
            timeout=30,
        )
    finally:
        stop_process(web)
        stderr.close()

    assert response.status_code == 500
    assert response.json()["error"] == "server_error"
    log = (tmp_path / "web.log").read_text()
    assert "ERROR django.request: Internal Server Error: /api/v1/models" in log
    assert "Traceback (most recent call last):" in log
    assert "OperationalError: unable to open database file" in log
