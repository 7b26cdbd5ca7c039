"""Proofs end when the holding ends: a version replaced by a promotion, rolled back, or undone
after an unratified break glass loses its proof for the target, by a signed revocation that
`quorum verify` reports with when and why; a version that comes back is proven again
(reviews/execution/revocation.py, through a real MLflow, the real jobs and the CLI)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from reviews.decisions import opening, voting
from reviews.emergency.break_glass import break_glass_move
from reviews.emergency.rollback import rollback_request_create
from reviews.execution import revocation
from reviews.models import (
    AuditEvent,
    ProofRevocation,
    RequestKind,
    RevocationState,
    TransitionRequest,
)
from reviews.policies.loading import policies_load
from tests.factories import approve_all
from tests.policy_files import policies_with
from tests.processes import quorum_verify as verify

pytestmark = pytest.mark.django_db


def left_at(revocation: ProofRevocation) -> str:
    return f"{revocation.left_at:%Y-%m-%d %H:%M} UTC"


def revocation_of(model: str, number: int, target: str = "Production") -> ProofRevocation:
    return ProofRevocation.objects.get(
        version__model__name=model, version__version=number, target=target
    )


@pytest.fixture
def check(mlflow_server, key_file):
    """`check(model, version)`: `quorum verify` of it for Production, as a deploy step runs it."""

    def run(model: str, number: int, *extra: str):
        return verify(model, str(number), "--target", "Production", "--key", str(key_file),
                      *extra, tracking_uri=mlflow_server.url)  # fmt: skip

    return run


def test_a_replaced_then_rolled_back_version_fails_naming_when_and_why(
    approved, promoted, requester, lead, transitions, syncs, simple_worker, check,
    django_capture_on_commit_callbacks, client,
):  # fmt: skip
    first = approved(2, "Production")
    simple_worker(transitions, syncs)
    assert check(promoted, 2).returncode == 0

    replacing = approved(3, "Production")  # archives v2
    simple_worker(transitions, syncs)

    replaced = check(promoted, 2)
    assert replaced.returncode == 1, replaced.stdout + replaced.stderr
    revoked = revocation_of(promoted, 2)
    assert revoked.state == RevocationState.WRITTEN and revoked.request_id == replacing.pk
    assert replaced.stderr.strip() == (
        f"quorum: NOT VERIFIED: {promoted} version 2 → Production: left Production at "
        f"{left_at(revoked)}: replaced by v3 in #{replacing.pk}"
    )
    # v1 was moved there in MLflow directly: it had no proof, so there was nothing to revoke.
    assert revocation_of(promoted, 1).state == RevocationState.NOTHING

    policies_load(text=policies_with(rollback=True))
    rollback = rollback_request_create(model=promoted, target="Production", requester=requester)
    assert rollback.version.version == 2
    approve_all(rollback, lead, capture=django_capture_on_commit_callbacks)
    simple_worker(transitions, syncs)

    rolled_back = check(promoted, 3)
    assert rolled_back.returncode == 1, rolled_back.stdout + rolled_back.stderr
    three = revocation_of(promoted, 3)
    assert rolled_back.stderr.strip().endswith(
        f"left Production at {left_at(three)}: rolled back to v2 in #{rollback.pk}"
    )
    # v2 came back through Quorum: its new proof is newer than its revocation, and holds.
    back = check(promoted, 2, "--json")
    assert back.returncode == 0, back.stdout + back.stderr
    assert '"kind": "rollback"' in back.stdout
    revoked_events = AuditEvent.objects.filter(action="proof.revoked").order_by("sequence")
    assert [(e.version, e.details["reason"]) for e in revoked_events] == [
        (2, f"replaced by v3 in #{replacing.pk}"),
        (3, f"rolled back to v2 in #{rollback.pk}"),
    ]

    # The version page names each proof's subject, and whether it stands or was revoked.
    client.force_login(lead)
    page = client.get(reverse("registry:version_detail", args=[promoted, 2])).content.decode()
    digest = TransitionRequest.objects.get(pk=rollback.pk).content_digest
    assert len(digest) == 64
    assert f"models:/{promoted}/2 sha256:{digest}" in page
    proofs = page[page.index('id="version-proofs"') :]
    assert proofs.index(f"#{rollback.pk}</a>") < proofs.index(f"#{first.pk}</a>")
    assert "stands: <code>quorum verify</code> accepts it" in proofs
    assert "revoked: left Production" in proofs and f"replaced by v3 in #{replacing.pk}" in proofs
    three_page = client.get(reverse("registry:version_detail", args=[promoted, 3])).content.decode()
    assert f"rolled back to v2 in #{rollback.pk}" in three_page


def test_leaving_a_stage_for_another_or_losing_an_alias_revokes_that_proof(
    approved, promoted, requester, scientist1, transitions, syncs, simple_worker, mlflow_server,
    key_file, django_capture_on_commit_callbacks,
):  # fmt: skip
    def run(number: int, target: str):
        return verify(promoted, str(number), "--target", target, "--key", str(key_file),
                      tracking_uri=mlflow_server.url)  # fmt: skip

    staging = opening.request_create(
        model=promoted, version=2, target="Staging", requester=requester
    )
    approve_all(staging, scientist1, capture=django_capture_on_commit_callbacks)
    simple_worker(transitions, syncs)
    approved(2, "@champion")
    simple_worker(transitions, syncs)
    assert run(2, "Staging").returncode == 0 and run(2, "@champion").returncode == 0

    to_production = approved(2, "Production")  # v2 leaves Staging
    simple_worker(transitions, syncs)
    champion = approved(3, "@champion")  # the alias leaves v2
    simple_worker(transitions, syncs)

    left_staging = run(2, "Staging")
    assert left_staging.returncode == 1
    assert left_staging.stderr.strip().endswith(
        f"left Staging at {left_at(revocation_of(promoted, 2, 'Staging'))}: moved to Production "
        f"in #{to_production.pk}"
    )
    lost_alias = run(2, "@champion")
    assert lost_alias.returncode == 1
    assert lost_alias.stderr.strip().endswith(f"replaced by v3 in #{champion.pk}")
    assert run(2, "Production").returncode == 0 and run(3, "@champion").returncode == 0


def test_running_a_revocation_twice_writes_it_once(
    approved, promoted, transitions, syncs, simple_worker, check
):
    approved(2, "Production")
    simple_worker(transitions, syncs)
    approved(3, "Production")
    simple_worker(transitions, syncs)
    revoked = revocation_of(promoted, 2)

    assert revocation.revoke(revoked.pk) == f"revocation #{revoked.pk}: nothing to do"
    assert AuditEvent.objects.filter(action="proof.revoked").count() == 1
    assert check(promoted, 2).returncode == 1


def test_an_unratified_break_glass_undone_revokes_its_proof(
    promoted, outsider, scientist1, transitions, syncs, simple_worker, check,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    policies_load(text=policies_with(break_glass="ratify_within: 1h, on_unratified: revert"))
    with django_capture_on_commit_callbacks(execute=True):
        move = break_glass_move(
            model=promoted, version=3, target="Production", user=outsider, reason="v1 leaks PII"
        )
    simple_worker(transitions, syncs)
    ratification = TransitionRequest.objects.get(kind=RequestKind.RATIFICATION)
    with django_capture_on_commit_callbacks(execute=True):
        voting.vote_cast(
            request_id=ratification.pk, user=scientist1, decision="reject", comment="no incident"
        )

    simple_worker(transitions, syncs)

    undo = TransitionRequest.objects.get(kind=RequestKind.ROLLBACK, undoes=move)
    result = check(promoted, 3, "--allow-unratified")
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.strip().endswith(
        f"left Production at {left_at(revocation_of(promoted, 3))}: break glass #{move.pk} was "
        f"not ratified; undone in #{undo.pk}"
    )
