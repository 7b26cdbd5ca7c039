"""What a version may be requested for (`reviews.decisions.promotion`): the targets, why some are
not on offer, and the preview of what a request would get."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from reviews.decisions import opening
from reviews.decisions.promotion import target_options
from reviews.models import ApprovalPolicy
from reviews.policies.loading import set_requesters
from tests.factories import make_version

pytestmark = pytest.mark.django_db


def test_every_covered_target_is_offered_in_order_with_its_policy_holder_and_gates(
    fraud, requester
):
    candidate = fraud.versions.get(version=2)

    options = target_options(version=candidate, user=requester)

    assert [option.target for option in options] == ["Staging", "Production", "@champion"]
    production = options[1]
    assert production.policy.name == "production" and production.unavailable == ""
    assert production.requirements == "1 of ml-leads and 2 of data-science"
    assert production.expires_after == "7 days"
    assert production.baseline.version == 1
    assert [(gate.metric, gate.passed) for gate in production.gates] == [
        ("accuracy", True),
        ("f1", True),
    ]
    assert not production.rejected_at_once and not production.approved_at_once


def test_a_target_is_unavailable_with_its_reason(fraud, requester, lead):
    current = fraud.versions.get(version=1)
    candidate = fraud.versions.get(version=2)
    open_request = opening.request_create(
        model="fraud", version=2, target="Staging", requester=requester
    )
    set_requesters(
        ApprovalPolicy.objects.get(name="production"), [Group.objects.get(name="ml-leads")]
    )

    reasons = {o.target: o.unavailable for o in target_options(version=candidate, user=requester)}
    held = {o.target: o.unavailable for o in target_options(version=current, user=lead)}

    assert reasons["Staging"] == f"Request #{open_request.pk} for Staging is still open."
    assert reasons["Production"].startswith("Only members of ml-leads may request Production")
    assert held["Production"] == "v1 is already at Production."


def test_a_deleted_version_is_offered_nothing_without_a_query(
    fraud, requester, django_assert_num_queries
):
    gone = make_version(fraud, 3, deleted=True, metrics={"accuracy": 0.99})
    gone.model = fraud

    with django_assert_num_queries(0):
        assert target_options(version=gone, user=requester) == []
