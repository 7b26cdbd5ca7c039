"""The signed approval proof written by the transition job: a real `mlflow server`, a real RQ
queue worked in this process, the real database (reviews/execution/attestation.py)."""

from __future__ import annotations

import hashlib
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import call_command
from django.utils import timezone
from securesystemslib.signer import CryptoSigner

from quorum_cli import attestation as proof
from registry.models import VersionContent
from registry.sync import sync_registry
from reviews.audit import verification
from reviews.decisions import opening
from reviews.execution import attestation, proof_keys, reconciler
from reviews.links import request_url
from reviews.models import (
    Attestation,
    AuditEvent,
    Decision,
    Execution,
    TransitionRequest,
    Vote,
    VoteChoice,
)
from reviews.policies.loading import policies_load
from tests.factories import approve_all
from tests.mlflow_registry import register_in_mlflow

# `syncs`: each transition's follow-up sync waits in an emptied queue, never run here.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("syncs")]


def published(client) -> list:
    """The keys as anyone reads them: /api/v1/keys, without signing in."""
    response = client.get("/api/v1/keys")
    assert response.status_code == 200, response.content
    return proof.keys_from_text(response.content.decode())


def proof_on(mlflow_client, model: str, version: int, target: str) -> str:
    return mlflow_client.get_version(model, version).tags[proof.tag_for(target)]


def test_carrying_out_a_request_writes_a_signed_proof_of_who_approved_it(
    approved, promoted, mlflow_client, transitions, simple_worker, client
):
    request = approved(3, "Production")

    simple_worker(transitions)

    tag = proof_on(mlflow_client, promoted, 3, "Production")
    verified = proof.verify_envelope(tag, published(client))
    proof.check_names(verified, model=promoted, version=3, target="Production")
    in_mlflow = mlflow_client.get_version(promoted, 3)
    proof.check_registration(verified, run_id=in_mlflow.run_id, source=in_mlflow.source)

    request.refresh_from_db()
    predicate = verified.predicate
    assert predicate["model"] == {
        "name": promoted,
        "version": 3,
        "run_id": in_mlflow.run_id,
        "source": in_mlflow.source,
    }
    assert [(a["user"], a["group"]) for a in predicate["approvers"]] == [
        ("lead", "ml-leads"),
        ("scientist1", "data-science"),
        ("scientist2", "data-science"),
    ]
    assert predicate["policy"] == {
        "name": "production",
        "sha256": attestation.policy_digest(request.policy_snapshot),
    }
    assert predicate["gates"] == request.gate_results and len(predicate["gates"]) == 2
    # The subject is the bytes: the version's content digest, as Quorum read it.
    content = VersionContent.objects.get(version=request.version)
    assert verified.statement["predicateType"] == "urn:quorum:approval:v2"
    assert verified.statement["subject"] == [
        {"name": f"models:/{promoted}/3", "digest": {"sha256": content.digest}}
    ]
    assert [f["path"] for f in predicate["content"]["files"]] == ["MLmodel", "weights/model.txt"]
    assert predicate["request"]["kind"] == "promotion" and "break_glass" not in predicate
    assert predicate["decision"]["decided_at"] == request.decided_at.isoformat()
    assert predicate["decision"]["decided_by"] == "scientist2"
    assert predicate["executed_at"] == request.executed_at.isoformat()
    assert predicate["request"]["url"] == request_url(request.pk)
    assert predicate["request"]["requester"] == "requester"

    assert request.execution == Execution.DONE
    assert request.attestation == Attestation.WRITTEN and request.attested_at is not None
    assert request.attestation_key_id == verified.keyid == proof_keys.signer().public_key.keyid
    written = AuditEvent.objects.get(action="attestation.written", request=request)
    assert written.details["tag"] == "quorum.attestation.Production"
    assert written.details["bytes"] == len(tag.encode()) < proof.MAX_TAG_BYTES
    assert verification.verify().ok


def test_a_version_approved_for_staging_then_an_alias_keeps_both_proofs(
    approved,
    promoted,
    mlflow_client,
    requester,
    scientist1,
    transitions,
    simple_worker,
    django_capture_on_commit_callbacks,
    client,
):
    staging = opening.request_create(
        model=promoted, version=2, target="Staging", requester=requester
    )
    approve_all(staging, scientist1, capture=django_capture_on_commit_callbacks)
    simple_worker(transitions)
    approved(2, "@champion")  # an alias: v2 stays in Staging, and keeps that proof
    simple_worker(transitions)
    approved(3, "Production")
    simple_worker(transitions)

    keys = published(client)
    tags = mlflow_client.get_version(promoted, 2).tags
    for target in ("Staging", "@champion"):
        verified = proof.verify_envelope(tags[proof.tag_for(target)], keys)
        proof.check_names(verified, model=promoted, version=2, target=target)
    staging_proof = proof.verify_envelope(tags["quorum.attestation.Staging"], keys)
    assert staging_proof.predicate["approvers"][0]["user"] == "scientist1"
    with pytest.raises(proof.AttestationError, match="for Staging, not Production"):
        proof.check_names(staging_proof, model=promoted, version=2, target="Production")

    assert "quorum.attestation.alias.champion" in tags
    production_tag = proof_on(mlflow_client, promoted, 3, "Production")
    proof.check_names(
        proof.verify_envelope(production_tag, keys), model=promoted, version=3, target="Production"
    )


def test_a_proof_that_cannot_be_written_is_recorded_retried_and_written_later(
    approved, promoted, mlflow_client, transitions, simple_worker, settings, tmp_path, client
):
    working_key = settings.QUORUM_SIGNING_KEY
    settings.QUORUM_SIGNING_KEY = str(tmp_path / "not-there.pem")
    request = approved(3, "Production")

    simple_worker(transitions)  # the transition, then the proof's job and its retries

    # The version moved and the request is done; only the proof is missing, and says why.
    assert mlflow_client.get_version(promoted, 3).stage == "Production"
    assert "quorum.attestation.Production" not in mlflow_client.get_version(promoted, 3).tags
    request.refresh_from_db()
    assert (request.decision, request.execution) == (Decision.APPROVED, Execution.DONE)
    assert request.attestation == Attestation.FAILED
    assert request.attestation_attempts == 4  # in the transition job, then 1 + 2 retries
    assert "not-there.pem, which cannot be read" in request.attestation_error
    actions = list(
        AuditEvent.objects.filter(request=request, action__startswith="attestation.")
        .order_by("sequence")
        .values_list("action", flat=True)
    )
    assert actions == ["attestation.attempt_failed"] * 3 + ["attestation.failed"]
    assert AuditEvent.objects.filter(request=request, action="transition.done").count() == 1
    client.force_login(request.requester)
    page = client.get(f"/reviews/{request.pk}/").content.decode()
    assert "not written: QUORUM_SIGNING_KEY names the file" in page
    assert f"manage.py write_attestation {request.pk}" in page

    settings.QUORUM_SIGNING_KEY = working_key
    call_command("write_attestation", str(request.pk))

    request.refresh_from_db()
    assert request.attestation == Attestation.WRITTEN and request.attestation_error == ""
    page = client.get(f"/reviews/{request.pk}/").content.decode()
    assert "quorum.attestation.Production</code>):" in page
    assert f'signed by key <code title="{request.attestation_key_id}">' in page
    proof.verify_envelope(proof_on(mlflow_client, promoted, 3, "Production"), published(client))


def test_the_reconciler_queues_a_pending_proof_whose_job_was_lost(
    approved, promoted, mlflow_client, transitions, simple_worker, settings, tmp_path
):
    working_key = settings.QUORUM_SIGNING_KEY
    settings.QUORUM_SIGNING_KEY = str(tmp_path / "not-there.pem")
    request = approved(2, "Production")
    simple_worker(transitions, max_jobs=1)  # the transition alone; its proof's job is queued
    transitions.empty()  # ...and lost (Redis flushed, say)
    request.refresh_from_db()
    assert request.attestation == Attestation.PENDING
    settings.QUORUM_SIGNING_KEY = working_key
    reconciler.reconcile()  # too soon: the transition job may still be writing it
    assert transitions.count == 0

    TransitionRequest.objects.filter(pk=request.pk).update(
        executed_at=timezone.now() - attestation.PENDING_GRACE
    )
    reconciler.reconcile()
    simple_worker(transitions)

    request.refresh_from_db()
    assert request.attestation == Attestation.WRITTEN
    assert "quorum.attestation.Production" in mlflow_client.get_version(promoted, 2).tags


def test_write_attestation_refuses_a_request_that_was_not_carried_out(approved):
    request = approved(2, "Production")  # queued, never run

    with pytest.raises(Exception, match="was not carried out"):
        call_command("write_attestation", str(request.pk))
    with pytest.raises(Exception, match="there is no request #999999"):
        call_command("write_attestation", "999999")


# -- a large approver list ------------------------------------------------------------------------


def panel_request(mlflow_client, unique_name, django_user_model, people: int) -> TransitionRequest:
    """An executed request of `unique_name` v1 approved by `people` members of one group, each
    with a long name: the votes are written directly, as the request page would show them."""
    names = [f"reviewer-{i:04d}-with-a-rather-long-username-for-the-tag" for i in range(people)]
    django_user_model.objects.bulk_create(django_user_model(username=name) for name in names)
    policies_load(
        text=json.dumps(
            {
                "groups": {"panel": names},
                "policies": [
                    {
                        "name": "panel-review",
                        "models": [unique_name],
                        "targets": ["Production"],
                        "require": [{"group": "panel", "approvals": people}],
                    }
                ],
            }
        )
    )
    register_in_mlflow(mlflow_client, unique_name, versions=1)
    sync_registry(model=unique_name, client=mlflow_client)
    requester = django_user_model.objects.create_user("panel-requester")
    request = opening.request_create(
        model=unique_name, version=1, target="Production", requester=requester
    )
    users = {u.username: u for u in django_user_model.objects.filter(username__in=names)}
    Vote.objects.bulk_create(
        Vote(request=request, user=users[name], decision=VoteChoice.APPROVE, groups=["panel"])
        for name in names
    )
    now = timezone.now()
    TransitionRequest.objects.filter(pk=request.pk).update(
        decision=Decision.APPROVED,
        decided_at=now,
        decision_reason="Quorum reached by " + ", ".join(names),
        execution=Execution.DONE,
        executed_at=now,
    )
    return request


@pytest.mark.parametrize("people, listed", [(40, True), (400, False)])
def test_a_large_approver_list_keeps_the_proof_well_under_mlflows_tag_limit(
    people, listed, mlflow_client, unique_name, django_user_model, client
):
    request = panel_request(mlflow_client, unique_name, django_user_model, people)

    attestation.write(request.pk)

    tag = proof_on(mlflow_client, unique_name, 1, "Production")
    assert len(tag.encode()) <= proof.MAX_TAG_BYTES
    verified = proof.verify_envelope(tag, published(client))
    proof.check_names(verified, model=unique_name, version=1, target="Production")
    predicate = verified.predicate
    if listed:
        assert len(predicate["approvers"]) == people
        assert "approvers_omitted" not in predicate
    else:
        # Named in full the proof would not fit: the count and a digest of the list, which
        # Quorum's record reproduces.
        full = attestation.statement_of(request)["predicate"]["approvers"]
        assert len(full) == people and predicate["approvers"] == []
        assert predicate["approvers_omitted"]["count"] == people
        assert predicate["approvers_omitted"]["sha256"] == (
            hashlib.sha256(proof.canonical_json(full)).hexdigest()
        )
        assert predicate["decision"]["reason"].endswith("…")


# -- the published keys ---------------------------------------------------------------------------


def test_the_keys_are_public_json_with_the_current_key_first_and_retired_ones_after(
    client, settings
):
    retired = CryptoSigner(Ed25519PrivateKey.generate()).public_key
    settings.QUORUM_PREVIOUS_PUBLIC_KEYS = proof.public_key_pem(retired)

    response = client.get("/api/v1/keys")

    assert response.status_code == 200
    body = response.json()
    assert [(k["keyid"], k["status"]) for k in body["keys"]] == [
        (proof_keys.signer().public_key.keyid, "current"),
        (retired.keyid, "previous"),
    ]
    assert body["payload_type"] == "application/vnd.in-toto+json"
    assert body["tag_prefix"] == "quorum.attestation."
    schema = client.get("/api/v1/openapi.json").json()
    assert "/api/v1/keys" in schema["paths"]
    assert not schema["paths"]["/api/v1/keys"]["get"].get("security")


@pytest.mark.parametrize(
    "key, problem",
    [
        ("/nowhere/key.pem", "cannot be read"),
        ("-----BEGIN PRIVATE KEY-----\\nbm90IGEga2V5\\n-----END PRIVATE KEY-----", "not an"),
    ],
)
def test_an_unusable_signing_key_is_a_clear_error(client, settings, key, problem):
    settings.QUORUM_SIGNING_KEY = key

    response = client.get("/api/v1/keys")

    assert response.status_code == 503
    assert response.json()["error"] == "signing_key_unusable"
    assert problem in response.json()["detail"]


def test_a_signing_key_of_another_kind_is_refused_with_how_to_make_one(settings, tmp_path):
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    path = tmp_path / "ecdsa.pem"
    path.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
        )
    )
    settings.QUORUM_SIGNING_KEY = str(path)

    with pytest.raises(proof_keys.SigningKeyError, match="Ed25519: openssl genpkey"):
        proof_keys.signer()


def test_without_a_configured_key_one_is_generated_once_and_kept(settings, tmp_path):
    settings.QUORUM_SIGNING_KEY = ""
    settings.QUORUM_SIGNING_KEY_FILE = tmp_path / "var" / "signing-key.pem"

    first = proof_keys.signer().public_key.keyid
    second = proof_keys.signer().public_key.keyid

    assert first == second
    assert settings.QUORUM_SIGNING_KEY_FILE.read_text().startswith("-----BEGIN PRIVATE KEY")


def test_the_admin_shows_the_signing_keys_and_each_requests_proof(admin_client, settings):
    response = admin_client.get("/admin/reviews/transitionrequest/")

    assert response.status_code == 200
    page = response.content.decode()
    assert proof_keys.signer().public_key.keyid in page
    assert "current: signs new proofs" in page
    assert "/api/v1/keys" in page
