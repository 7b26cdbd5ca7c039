"""The worker moves only what was approved, against a real `mlflow server`: right before the move
it reads the version's files afresh and refuses on a difference, or when they cannot be read."""

from __future__ import annotations

import pytest
import requests

from registry.models import VersionContent
from reviews.models import AuditEvent, Execution, Notification, NotificationKind
from tests.factories import transition_actions
from tests.mlflow_registry import artifact_url

pytestmark = pytest.mark.django_db


def with_mail(cast) -> None:
    for user in (cast["requester"], cast["admin"]):
        user.email = f"{user.username}@example.com"
        user.save(update_fields=["email"])


def test_the_approved_bytes_move(approved, promoted, mlflow_client, transitions, run_transition):
    request = approved(2, "Production")
    assert request.content_digest

    run_transition(request)

    request.refresh_from_db()
    assert request.execution == Execution.DONE, request.execution_error
    assert mlflow_client.get_version(promoted, 2).stage == "Production"


def test_a_file_rewritten_after_quorum_is_refused_failed_audited_and_mailed(
    approved, promoted, mlflow_client, transitions, run_transition, cast
):
    with_mail(cast)
    request = approved(2, "Production")
    stored = VersionContent.objects.get(pk=request.version.content.pk)
    old = {f["path"]: f["sha256"] for f in stored.files}["weights/model.txt"]
    response = requests.put(
        artifact_url(mlflow_client, stored.location, "weights/model.txt"), data=b"other", timeout=10
    )
    assert response.status_code == 200

    run_transition(request)

    request.refresh_from_db()
    assert request.execution == Execution.FAILED
    assert request.execution_error.startswith(
        f"Nothing was moved: the files of {promoted} version 2 are not the approved ones. "
        f"weights/model.txt changed after approval: sha256 {old[:12]}… → sha256 "
    ), request.execution_error
    # Nothing moved in MLflow: v1 still holds Production.
    assert mlflow_client.get_version(promoted, 2).stage == "None"
    assert mlflow_client.get_version(promoted, 1).stage == "Production"
    assert transition_actions(request) == ["transition.started", "transition.failed"]
    failed = AuditEvent.objects.get(request=request, action="transition.failed")
    assert failed.details["error"] == request.execution_error
    mail = Notification.objects.filter(event=failed, kind=NotificationKind.FAILED)
    assert set(mail.values_list("recipient__username", flat=True)) == {"requester", "admin"}
    assert all(v.stale for v in request.votes.all())
    assert request.votes.first().stale_reason == request.execution_error


def test_files_that_cannot_be_read_at_the_move_are_refused(
    approved, promoted, mlflow_client, transitions, run_transition
):
    request = approved(2, "Production")
    stored = VersionContent.objects.get(pk=request.version.content.pk)
    for entry in stored.files:  # the model's files gone from the artifact store
        url = artifact_url(mlflow_client, stored.location, entry["path"])
        assert requests.delete(url, timeout=10).status_code == 200

    run_transition(request)

    request.refresh_from_db()
    assert request.execution == Execution.FAILED
    assert request.execution_error.startswith(
        f"Nothing was moved: the content digest of {promoted} version 2 cannot be computed now"
    ), request.execution_error
    assert mlflow_client.get_version(promoted, 2).stage == "None"
