"""Fixtures of the decision tests beyond tests/conftest.py."""

from __future__ import annotations

import pytest

from registry.models import Stage
from tests.factories import make_model, make_version


@pytest.fixture
def fraud(policies):
    """v1 in Production; v2 a better candidate."""
    model = make_model("fraud")
    make_version(model, 1, stage=Stage.PRODUCTION, metrics={"accuracy": 0.85, "f1": 0.80})
    make_version(model, 2, metrics={"accuracy": 0.90, "f1": 0.84})
    return model
