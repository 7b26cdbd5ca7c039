"""The REST API as the CLI sees it: JSON over HTTP with a bearer token, errors as exceptions.

Every failure becomes a `CliError` carrying the exit code the CLI ends with, so no traceback ever
reaches a CI log: 2 for an unreachable server, a refused token or a refused call.
"""

from __future__ import annotations

from typing import Any

import requests

from quorum_cli import __version__

EXIT_USAGE = 2  # usage, authentication, an unreachable server, a refusal


class CliError(Exception):
    def __init__(self, message: str, exit_code: int = EXIT_USAGE, code: str = ""):
        super().__init__(message)
        self.exit_code = exit_code
        self.code = code  # the API's error code, when the server refused


class Unreachable(CliError):
    """The server did not answer (connection refused, DNS, timeout, a 5xx)."""


class Client:
    def __init__(self, url: str, token: str, *, timeout: float = 30.0):
        self.base = url.rstrip("/") + "/api/v1"
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers.update(
            {
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "User-Agent": f"quorum-cli/{__version__}",
            }
        )

    def get_request(self, request_id: int) -> dict:
        return self._call("GET", f"/requests/{request_id}")

    def create_request(
        self, model: str, version: str, target: str, comment: str, *, answer: str = ""
    ) -> dict:
        body = {"model": model, "version": version, "target": target, "comment": comment}
        if answer:  # sent only when given: older servers refuse fields they do not know
            body["rejection_answer"] = answer
        return self._call("POST", "/requests", json=body)

    def create_rollback(
        self, model: str, target: str, to_version: str | None, comment: str
    ) -> dict:
        body = {"model": model, "target": target, "comment": comment}
        if to_version is not None:
            body["to_version"] = to_version
        return self._call("POST", "/rollbacks", json=body)

    def preview_rollback(self, model: str, target: str, to_version: str | None) -> dict:
        params = {"model": model, "target": target}
        if to_version is not None:
            params["to_version"] = to_version
        return self._call("GET", "/rollbacks/preview", params=params)

    def break_glass(self, model: str, version: str, target: str, reason: str) -> dict:
        body = {"model": model, "version": version, "target": target, "reason": reason}
        return self._call("POST", "/break-glass", json=body)

    def vote(self, request_id: int, decision: str, comment: str) -> dict:
        body = {"decision": decision, "comment": comment}
        return self._call("POST", f"/requests/{request_id}/votes", json=body)

    def explain_policy(self, model: str, version: str, target: str) -> dict:
        params = {"model": model, "version": version, "target": target}
        return self._call("GET", "/policies/explain", params=params)

    def test_policies(self, policies: str, cases: str) -> dict:
        """The server checks `cases` (a cases file's text) against `policies` (a policy file's
        text) with its own evaluation, storing nothing."""
        return self._call("POST", "/policies/test", json={"policies": policies, "cases": cases})

    def latest_comments(self, request_id: int, limit: int = 3) -> list[dict]:
        """The newest `limit` comments on the request, oldest first (the API lists oldest
        first: one call when there are few, a second for the last page otherwise)."""
        path = f"/requests/{request_id}/comments"
        page = self._call("GET", path, params={"limit": limit})
        if page["count"] > limit:
            page = self._call("GET", path, params={"limit": limit, "offset": page["count"] - limit})
        return page["items"]

    def _call(self, method: str, path: str, **kwargs: Any) -> dict:
        url = self.base + path
        try:
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.exceptions.InvalidURL as error:
            raise CliError(f"invalid Quorum URL {self.base!r}: {error}") from None
        except requests.exceptions.MissingSchema:
            raise CliError(
                f"invalid Quorum URL {self.base!r}: it needs http:// or https://"
            ) from None
        except requests.RequestException as error:
            raise Unreachable(f"cannot reach Quorum at {self.base}: {_reason(error)}") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 500:
            raise Unreachable(f"Quorum answered {response.status_code} at {url}")
        if not isinstance(body, dict):
            raise CliError(
                f"{url} answered {response.status_code} without JSON: is --url/QUORUM_URL the "
                "Quorum dashboard's address?"
            )
        if response.status_code == 401:
            raise CliError(f"authentication failed: {body.get('detail', 'unauthorized')}")
        if response.status_code >= 400:
            code = str(body.get("error", response.status_code))
            raise CliError(f"refused ({code}): {body.get('detail', response.reason)}", code=code)
        return body


def _reason(error: requests.RequestException) -> str:
    if isinstance(error, requests.Timeout):
        return "timed out"
    if isinstance(error, requests.ConnectionError):
        return "connection failed"
    return type(error).__name__
