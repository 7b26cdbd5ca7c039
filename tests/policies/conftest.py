"""Fixtures of the policy tests."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User


@pytest.fixture
def people():
    """The users `tests.policy_files.POLICY_FILE_EXAMPLE` names."""
    return {name: User.objects.create_user(name) for name in ["alice", "bob", "carol", "dave"]}
