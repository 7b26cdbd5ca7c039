"""Asking whether the server answers, and what its quorum-guard app says about itself."""

from __future__ import annotations

import socket
import urllib.parse

from requests.utils import get_environ_proxies

from .connection import Connection, MlflowError, translate
from .entities import GuardStatus

# The probe route mlflow-quorum-guard adds; short, because `manage.py check` asks it too.
GUARD_STATUS_ENDPOINT = "/api/2.0/quorum-guard/status"
GUARD_PROBE_TIMEOUT = 3


class Probes(Connection):
    """Asks the server whether it answers, and its quorum-guard app what it enforces."""

    def ping(self) -> None:
        """Raises `MlflowError` unless the tracking server answers."""
        self._call(self._client.search_experiments, max_results=1)

    def guard_status(self) -> GuardStatus | None:
        """Asks the registry's quorum-guard app (mlflow-quorum-guard) about itself, with this
        client's credentials; None when the server has no guard (the route does not exist).

        Where nothing listens at an http(s) tracking URI, says so without loading MLflow: every
        `manage.py` command asks, and most run where no MLflow answers (a build, a release step)."""
        self._connect_or_raise(GUARD_PROBE_TIMEOUT)
        from mlflow.exceptions import MlflowException
        from mlflow.utils.credentials import get_default_host_creds
        from mlflow.utils.rest_utils import http_request

        self.calls += 1
        try:
            response = http_request(
                get_default_host_creds(self.tracking_uri),
                GUARD_STATUS_ENDPOINT,
                "GET",
                max_retries=0,
                timeout=GUARD_PROBE_TIMEOUT,
                raise_on_status=False,
            )
        except MlflowException as error:
            raise translate(error) from error
        except OSError as error:
            raise MlflowError(
                f"MLflow at {self.tracking_uri} is unreachable: {error}", unreachable=True
            ) from error
        if response.status_code == 404:
            return None
        if response.status_code in (401, 403):
            raise MlflowError(
                f"MLflow at {self.tracking_uri} refused Quorum's credentials "
                f"({response.status_code}): check MLFLOW_TRACKING_USERNAME/PASSWORD or "
                "MLFLOW_TRACKING_TOKEN"
            )
        try:
            body = response.json()
            return GuardStatus(
                version=str(body["version"]),
                auth=str(body["auth"]),
                service_identity=body["service_identity"] is True,
                default_targets=[str(t) for t in body.get("default_targets", [])],
            )
        except (ValueError, KeyError, TypeError) as error:
            raise MlflowError(
                f"MLflow at {self.tracking_uri} answered the guard probe with "
                f"{response.status_code} and no guard status"
            ) from error

    def _connect_or_raise(self, timeout: float) -> None:
        """Raises `MlflowError` (unreachable) when an http(s) tracking URI's host refuses or does
        not accept a TCP connection within `timeout`; other URIs, and any reached through a
        proxy (which MLflow's requests would use), are left to MLflow."""
        url = urllib.parse.urlsplit(self.tracking_uri or "")
        if url.scheme not in ("http", "https") or not url.hostname:
            return
        if get_environ_proxies(self.tracking_uri or ""):
            return
        try:
            port = url.port or (443 if url.scheme == "https" else 80)
            socket.create_connection((url.hostname, port), timeout=timeout).close()
        except (OSError, ValueError) as error:  # ValueError: a port out of range in the URI
            raise MlflowError(
                f"MLflow at {self.tracking_uri} is unreachable: {error}", unreachable=True
            ) from error

    def answers_within(self, timeout: float) -> None:
        """Raises `MlflowError` unless the registry answers a read with Quorum's credentials
        within `timeout` seconds, at the first try: a readiness probe cannot wait through the
        client's retries."""
        from mlflow.exceptions import MlflowException
        from mlflow.utils.credentials import get_default_host_creds
        from mlflow.utils.rest_utils import http_request

        self.calls += 1
        try:
            response = http_request(
                get_default_host_creds(self.tracking_uri),
                "/api/2.0/mlflow/registered-models/search",
                "GET",
                params={"max_results": 1},
                max_retries=0,
                timeout=timeout,
                raise_on_status=False,
            )
        except MlflowException as error:
            raise translate(error) from error
        except OSError as error:
            raise MlflowError(
                f"MLflow at {self.tracking_uri} is unreachable: {error}", unreachable=True
            ) from error
        if response.status_code != 200:
            raise MlflowError(
                f"MLflow at {self.tracking_uri} answered a registry read with "
                f"{response.status_code}"
            )
