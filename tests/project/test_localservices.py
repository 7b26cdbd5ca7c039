"""The MLflow servers the demo, the tests and the benchmarks start (`quorum.localservices`,
`quorum.mlflow_serve`): MLflow's own `server` command, serving in its own process."""

from __future__ import annotations

from pathlib import Path

import requests

from registry.mlflow_client import RegistryClient


def processes_in_group(pgid: int) -> list[str]:
    """The command lines of the processes in process group `pgid` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:
                found.append((stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    return found


def test_the_session_server_is_one_process_that_serves_the_registry(mlflow_server):
    commands = processes_in_group(mlflow_server.process.pid)
    assert len(commands) == 1, commands
    assert "-m quorum.mlflow_serve" in commands[0]
    assert f"--backend-store-uri sqlite:///{mlflow_server.store_dir}" in commands[0]

    client = RegistryClient(mlflow_server.url)
    client.ping()
    # MLflow's own server: its REST API and the artifact proxy the stores are configured with.
    answer = requests.get(
        f"{mlflow_server.url}/api/2.0/mlflow-artifacts/artifacts", params={"path": ""}, timeout=10
    )
    assert answer.status_code == 200, answer.text
