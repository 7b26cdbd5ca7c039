"""The lock check `make test` runs first (requirements/lockcheck.py), against the real locks and
against copies whose pyproject.toml moved on without them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECK = [sys.executable, "requirements/lockcheck.py"]


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CHECK, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def copy_of_the_project(tmp_path: Path) -> Path:
    """pyproject.toml files and requirements/ of this checkout, to change without harm."""
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    (tmp_path / "mlflow-quorum-guard").mkdir()
    shutil.copy(ROOT / "mlflow-quorum-guard/pyproject.toml", tmp_path / "mlflow-quorum-guard")
    shutil.copytree(ROOT / "requirements", tmp_path / "requirements")
    return tmp_path


def test_the_committed_locks_match_pyproject():
    result = run(
        "requirements/test.in", "requirements/test.txt", "requirements/demo.in",
        "requirements/demo.txt",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_a_dependency_missing_from_the_lock_is_refused_with_the_command_to_run(tmp_path):
    project = copy_of_the_project(tmp_path)
    pyproject = project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace('"pyyaml>=6",', '"pyyaml>=6",\n    "left-pad-unlocked>=1.0",')
    )
    result = run("requirements/test.in", "requirements/test.txt", cwd=project)
    assert result.returncode == 1
    assert "left-pad-unlocked>=1.0 (pyproject.toml) is not in requirements/test.txt" in (
        result.stderr
    )
    assert "Run `make lock`" in result.stderr


def test_a_range_that_excludes_the_locked_version_is_refused(tmp_path):
    project = copy_of_the_project(tmp_path)
    guard = project / "mlflow-quorum-guard/pyproject.toml"
    guard.write_text(guard.read_text().replace('"mlflow>=3.3,<4"]', '"mlflow>=99"]'))
    result = run("requirements/test.in", "requirements/test.txt", cwd=project)
    assert result.returncode == 1
    assert "mlflow>=99 (mlflow-quorum-guard/pyproject.toml) does not allow the locked" in (
        result.stderr
    )


def test_drift_names_what_differs_from_the_lock(tmp_path):
    lock = tmp_path / "lock.txt"
    lock.write_text("pytest==0.0.1 \\\n    --hash=sha256:00\n")
    result = run("--drift", str(lock))
    assert result.returncode == 0
    assert f"Newer than {lock}: pytest 0.0.1 -> " in result.stdout
