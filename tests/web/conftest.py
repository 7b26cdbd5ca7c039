"""Fixtures of the page tests: a signed-in reviewer and a model with history for the registry
pages' view tests, and signed-in browser sessions for the browser tests."""

from __future__ import annotations

import pytest

from registry.models import Stage
from tests.factories import cache_all_history, make_model, make_user, make_version


@pytest.fixture
def reviewer(db):
    return make_user("reviewer")


@pytest.fixture
def browser(client, reviewer):
    client.force_login(reviewer)
    return client


@pytest.fixture
def fraud():
    """A model with five versions: v2 in Production, v4 in Staging and @champion, v5 deleted."""
    model = make_model("fraud", description="Scores card payments.", tags={"team": "risk"})
    specs = [
        (Stage.ARCHIVED, [], {"accuracy": 0.80, "f1": 0.70, "log_loss": 0.50}),
        (Stage.PRODUCTION, [], {"accuracy": 0.85, "f1": 0.75, "log_loss": 0.40}),
        (Stage.NONE, [], {"accuracy": 0.84, "f1": 0.78, "log_loss": 0.41}),
        (Stage.STAGING, ["champion"], {"accuracy": 0.88, "f1": 0.74, "log_loss": 0.35}),
        (Stage.NONE, [], {"accuracy": 0.60}),
    ]
    versions = []
    for number, (stage, aliases, metrics) in enumerate(specs, start=1):
        version = make_version(
            model,
            stage=stage,
            aliases=aliases,
            metrics={**metrics, "zeta_score": 1.0 * number},
            params={"alpha": 0.1 * number, "penalty": "l2" if number < 4 else "l1"},
            tags={"owner": "ana", "data": f"2026-0{number}"},
            deleted=number == 5,
        )
        cache_all_history(version)
        versions.append(version)
    model.refresh_from_db()
    return model, versions


@pytest.fixture
def sign_in(live_server):
    """`sign_in(username, width=, height=)`: a signed-in browser Session of its own (Chromium
    through Playwright, tests/browser.py) on the live server."""
    from tests.browser import Session, chromium

    sessions: list[Session] = []
    with chromium() as browser:

        def open_session(username: str, **viewport) -> Session:
            sessions.append(Session(browser, live_server, username, **viewport))
            return sessions[-1]

        try:
            yield open_session
        finally:
            # Closed contexts drop their kept-alive connections, and the server's threads with them.
            for session in sessions:
                session.context.close()
