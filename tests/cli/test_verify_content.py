"""`quorum verify` checks the bytes, not the name: the signed proof's subject is the content
digest, and the CLI recomputes it from MLflow's artifact store (over its REST API) or from the
local copy a deploy step is about to serve (`--path`), naming the files that differ; a proof in
the first format is refused; a break-glass move verifies only once ratified, or with
`--allow-unratified` (quorum_cli/verify.py, content_check.py, mlflow_rest.py)."""

from __future__ import annotations

import json

import pytest
import requests

from quorum_cli import attestation as proof
from registry.models import VersionContent
from registry.sync import sync_registry
from reviews.emergency.break_glass import break_glass_move
from reviews.execution import attestation, proof_keys
from reviews.models import RequestKind, TransitionRequest
from reviews.policies.loading import policies_load
from tests.factories import approve_all
from tests.mlflow_registry import artifact_url, download
from tests.policy_files import policies_with
from tests.processes import quorum_verify as verify

pytestmark = pytest.mark.django_db


def content_of(model: str, number: int) -> VersionContent:
    return VersionContent.objects.get(version__model__name=model, version__version=number)


def test_the_approved_bytes_verify_from_mlflow_and_from_a_downloaded_copy(
    executed, mlflow_server, mlflow_client, key_file, tmp_path
):
    files = content_of(executed, 3)
    copy = download(mlflow_client, files.location, tmp_path / "copy")

    from_mlflow = verify(executed, "3", "--target", "Production", "--key", str(key_file), "--json",
                         tracking_uri=mlflow_server.url)  # fmt: skip
    from_copy = verify(executed, "3", "--target", "Production", "--key", str(key_file),
                       "--path", str(copy), tracking_uri=mlflow_server.url)  # fmt: skip

    assert from_mlflow.returncode == 0, from_mlflow.stdout + from_mlflow.stderr
    outcome = json.loads(from_mlflow.stdout)
    assert outcome["content"] == {
        "expected_sha256": files.digest,
        "actual_sha256": files.digest,
        "checked": "mlflow",
        "where": files.location,
        "matches": True,
        "differences": [],
    }
    assert f"content sha256 {files.digest[:12]}…" in from_mlflow.stderr
    assert from_copy.returncode == 0, from_copy.stdout + from_copy.stderr
    assert from_copy.stdout.startswith(f"verified: {executed} version 3 was approved")


def test_a_model_file_swapped_in_the_artifact_store_fails_and_is_named(
    executed, mlflow_server, mlflow_client, key_file
):
    files = content_of(executed, 3)
    # Straight to the artifact store, as anyone with the server's address could: no registry
    # endpoint is called, the version's tags, source and run stay as they were.
    swapped = requests.put(
        artifact_url(mlflow_client, files.location, "weights/model.txt"),
        data=b"someone else's weights\n",
        timeout=10,
    )
    assert swapped.status_code == 200

    result = verify(executed, "3", "--target", "Production", "--key", str(key_file), "--json",
                    tracking_uri=mlflow_server.url)  # fmt: skip

    assert result.returncode == 1, result.stdout + result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(
        f"quorum: NOT VERIFIED: {executed} version 3 → Production: MLflow's copy "
        f"({files.location}) is not the approved content: its digest is "
    )
    assert "(weights/model.txt: changed (sha256 " in line
    outcome = json.loads(result.stdout)
    assert outcome["verified"] is False and outcome["content"]["matches"] is False
    (difference,) = outcome["content"]["differences"]
    assert (difference["path"], difference["kind"]) == ("weights/model.txt", "changed")
    assert difference["expected"]["sha256"] != difference["actual"]["sha256"]
    assert difference["actual"]["size"] == len(b"someone else's weights\n")


def test_a_local_copy_with_a_file_changed_added_or_removed_fails_naming_each(
    executed, mlflow_server, mlflow_client, key_file, tmp_path
):
    copy = download(mlflow_client, content_of(executed, 3).location, tmp_path / "copy")
    (copy / "weights" / "model.txt").write_text("tampered on the deploy host\n")
    (copy / "extra.py").write_text("import os\n")
    (copy / "MLmodel").unlink()

    result = verify(executed, "3", "--target", "Production", "--key", str(key_file),
                    "--path", str(copy), "--json", tracking_uri=mlflow_server.url)  # fmt: skip

    assert result.returncode == 1, result.stdout + result.stderr
    assert f"the local copy ({copy}) is not the approved content" in result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["content"]["checked"] == "path"
    assert [(d["path"], d["kind"]) for d in outcome["content"]["differences"]] == [
        ("MLmodel", "removed"),
        ("extra.py", "added"),
        ("weights/model.txt", "changed"),
    ]
    # MLflow's own copy is untouched: without --path the same version verifies.
    assert verify(executed, "3", "--target", "Production", "--key", str(key_file),
                  tracking_uri=mlflow_server.url).returncode == 0  # fmt: skip


def test_a_proof_in_the_first_format_is_refused_and_says_to_sign_it_again(
    executed, mlflow_server, mlflow_client, key_file
):
    request = TransitionRequest.objects.get()
    statement = attestation.statement_of(request)
    statement["predicateType"] = "urn:quorum:approval:v1"
    old = attestation.signed(statement, proof_keys.signer())
    mlflow_client.set_version_tag(executed, 3, proof.tag_for("Production"), old)

    result = verify(executed, "3", "--target", "Production", "--key", str(key_file),
                    tracking_uri=mlflow_server.url)  # fmt: skip

    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.strip() == (
        f"quorum: NOT VERIFIED: {executed} version 3 → Production: the proof is in the old "
        "format (urn:quorum:approval:v1), which names the version, not its bytes: have Quorum "
        f"sign it again (manage.py write_attestation {request.pk})"
    )


def test_a_version_whose_files_cannot_be_read_gets_no_proof(
    promoted, outsider, mlflow_client, transitions, syncs, simple_worker,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    # Nothing unread is approved by a quorum: only break glass moves such a version.
    policies_load(text=policies_with(break_glass="ratify_within: 1h, on_unratified: alert"))
    # A fourth version, registered from a run that logged no model files.
    run_id = mlflow_client.log_run(
        mlflow_client.experiment_id("sync-tests"),
        run_name="empty",
        params={},
        metrics={"accuracy": 0.95, "f1": 0.9},
    )
    number = mlflow_client.create_version(promoted, source=f"runs:/{run_id}/model", run_id=run_id)
    sync_registry(model=promoted, client=mlflow_client)
    with django_capture_on_commit_callbacks(execute=True):
        request = break_glass_move(
            model=promoted, version=number, target="Production", user=outsider, reason="outage"
        )

    simple_worker(transitions, syncs)

    request.refresh_from_db()
    assert request.execution == "done"  # the version moved: only its proof is refused
    assert request.attestation == "failed" and proof.tag_for("Production") not in (
        mlflow_client.get_version(promoted, number).tags
    )
    assert "has no known content (MLflow lists no files at" in request.attestation_error
    assert "a proof names the model's bytes" in request.attestation_error


# -- break glass --------------------------------------------------------------------------------


@pytest.fixture
def broken_glass(
    promoted, outsider, transitions, syncs, simple_worker, django_capture_on_commit_callbacks
):
    """Version 3 moved to Production by `outsider` breaking glass, not ratified yet."""
    policies_load(text=policies_with(break_glass="ratify_within: 1h, on_unratified: alert"))
    with django_capture_on_commit_callbacks(execute=True):
        break_glass_move(
            model=promoted, version=3, target="Production", user=outsider, reason="v1 leaks PII"
        )
    simple_worker(transitions, syncs)
    return promoted


def test_an_unratified_break_glass_move_fails_unless_allowed_and_passes_once_ratified(
    broken_glass, mlflow_server, key_file, lead, scientist1, scientist2, transitions, syncs,
    simple_worker, django_capture_on_commit_callbacks,
):  # fmt: skip
    def run(*extra: str):
        return verify(broken_glass, "3", "--target", "Production", "--key", str(key_file),
                      *extra, tracking_uri=mlflow_server.url)  # fmt: skip

    refused = run()
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "moved by break glass and not ratified by the quorum (yet)" in refused.stderr
    assert "--allow-unratified" in refused.stderr
    allowed = run("--allow-unratified")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "(break glass, NOT ratified yet)" in allowed.stdout

    ratification = TransitionRequest.objects.get(kind=RequestKind.RATIFICATION)
    approve_all(
        ratification, lead, scientist1, scientist2, capture=django_capture_on_commit_callbacks
    )
    simple_worker(transitions, syncs)

    ratified = run("--json")
    assert ratified.returncode == 0, ratified.stdout + ratified.stderr
    predicate = json.loads(ratified.stdout)["statement"]["predicate"]
    assert predicate["request"] == {**predicate["request"], "kind": "ratification"}
    assert predicate["break_glass"] == {
        "request": ratification.ratifies_id,
        "ratified": True,
        "ratification": ratification.pk,
    }
    assert [a["user"] for a in predicate["approvers"]] == ["lead", "scientist1", "scientist2"]
