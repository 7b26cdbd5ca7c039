"""Which policy decides a model and target (reviews/policies/matching.py): the most specific one;
policies that tie are refused when loaded and, if made some other way, when matched."""

from __future__ import annotations

import pytest

from registry.models import RegisteredModel
from reviews.errors import AmbiguousPolicy, NoPolicy
from reviews.models import ApprovalPolicy
from reviews.policies.loading import policies_load
from reviews.policies.matching import policy_for
from tests.policy_files import POLICY_FILE_EXAMPLE as EXAMPLE
from tests.policy_files import policy_problems as problems_of

pytestmark = pytest.mark.django_db


def test_a_policy_equally_specific_as_another_for_a_target_is_a_load_error(people):
    text = EXAMPLE + (
        "  - name: staging-too\n"
        "    models: ['*']\n"
        "    targets: [Staging]\n"
        "    require: [{group: data-science, approvals: 1}]\n"
    )

    found = problems_of(text)

    assert found == [
        "policies[2]: as specific as policies[1] ('staging') for models * and target Staging"
    ]


def test_globs_that_tie_on_a_known_model_are_ambiguous(people):
    RegisteredModel.objects.create(name="fraud-v2")
    text = EXAMPLE + (
        "  - name: fraud-a\n"
        "    models: ['fraud-*']\n"
        "    targets: [Staging]\n"
        "    require: [{group: data-science, approvals: 1}]\n"
        "  - name: fraud-b\n"
        "    models: ['fraud-?2']\n"
        "    targets: [Staging]\n"
        "    require: [{group: data-science, approvals: 1}]\n"
    )

    found = problems_of(text)

    assert len(found) == 1 and "'fraud-v2'" in found[0] and found[0].startswith("policies[3]")


def test_most_specific_policy_wins(people):
    policies_load(
        text=EXAMPLE
        + (
            "  - name: fraud\n"
            "    models: ['fraud-*']\n"
            "    targets: [Production]\n"
            "    require: [{group: ml-leads, approvals: 1}]\n"
            "  - name: fraud-detector\n"
            "    models: [fraud-detector]\n"
            "    targets: [Production]\n"
            "    require: [{group: ml-leads, approvals: 1}]\n"
        )
    )

    assert policy_for("churn", "Production").name == "production"
    assert policy_for("fraud-scorer", "Production").name == "fraud"
    assert policy_for("fraud-detector", "Production").name == "fraud-detector"
    assert policy_for("fraud-detector", "@champion").name == "production"
    assert policy_for("fraud-detector", "Staging").name == "staging"


def test_target_no_policy_covers_cannot_be_requested(people):
    policies_load(text=EXAMPLE)

    with pytest.raises(NoPolicy, match="No approval policy covers churn → Archived"):
        policy_for("churn", "Archived")


def test_tie_created_after_load_is_refused_at_match_time(people):
    policies_load(text=EXAMPLE)
    ApprovalPolicy.objects.create(name="other", model_patterns=["*"], targets=["Staging"])

    with pytest.raises(AmbiguousPolicy, match="equally specific"):
        policy_for("churn", "Staging")
