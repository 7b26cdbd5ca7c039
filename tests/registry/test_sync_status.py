"""The sync's status line on the models page, and the sync history staff read in the admin."""

from __future__ import annotations

import html
import re

import pytest
from django.urls import reverse

from quorum.localservices import free_port
from registry.mlflow_client import RegistryClient
from registry.models import SyncRun
from registry.sync import SyncError, sync_registry
from registry.sync_status import sync_status
from tests.factories import make_user
from tests.mlflow_registry import register_unmirrorable

pytestmark = pytest.mark.django_db


@pytest.fixture
def down(monkeypatch) -> RegistryClient:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    return RegistryClient(f"http://127.0.0.1:{free_port()}")


def status_line(client) -> str:
    page = client.get("/").content.decode()
    found = re.search(r'<p class="sync-status[^"]*" id="sync-status">(.*?)</p>', page, re.S)
    assert found, "the models page has no sync status"
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", found.group(1)))).strip()


def test_before_any_sync_the_page_says_so(client):
    client.force_login(make_user())

    assert status_line(client) == "Quorum has not synced with MLflow yet."


def test_the_page_shows_when_the_mirror_last_synced(client, mlflow_client):
    sync_registry(client=mlflow_client)
    client.force_login(make_user())

    assert status_line(client) == "Synced with MLflow now."
    assert "Sync history" not in status_line(client)  # for staff only


def test_a_failed_sync_is_shown_with_its_error_and_the_last_success(client, mlflow_client, down):
    sync_registry(client=mlflow_client)
    with pytest.raises(SyncError):
        sync_registry(client=down)
    client.force_login(make_user())

    line = status_line(client)

    assert line.startswith("Synced with MLflow now. The latest sync failed now: MLflow error")
    assert down.tracking_uri in line
    page = client.get("/").content.decode()
    assert 'class="sync-status small is-failing"' in page


def test_a_sync_that_never_succeeded_says_so(client, down):
    with pytest.raises(SyncError):
        sync_registry(client=down)
    client.force_login(make_user())

    assert status_line(client).startswith("No sync with MLflow has succeeded yet. The latest")


def test_staff_see_what_could_not_be_mirrored_and_why(admin_client, mlflow_client, unique_name):
    register_unmirrorable(mlflow_client, unique_name)
    result = sync_registry(full=True, client=mlflow_client)
    run = SyncRun.objects.get()

    line = status_line(admin_client)

    count = len(result.skipped)
    assert f"{count} models or versions could not be mirrored: see why." in line
    assert "Sync history" in line
    page = admin_client.get(reverse("admin:registry_syncrun_change", args=[run.pk]))
    assert page.status_code == 200
    text = html.unescape(page.content.decode())
    assert f"{unique_name} v4</strong>: its tags field holds a NUL character" in text
    listing = admin_client.get(reverse("admin:registry_syncrun_changelist"))
    assert listing.status_code == 200 and "succeeded" in listing.content.decode()


def test_the_sync_history_cannot_be_edited_from_the_admin(admin_client, mlflow_client):
    sync_registry(client=mlflow_client)
    run = SyncRun.objects.get()

    assert admin_client.get(reverse("admin:registry_syncrun_add")).status_code == 403
    assert (
        admin_client.post(reverse("admin:registry_syncrun_delete", args=[run.pk])).status_code
        == 403
    )
    assert SyncRun.objects.filter(pk=run.pk).exists()


def test_the_status_is_read_in_one_query(mlflow_client, down, django_assert_num_queries):
    sync_registry(client=mlflow_client)
    with pytest.raises(SyncError):
        sync_registry(client=down)

    with django_assert_num_queries(1):
        status = sync_status()

    assert status.failing and status.last_success_at is not None and status.last_success is None
