"""The version page's queries: its promotion card and policy panel read the policies once, and a
version holding both a stage and an alias is read once for both targets."""

from __future__ import annotations

import pytest

from registry.models import Stage
from tests.factories import make_model, make_version
from tests.pages import login, text_of

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_mlflow")]

# Session and user (2); the version with its model, the version list, metric histories and the
# baseline's evidence (4); the awaiting count (2); the out-of-band banner (1); the promotion
# card: policies with their requirements, requesters and gates (4), the version's own and
# related requests with its signed proofs (1), one holder for Staging and one for Production
# and @champion alike (2); the proofs' revocations (1). The policy panel reads no query of its
# own.
VERSION_QUERIES = 17


def test_version_page_reads_policies_and_a_shared_holder_once(
    client, policies, scientist1, django_assert_max_num_queries
):
    model = make_model("alpha")
    make_version(
        model,
        1,
        stage=Stage.PRODUCTION,
        aliases=["champion"],
        metrics={"accuracy": 0.85, "f1": 0.80},
    )
    make_version(model, 2, stage=Stage.STAGING, metrics={"accuracy": 0.86, "f1": 0.81})
    make_version(model, 3, metrics={"accuracy": 0.90, "f1": 0.84})
    login(client, scientist1)

    with django_assert_max_num_queries(VERSION_QUERIES):
        page = text_of(client.get("/models/alpha/versions/3/"))

    card = page[page.index("Request promotion") :]
    for target in ("Production", "@champion", "Staging"):
        assert target in card


def test_version_page_shows_its_requests_and_proofs_within_the_budget(
    client, policies, requester, scientist1, scientist2, django_assert_max_num_queries
):
    from django.utils import timezone

    from reviews.decisions import voting
    from reviews.models import Decision, Execution, TransitionRequest
    from tests.factories import make_request

    model = make_model("alpha")
    metrics = {"accuracy": 0.9, "f1": 0.84}
    make_version(model, 1, stage=Stage.PRODUCTION, aliases=["champion"], metrics=metrics)
    make_version(model, 2, metrics=metrics)
    make_version(model, 3, metrics=metrics)
    # Carried out and signed (as the worker would leave it), then the mirror not synced yet.
    proved = make_request("alpha", 3, "Staging", requester=requester)
    TransitionRequest.objects.filter(pk=proved.pk).update(
        decision=Decision.APPROVED,
        execution=Execution.DONE,
        attested_at=timezone.now(),
        attestation_key_id="key-1",
        content_digest="ab" * 32,
    )
    rejected = make_request("alpha", 3, "@champion", requester=requester)
    voting.vote_cast(
        request_id=rejected.pk, user=scientist2, decision="reject", comment="Recall dropped."
    )
    mine = make_request("alpha", 3, "Production", requester=requester)
    other = make_request("alpha", 2, "@champion", requester=requester)
    login(client, scientist1)

    with django_assert_max_num_queries(VERSION_QUERIES):
        page = text_of(client.get("/models/alpha/versions/3/"))

    assert f"request #{mine.pk} → Production is open" in page
    assert f"Previously rejected in #{rejected.pk} by scientist2: 'Recall dropped.'" in page
    assert f"Also open for @champion: #{other.pk} (v2)" in page
    proofs = page[page.index("Signed approval proofs") :]
    assert f"Staging — #{proved.pk}" in proofs
    assert f"#{mine.pk}" not in proofs
