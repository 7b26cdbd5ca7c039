"""The version page's queries: its promotion card and policy panel read the policies once, and a
version holding both a stage and an alias is read once for both targets."""

from __future__ import annotations

import pytest

from registry.models import Stage
from tests.factories import make_model, make_version
from tests.pages import login, text_of

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_mlflow")]

# Session and user (2); the model, the version, the version list, metric histories and the
# baseline's evidence (5); the awaiting count (2); the out-of-band banner (1); the promotion
# card: policies with their requirements, requesters and gates (4), open and related requests
# (2), one holder for Staging and one for Production and @champion alike (2); the signed
# proofs and their revocations (2). The policy panel reads no query of its own.
VERSION_QUERIES = 20


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
