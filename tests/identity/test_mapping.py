"""How provider groups map to Quorum groups and the staff flag (identity/mapping.py)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from identity import mapping


@pytest.fixture
def rules(settings):
    settings.OIDC_ISSUER = "https://idp.example.com"
    settings.QUORUM_OIDC_GROUP_MAP = (
        "Quorum ML Leads=ml-leads, ds-*=data-science, re:team-(risk|fraud)=risk-reviewers"
    )
    settings.QUORUM_OIDC_STAFF_GROUPS = "quorum-admins, ops-*"


def test_exact_names_globs_and_regexes_map_to_quorum_groups(rules):
    assert mapping.quorum_groups_for(["Quorum ML Leads", "ds-vision", "team-fraud"]) == {
        "ml-leads",
        "data-science",
        "risk-reviewers",
    }
    # Whole-name matches only, case included.
    assert mapping.quorum_groups_for(["quorum ml leads", "xds-a", "team-fraudsters"]) == set()


def test_the_mapped_groups_are_the_managed_ones_only_with_a_provider(rules, settings):
    assert mapping.managed_group_names() == {"ml-leads", "data-science", "risk-reviewers"}
    settings.OIDC_ISSUER = ""
    assert mapping.managed_group_names() == set()


def test_staff_comes_from_the_staff_groups_or_is_left_alone(rules, settings):
    assert mapping.staff_for(["ops-eu"]) is True
    assert mapping.staff_for(["ds-vision"]) is False
    settings.QUORUM_OIDC_STAFF_GROUPS = ""
    assert mapping.staff_for(["ops-eu"]) is None


@pytest.mark.parametrize("text", ["no-equals-sign", "=ml-leads", "ds-*=", "re:([=x"])
def test_a_malformed_map_is_a_configuration_error_naming_the_entry(text):
    with pytest.raises(ImproperlyConfigured, match="QUORUM_OIDC_GROUP_MAP"):
        mapping.parse_rules(text)
