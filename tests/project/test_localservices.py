"""The MLflow servers the demo, the tests and the benchmarks start (`quorum.localservices`,
`quorum.mlflow_serve`): MLflow's own `server` command, serving in its own process."""

from __future__ import annotations

import requests

from registry.mlflow_client import RegistryClient
from tests.processes import group_commands


def test_the_session_server_is_one_process_that_serves_the_registry(mlflow_server):
    commands = group_commands(mlflow_server.process.pid)
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
