"""The guard's lock directory (QUORUM_GUARD_LOCK_DIR) is the MLflow server user's alone: made
with mode 0700, and a directory others can write, or someone else's, stops a real
`mlflow server --app-name quorum-guard` at start and refuses guarded changes while it lasts."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest
import requests
from mlflow_quorum_guard.config import (
    GuardConfig,
    GuardConfigError,
    default_lock_dir,
    private_lock_dir,
)

from quorum.localservices import ServiceError, free_port, start_mlflow_server

TOKEN = "lock-dir-tests-service-token"


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def guard_env(lock_dir: Path) -> dict[str, str]:
    return {"QUORUM_GUARD_SERVICE_TOKEN": TOKEN, "QUORUM_GUARD_LOCK_DIR": str(lock_dir)}


def test_the_default_is_the_users_own_directory_not_a_shared_one(monkeypatch):
    env = {"QUORUM_GUARD_SERVICE_TOKEN": TOKEN}
    assert GuardConfig.from_env(env).lock_dir == (
        Path(tempfile.gettempdir()) / f"mlflow-quorum-guard-{os.geteuid()}"
    )
    runtime = {**env, "XDG_RUNTIME_DIR": "/run/user/1000"}
    assert default_lock_dir(runtime) == Path("/run/user/1000/mlflow-quorum-guard")
    assert GuardConfig.from_env({**env, "QUORUM_GUARD_LOCK_DIR": "/srv/locks"}).lock_dir == Path(
        "/srv/locks"
    )


def test_a_missing_directory_is_created_for_the_user_alone(tmp_path):
    wanted = tmp_path / "run" / "guard-locks"
    assert private_lock_dir(wanted) == wanted
    assert mode(wanted) == 0o700 and os.lstat(wanted).st_uid == os.geteuid()
    assert private_lock_dir(wanted) == wanted  # and taken as it is the next time


@pytest.mark.parametrize(
    ("bits", "problem"),
    [
        (0o777, "is writable by group and others (mode 0777)"),
        (0o1777, "is writable by group and others (mode 1777)"),  # /tmp's, sticky or not
        (0o775, "is writable by group (mode 0775)"),
        (0o703, "is writable by others (mode 0703)"),
    ],
)
def test_a_directory_others_can_write_is_refused(tmp_path, bits, problem):
    shared = tmp_path / "locks"
    shared.mkdir()
    shared.chmod(bits)
    with pytest.raises(GuardConfigError) as refused:
        private_lock_dir(shared)
    assert str(refused.value).startswith(f"QUORUM_GUARD_LOCK_DIR={str(shared)!r} {problem}")
    assert f"chmod 700 {shared}" in str(refused.value)


def test_someone_elses_directory_a_link_or_a_file_is_refused(tmp_path):
    link, file = tmp_path / "link", tmp_path / "file"
    (tmp_path / "real").mkdir(mode=0o700)
    link.symlink_to(tmp_path / "real")
    file.write_text("")
    with pytest.raises(GuardConfigError, match="is a symbolic link"):
        private_lock_dir(link)
    with pytest.raises(GuardConfigError, match="is not a directory|cannot create it"):
        private_lock_dir(file)
    if os.geteuid() != 0:
        pytest.skip("making a directory someone else owns needs root")
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 65534, 65534)  # nobody
    with pytest.raises(
        GuardConfigError, match=r"is owned by uid 65534, not by the user the MLflow"
    ):
        private_lock_dir(theirs)


def test_a_server_with_a_lock_directory_others_can_write_does_not_start(tmp_path):
    shared = tmp_path / "locks"
    shared.mkdir()
    shared.chmod(0o777)

    with pytest.raises(ServiceError) as refused:
        start_mlflow_server(
            tmp_path / "mlflow",
            port=free_port(),
            app_name="quorum-guard",
            extra_env=guard_env(shared),
            timeout=120,
        )

    assert "mlflow server did not start" in str(refused.value)
    assert (
        f"GuardConfigError: QUORUM_GUARD_LOCK_DIR={str(shared)!r} is writable by group and "
        "others (mode 0777)"
    ) in str(refused.value)


def test_a_lock_directory_opened_to_others_while_running_refuses_guarded_changes(
    token_guard, unique_name
):
    guarded = token_guard  # the process's: no other test uses it meanwhile
    lock_dir, log = guarded.lock_dir, guarded.server.log_path
    logged_before = len(log.read_text())

    def create(name: str) -> requests.Response:
        return requests.post(
            f"{guarded.url}/api/2.0/mlflow/registered-models/create",
            json={"name": f"{unique_name}-{name}"},
            timeout=30,
            **guarded.credentials("quorum"),
        )

    assert create("before").status_code == 200
    assert mode(lock_dir) == 0o700 and list(lock_dir.glob("*.lock"))

    lock_dir.chmod(0o777)
    try:
        refused = create("while-open")
    finally:
        lock_dir.chmod(0o700)  # the server's later tests need it safe again

    assert refused.status_code == 403
    assert refused.json() == {
        "error_code": "PERMISSION_DENIED",
        "message": "Quorum's guard cannot lock the model to check this change: its lock "
        "directory is not safe to use (the MLflow server's log says why).",
    }
    assert "is writable by group and others (mode 0777)" in log.read_text()[logged_before:]
    assert create("after").status_code == 200
    listed = requests.get(
        f"{guarded.url}/api/2.0/mlflow/registered-models/search",
        params={"filter": f"name LIKE '{unique_name}-%'"},
        timeout=30,
    )
    assert sorted(m["name"] for m in listed.json()["registered_models"]) == [
        f"{unique_name}-after",
        f"{unique_name}-before",
    ]
