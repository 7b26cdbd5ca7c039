"""What importing Quorum's MLflow client does to the process: of the modules MLflow imports
before every request to tell whether it runs in Databricks, those not installed are known absent
(they fail at once, as they failed before); an installed one is left alone."""

from __future__ import annotations

import importlib
import sys

import pytest

from registry.mlflow_client import connection


def test_only_modules_that_are_not_installed_are_marked_absent(monkeypatch):
    missing = "quorum_no_such_module"
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)  # installed, not imported yet
    monkeypatch.setitem(sys.modules, missing, sys.modules.get(missing))  # restored afterwards
    del sys.modules[missing]

    connection._mark_absent(("colorsys", missing))

    assert importlib.import_module("colorsys").rgb_to_hsv(1.0, 0.0, 0.0)[0] == 0.0
    assert sys.modules[missing] is None
    with pytest.raises(ImportError):
        importlib.import_module(missing)
