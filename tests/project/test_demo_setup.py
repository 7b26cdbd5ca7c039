"""`manage.py demo_setup`: the demo's preparing steps in one process, in order; a failing step is
named and ends it (the demo itself runs it end to end in tests/project/test_demo.py)."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from quorum.management.commands import demo_setup


def test_the_steps_run_in_order_and_a_failing_one_is_named_and_ends_the_setup(monkeypatch):
    ran: list[str] = []

    def command(name: str, *args: str, **options) -> None:
        ran.append(" ".join((name, *args)))
        if name == "sync_registry":
            raise CommandError("MLflow at http://127.0.0.1:9 does not answer")

    monkeypatch.setattr(demo_setup, "call_command", command)
    output = io.StringIO()
    with pytest.raises(CommandError) as failed:
        call_command(
            "demo_setup", "--models=2", "--versions=3", "--policies=demo.yaml", stdout=output
        )

    assert ran == [
        "migrate --no-input",
        "seed_registry --if-empty --artifacts --models=2 --versions=3",
        "sync_registry --full --no-progress",
    ]
    assert str(failed.value) == (
        "sync (manage.py sync_registry --full --no-progress): "
        "MLflow at http://127.0.0.1:9 does not answer"
    )
    assert "seed: manage.py seed_registry" in output.getvalue()


def test_the_policies_file_is_required():
    with pytest.raises(CommandError, match="--policies"):
        call_command("demo_setup")
