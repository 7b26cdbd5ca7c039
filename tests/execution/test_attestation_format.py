"""The proof's format on its own: DSSE's encoding against the spec, signing and verifying, and every
way a proof can fail to hold (quorum_cli/attestation.py, reviews.execution.attestation.signed)."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ec import (
    ECDSA,
    SECP256R1,
    EllipticCurvePublicNumbers,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from securesystemslib.dsse import Envelope
from securesystemslib.signer import CryptoSigner

from quorum_cli import attestation as proof
from reviews.execution.attestation import signed

CONTENT = "ab" * 32  # a content digest: the subject names the model's bytes


def statement(
    model="fraud-detector",
    version=7,
    target="Production",
    run_id="r1",
    source="s",
    predicate_type=proof.PREDICATE_TYPE,
):
    return {
        "_type": proof.STATEMENT_TYPE,
        "subject": [{"name": proof.subject_name(model, version), "digest": {"sha256": CONTENT}}],
        "predicateType": predicate_type,
        "predicate": {
            "model": {"name": model, "version": version, "run_id": run_id, "source": source},
            "target": target,
            "approvers": [{"user": "alice", "group": "ml-leads", "at": None}],
            "request": {"id": 12, "kind": "promotion"},
        },
    }


def new_signer() -> CryptoSigner:
    return CryptoSigner(Ed25519PrivateKey.generate())


# -- DSSE's pre-authentication encoding, against the spec's test vector ---------------------------

# secure-systems-lab/dsse, protocol.md, "Test Vectors".
SPEC_TYPE = "http://example.com/HelloWorld"
SPEC_BODY = b"hello world"
SPEC_PAE = b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
SPEC_X = 46950820868899156662930047687818585632848591499744589407958293238635476079160
SPEC_Y = 5640078356564379163099075877009565129882514886557779369047442380624545832820
SPEC_SIG = (
    "A3JqsQGtVsJ2O2xqrI5IcnXip5GToJ3F+FnZ+O88SjtR6rDAajabZKciJTfUiHqJPcIAriEGAHTVeCUjW2JIZA=="
)


def test_pae_is_the_spec_test_vector():
    assert Envelope(SPEC_BODY, SPEC_TYPE, {}).pae() == SPEC_PAE


def test_the_spec_signature_verifies_over_the_library_pae():
    # The spec's ECDSA P-256 signature (raw r||s) over its PAE: the bytes we sign are the ones
    # every other DSSE implementation signs.
    key = EllipticCurvePublicNumbers(SPEC_X, SPEC_Y, SECP256R1()).public_key()
    raw = base64.b64decode(SPEC_SIG)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    key.verify(der, Envelope(SPEC_BODY, SPEC_TYPE, {}).pae(), ECDSA(SHA256()))


# -- sign and verify ------------------------------------------------------------------------------


def test_a_signed_statement_verifies_with_its_key_and_names_what_it_is_for():
    key = new_signer()
    value = signed(statement(), key)

    verified = proof.verify_envelope(value, [key.public_key])

    assert verified.statement == statement()
    assert verified.keyid == key.public_key.keyid
    assert verified.content_digest == CONTENT and not verified.revoked
    proof.check_names(verified, model="fraud-detector", version=7, target="Production")
    proof.check_registration(verified, run_id="r1", source="s")
    envelope = json.loads(value)
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    assert [s["keyid"] for s in envelope["signatures"]] == [key.public_key.keyid]


def test_a_key_id_is_derived_from_the_key_and_survives_pem_round_trips():
    key = new_signer()
    pem = proof.public_key_pem(key.public_key)

    (loaded,) = proof.keys_from_text(pem)

    assert loaded.keyid == key.public_key.keyid and len(loaded.keyid) == 64


def test_a_changed_payload_does_not_verify():
    key = new_signer()
    envelope = json.loads(signed(statement(version=7), key))
    forged = statement(version=8)
    envelope["payload"] = base64.b64encode(proof.canonical_json(forged)).decode()

    with pytest.raises(proof.AttestationError, match="does not verify"):
        proof.verify_envelope(json.dumps(envelope), [key.public_key])


def test_a_changed_payload_type_does_not_verify():
    key = new_signer()
    envelope = json.loads(signed(statement(), key))
    envelope["payloadType"] = "application/json"

    with pytest.raises(proof.AttestationError, match="payload type"):
        proof.verify_envelope(json.dumps(envelope), [key.public_key])


def test_a_proof_signed_by_another_key_is_refused_as_unknown():
    ours, theirs = new_signer(), new_signer()

    with pytest.raises(proof.AttestationError, match="unknown key"):
        proof.verify_envelope(signed(statement(), theirs), [ours.public_key])


def test_another_key_claiming_our_key_id_does_not_verify():
    ours, theirs = new_signer(), new_signer()
    envelope = json.loads(signed(statement(), theirs))
    envelope["signatures"][0]["keyid"] = ours.public_key.keyid

    with pytest.raises(proof.AttestationError, match="does not verify"):
        proof.verify_envelope(json.dumps(envelope), [ours.public_key])


def test_a_retired_key_still_verifies_when_it_is_given():
    retired, current = new_signer(), new_signer()

    verified = proof.verify_envelope(
        signed(statement(), retired), [current.public_key, retired.public_key]
    )

    assert verified.keyid == retired.public_key.keyid


@pytest.mark.parametrize(
    "value, why",
    [
        ("not json", "not a DSSE envelope"),
        ("[1, 2]", "not a JSON object"),
        ('{"payload": "e30=", "payloadType": "application/vnd.in-toto+json"}', "no signatures"),
        (
            '{"payload": "!!", "payloadType": "application/vnd.in-toto+json", '
            '"signatures": [{"keyid": "k", "sig": "AA=="}]}',
            "not a DSSE envelope",
        ),
    ],
)
def test_a_malformed_tag_is_refused_with_the_reason(value, why):
    with pytest.raises(proof.AttestationError, match=why):
        proof.verify_envelope(value, [new_signer().public_key])


def test_a_signed_payload_that_is_not_a_quorum_statement_is_refused():
    key = new_signer()
    other = {**statement(), "predicateType": "https://slsa.dev/provenance/v1"}

    with pytest.raises(proof.AttestationError, match="not a Quorum approval"):
        proof.verify_envelope(signed(other, key), [key.public_key])


@pytest.mark.parametrize(
    "model, version, target, why",
    [
        ("fraud-detector", 8, "Production", "for version 7, not version 8"),
        ("churn", 7, "Production", "for model 'fraud-detector', not 'churn'"),
        ("fraud-detector", 7, "Staging", "for Production, not Staging"),
    ],
)
def test_a_valid_proof_for_something_else_is_refused(model, version, target, why):
    key = new_signer()
    verified = proof.verify_envelope(signed(statement(), key), [key.public_key])

    with pytest.raises(proof.AttestationError, match=why):
        proof.check_names(verified, model=model, version=version, target=target)


def test_a_proof_for_another_run_of_the_version_is_refused():
    key = new_signer()
    verified = proof.verify_envelope(signed(statement(run_id="r1"), key), [key.public_key])

    with pytest.raises(proof.AttestationError, match="another registration"):
        proof.check_registration(verified, run_id="r2", source="s")


def test_a_proof_in_the_first_format_is_refused_with_the_command_that_signs_it_again():
    key = new_signer()
    old = signed(statement(predicate_type="urn:quorum:approval:v1"), key)

    with pytest.raises(proof.AttestationError) as refused:
        proof.verify_envelope(old, [key.public_key])

    assert str(refused.value) == (
        "the proof is in the old format (urn:quorum:approval:v1), which names the version, not "
        "its bytes: have Quorum sign it again (manage.py write_attestation 12)"
    )


def test_a_break_glass_proof_is_unratified_until_its_ratification_says_otherwise():
    key = new_signer()
    moved = statement()
    moved["predicate"]["request"]["kind"] = "break_glass"
    moved["predicate"]["break_glass"] = {"request": 12, "ratified": False, "ratification": None}
    ratified = statement()
    ratified["predicate"]["request"]["kind"] = "ratification"
    ratified["predicate"]["break_glass"] = {"request": 12, "ratified": True, "ratification": 13}

    assert proof.unratified(proof.verify_envelope(signed(moved, key), [key.public_key]))
    assert not proof.unratified(proof.verify_envelope(signed(ratified, key), [key.public_key]))
    assert not proof.unratified(proof.verify_envelope(signed(statement(), key), [key.public_key]))


# -- tags and key files ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target, tag",
    [
        ("Production", "quorum.attestation.Production"),
        ("Staging", "quorum.attestation.Staging"),
        ("@champion", "quorum.attestation.alias.champion"),
    ],
)
def test_each_target_has_a_tag_of_its_own(target, tag):
    assert proof.tag_for(target) == tag
    assert proof.target_of_tag(tag) == target


@pytest.mark.parametrize("target", ["production", "@", "@a b", "", "@champion.x"])
def test_a_target_that_is_none_is_refused(target):
    with pytest.raises(ValueError, match="is not a target"):
        proof.tag_for(target)


def test_keys_read_from_several_pem_blocks_and_from_the_published_json():
    first, second = new_signer(), new_signer()
    pems = [proof.public_key_pem(first.public_key), proof.public_key_pem(second.public_key)]
    published = json.dumps({"keys": [{"keyid": "ignored", "public_key_pem": pem} for pem in pems]})
    expected = [first.public_key.keyid, second.public_key.keyid]

    assert [k.keyid for k in proof.keys_from_text("\n".join(pems))] == expected
    # The published ids are recomputed from the keys, not trusted.
    assert [k.keyid for k in proof.keys_from_text(published)] == expected


def test_a_private_key_or_another_kind_of_key_is_refused_as_a_key_file():
    private = Ed25519PrivateKey.generate()
    private_pem = private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    with pytest.raises(proof.AttestationError, match="private key"):
        proof.keys_from_text(private_pem.decode())

    ecdsa = EllipticCurvePublicNumbers(SPEC_X, SPEC_Y, SECP256R1()).public_key()
    ecdsa_pem = ecdsa.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    with pytest.raises(proof.AttestationError, match="not an Ed25519 public key"):
        proof.keys_from_text(ecdsa_pem)
