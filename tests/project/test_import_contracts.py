"""The import contracts (pyproject.toml's [tool.importlinter], run by `make test`): they hold on
this tree, and an import that crosses an arrow the wrong way makes them fail, naming it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("quorum", "quorum_cli", "registry", "reviews", "identity", "infra", "operations")
LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))


def lint_imports(tree: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache"], cwd=tree, env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip


def copy_of_the_tree(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def test_the_contracts_hold_on_this_tree():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_registry_importing_the_review_engine_breaks_a_contract(tmp_path):
    tree = copy_of_the_tree(tmp_path)
    sync = tree / "registry/sync.py"
    # Inside a function, where a cycle hides from the interpreter but not from the contracts.
    sync.write_text(
        sync.read_text() + "\n\ndef _later():\n    from reviews.decisions import opening\n"
    )
    result = lint_imports(tree)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "The registry mirror imports nothing of the review engine or identity BROKEN" in (
        result.stdout
    )
    assert "registry.sync -> reviews.decisions.opening" in result.stdout


def test_identity_importing_the_review_engine_breaks_a_contract(tmp_path):
    tree = copy_of_the_tree(tmp_path)
    membership = tree / "identity/membership.py"
    membership.write_text(membership.read_text() + "\nfrom reviews import audit  # noqa\n")
    result = lint_imports(tree)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Identity imports nothing of the review engine BROKEN" in result.stdout


def test_shared_infrastructure_importing_a_part_breaks_a_contract(tmp_path):
    tree = copy_of_the_tree(tmp_path)
    locks = tree / "infra/locks.py"
    locks.write_text(locks.read_text() + "\n\ndef _later():\n    from reviews import errors\n")
    result = lint_imports(tree)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Shared infrastructure imports none of Quorum's parts BROKEN" in result.stdout
    assert "infra.locks -> reviews.errors" in result.stdout


def test_a_decision_importing_execution_breaks_a_contract(tmp_path):
    tree = copy_of_the_tree(tmp_path)
    deciding = tree / "reviews/decisions/deciding.py"
    deciding.write_text(
        deciding.read_text() + "\n\ndef _later():\n    from reviews.execution import jobs\n"
    )
    result = lint_imports(tree)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Policies and decisions import no execution, web, API or notify code BROKEN" in (
        result.stdout
    )
    assert "reviews.decisions.deciding -> reviews.execution.jobs" in result.stdout


def test_a_cycle_hidden_inside_a_function_breaks_a_contract(tmp_path):
    """The request page (`reviews.web`) reads `reviews.execution.stalls`; stalls reading a web
    view back, even from inside a function where the interpreter would not notice, closes a
    cycle that no other contract forbids."""
    tree = copy_of_the_tree(tmp_path)
    stalls = tree / "reviews/execution/stalls.py"
    stalls.write_text(
        stalls.read_text() + "\n\ndef _later():\n    from reviews.web import views_request\n"
    )
    result = lint_imports(tree)
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        "No import cycles between sibling modules or packages, imports inside functions \n"
        "included BROKEN"
    ) in result.stdout
