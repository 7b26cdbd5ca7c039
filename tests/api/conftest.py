"""What the REST API's tests share: `fraud` (the fraud-detector model in the mirror, under the
standard policies) and `as_user(user)`, an API client holding that user's token."""

from __future__ import annotations

import pytest

from tests.factories import make_fraud_detector
from tests.pages import Api


@pytest.fixture
def fraud(policies):
    return make_fraud_detector()


@pytest.fixture
def as_user(client):
    return lambda user: Api(client, user)
