"""Fixtures of the CLI tests: a live Quorum with a model in MLflow and the mirror, the CLI run as
any cast member against it, a worker process on the transitions queue, and a version taken to
Production through Quorum for `quorum verify`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from functools import partial
from pathlib import Path

import pytest
import requests

from registry.content import digest_missing
from registry.sync import sync_registry
from reviews.api.auth import token_create
from reviews.execution import jobs
from tests.mlflow_registry import register_in_mlflow
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
STAMPED = re.compile(r"^\[\d\d:\d\d:\d\d\] ")  # a state line of a waiting CLI


@pytest.fixture
def worker(workers, mlflow_server):
    """A worker process on the transitions queue, on the test database (tests.processes)."""
    return workers.start(mlflow_url=mlflow_server.url, queues=(jobs.QUEUE,))


@pytest.fixture
def quorum(live_server, settings, mlflow_client, unique_name, policies):
    """A model in MLflow and the mirror (v1 in Production), a live Quorum, and a way to run the
    CLI as any cast member."""
    settings.QUORUM_BASE_URL = live_server.url
    register_in_mlflow(mlflow_client, unique_name, versions=3)
    mlflow_client.transition_stage(unique_name, 1, "Production")
    sync_registry(model=unique_name, client=mlflow_client)
    digest_missing(client=mlflow_client)  # the digest job that follows a sync
    tokens = {name: token_create(user=user)[1] for name, user in policies.items()}
    return Quorum(live_server.url, unique_name, tokens)


class Quorum:
    def __init__(self, url: str, model: str, tokens: dict[str, str]):
        self.url, self.model, self.tokens = url, model, tokens

    def _command(self, args, user: str, url: str | None):
        """`quorum ARGS` with only QUORUM_URL/QUORUM_TOKEN set, as a CI job runs it."""
        env = {
            "PATH": os.environ["PATH"],
            "PYTHONPATH": str(ROOT),
            "QUORUM_URL": url or self.url,
            "QUORUM_TOKEN": self.tokens.get(user, user),
        }
        return [sys.executable, "-m", "quorum_cli", *args], env

    def cli(self, *args: str, user: str = "requester", url: str | None = None, timeout=120):
        command, env = self._command(args, user, url)
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)

    def cli_while_voting(
        self, *args: str, votes: list[tuple[str, str, str]], user: str = "requester", timeout=120
    ) -> subprocess.CompletedProcess:
        """Runs `quorum ARGS` (a command that waits on the model's request) and casts each
        (user, decision, comment) through the API once the CLI has printed the state before it,
        so the CLI sees every step. Each vote changes the state, and the CLI prints one
        time-stamped line per state."""
        command, env = self._command(args, user, None)
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        streams: dict[str, list[str]] = {"stdout": [], "stderr": []}
        readers = [
            threading.Thread(target=lambda s=stream, n=name: streams[n].extend(s), daemon=True)
            for name, stream in (("stdout", process.stdout), ("stderr", process.stderr))
        ]
        for reader in readers:
            reader.start()

        def printed_or_ended(states: int) -> bool:
            lines = streams["stdout"] + streams["stderr"]
            printed = sum(1 for line in lines if STAMPED.match(line))
            return printed > states or process.poll() is not None

        try:
            for number, (voter, decision, comment) in enumerate(votes):
                wait_for(
                    partial(printed_or_ended, number),
                    timeout=60,
                    message=f"the CLI to print the state before vote {number + 1}",
                )
                request_id = self.requests_of_the_model()[0]["id"]
                body = {"decision": decision, "comment": comment}
                self.api("POST", f"/requests/{request_id}/votes", voter, json=body)
            process.wait(timeout=timeout)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
            for reader in readers:
                reader.join(timeout=10)
        return subprocess.CompletedProcess(
            command, process.returncode, "".join(streams["stdout"]), "".join(streams["stderr"])
        )

    def requests_of_the_model(self) -> list[dict]:
        found = self.api("GET", "/requests", "lead", params={"model": self.model})
        return found.json()["items"]

    def api(self, method: str, path: str, user: str, **kwargs):
        return requests.request(
            method,
            f"{self.url}/api/v1{path}",
            headers={"Authorization": f"Bearer {self.tokens[user]}"},
            timeout=30,
            **kwargs,
        )


@pytest.fixture
def executed(approved, promoted, transitions, syncs, simple_worker):
    """`promoted` with version 3 taken to Production through Quorum (its proof written)."""
    approved(3, "Production")
    simple_worker(transitions)
    return promoted
