"""A small OpenID Connect provider for the tests, run as its own process on a free port.

It speaks the parts of OpenID Connect Quorum relies on, over real HTTP: discovery, a sign-in form
at the authorization endpoint, the authorization code grant with PKCE (S256, checked), ID tokens
signed with RS256 and published keys (JWKS), userinfo, and RP-initiated logout. It is also the
"CI system" that issues workload identity tokens.

Tests drive it through /_control/ endpoints: set a person's groups, make the next ID token
misbehave (forged signature, expired, wrong nonce, wrong audience, wrong issuer), mint workload
tokens with chosen claims or keys, and read what it received (PKCE challenges, logouts).

    python tests/oidc_provider.py --port 8765 --client-id quorum --client-secret s3cret
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import html
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlparse

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

MISBEHAVIOURS = {"forged", "expired", "wrong_nonce", "wrong_audience", "wrong_issuer"}


def new_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key, kid: str) -> dict:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}


class Provider:
    """The provider's state: keys, people, codes and tokens in flight, and what it was sent."""

    def __init__(self, issuer: str, client_id: str, client_secret: str):
        self.issuer = issuer
        self.client_id = client_id
        self.client_secret = client_secret
        self.keys = {"key-1": new_key()}
        self.current_kid = "key-1"
        # A key nobody published: tokens signed with it are forgeries.
        self.stranger_key = new_key()
        self.people: dict[str, dict] = {}
        self.codes: dict[str, dict] = {}
        self.access_tokens: dict[str, dict] = {}
        self.misbehave: str | None = None
        self.log: list[dict] = []
        self.lock = threading.Lock()

    def discovery(self) -> dict:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "jwks_uri": f"{self.issuer}/jwks",
            "end_session_endpoint": f"{self.issuer}/logout",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["openid", "email", "profile", "groups"],
            "claims_supported": ["sub", "preferred_username", "email", "name", "groups"],
        }

    def jwks(self) -> dict:
        return {"keys": [public_jwk(key, kid) for kid, key in self.keys.items()]}

    def sign(self, claims: dict, *, kid: str | None = None, key=None) -> str:
        kid = kid or self.current_kid
        return jwt.encode(claims, key or self.keys[kid], algorithm="RS256", headers={"kid": kid})

    def person_claims(self, username: str) -> dict:
        person = self.people.get(username, {})
        return {
            "sub": person.get("sub", f"sub-{username}"),
            "preferred_username": username,
            "email": person.get("email", f"{username}@example.com"),
            "name": person.get("name", username.title()),
            "groups": list(person.get("groups", [])),
        }

    def id_token(self, username: str, nonce: str | None) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.client_id,
            "iat": now,
            "exp": now + 300,
            "sub": self.person_claims(username)["sub"],
            "preferred_username": username,
        }
        if nonce is not None:
            claims["nonce"] = nonce
        mode, self.misbehave = self.misbehave, None  # each misbehaviour spoils one token
        key = None
        if mode == "forged":
            key = self.stranger_key
        elif mode == "expired":
            claims.update(iat=now - 3600, exp=now - 1800)
        elif mode == "wrong_nonce":
            claims["nonce"] = "not-the-nonce-you-sent"
        elif mode == "wrong_audience":
            claims["aud"] = "some-other-application"
        elif mode == "wrong_issuer":
            claims["iss"] = "https://impostor.example.com"
        return self.sign(claims, key=key)


def make_handler(provider: Provider):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format, *args):  # noqa: A002 - the base class's name
            pass

        # -- plumbing ---------------------------------------------------------------------
        def _send(self, status: int, body: bytes, content_type: str, headers=None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, data) -> None:
            self._send(status, json.dumps(data).encode(), "application/json")

        def _redirect(self, location: str) -> None:
            self._send(302, b"", "text/plain", {"Location": location})

        def _form(self) -> dict[str, str]:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode()
            if self.headers.get("Content-Type", "").startswith("application/json"):
                return json.loads(raw or "{}")
            return {k: v[0] for k, v in parse_qs(raw).items()}

        def _query(self) -> dict[str, str]:
            return {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}

        # -- routes -------------------------------------------------------------------------
        def do_GET(self):  # noqa: N802 - http.server's name
            path = urlparse(self.path).path
            if path == "/.well-known/openid-configuration":
                return self._json(200, provider.discovery())
            if path == "/jwks":
                return self._json(200, provider.jwks())
            if path == "/authorize":
                return self._authorize_form(self._query())
            if path == "/userinfo":
                return self._userinfo()
            if path == "/logout":
                query = self._query()
                provider.log.append({"event": "logout", **query})
                target = query.get("post_logout_redirect_uri")
                if target:
                    return self._redirect(target)
                return self._send(200, b"<h1>Signed out</h1>", "text/html")
            if path == "/_control/log":
                return self._json(200, provider.log)
            return self._json(404, {"error": "not_found"})

        def do_POST(self):  # noqa: N802
            path = urlparse(self.path).path
            if path == "/authorize":
                return self._authorize_submit(self._form())
            if path == "/token":
                return self._token(self._form())
            if path == "/_control/person":
                data = self._form()
                provider.people[data["username"]] = data
                return self._json(200, provider.person_claims(data["username"]))
            if path == "/_control/misbehave":
                mode = self._form().get("mode")
                if mode is not None and mode not in MISBEHAVIOURS:
                    return self._json(400, {"error": f"unknown mode {mode!r}"})
                provider.misbehave = mode
                return self._json(200, {"mode": mode})
            if path == "/_control/rotate":
                kid = f"key-{len(provider.keys) + 1}"
                provider.keys[kid] = new_key()
                provider.current_kid = kid
                return self._json(200, {"kid": kid})
            if path == "/_control/mint":
                return self._mint(self._form())
            return self._json(404, {"error": "not_found"})

        # -- authorization endpoint: a sign-in form -----------------------------------------
        def _authorize_form(self, query: dict) -> None:
            problem = self._authorization_problem(query)
            if problem:
                return self._send(400, html.escape(problem).encode(), "text/plain")
            provider.log.append({"event": "authorize", **query})
            hidden = "".join(
                f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                for k, v in query.items()
            )
            page = (
                "<!doctype html><title>Test IdP sign-in</title><h1>Test IdP</h1>"
                '<form method="post" action="/authorize">'
                f'{hidden}<label>Username <input name="username" autofocus></label>'
                '<button type="submit">Continue</button></form>'
            )
            return self._send(200, page.encode(), "text/html; charset=utf-8")

        def _authorization_problem(self, query: dict) -> str | None:
            if query.get("client_id") != provider.client_id:
                return "unknown client_id"
            if query.get("response_type") != "code":
                return "response_type must be code"
            if "openid" not in query.get("scope", "").split():
                return "scope must include openid"
            if not query.get("redirect_uri"):
                return "redirect_uri missing"
            if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
                return "PKCE with S256 is required"
            return None

        def _authorize_submit(self, form: dict) -> None:
            problem = self._authorization_problem(form)
            if problem or not form.get("username"):
                return self._send(400, (problem or "username missing").encode(), "text/plain")
            code = secrets.token_urlsafe(24)
            with provider.lock:
                provider.codes[code] = {
                    "username": form["username"],
                    "redirect_uri": form["redirect_uri"],
                    "nonce": form.get("nonce"),
                    "code_challenge": form["code_challenge"],
                }
            params = {"code": code}
            if "state" in form:
                params["state"] = form["state"]
            separator = "&" if "?" in form["redirect_uri"] else "?"
            return self._redirect(form["redirect_uri"] + separator + urlencode(params))

        # -- token endpoint -----------------------------------------------------------------
        def _client_authenticated(self, form: dict) -> bool:
            header = self.headers.get("Authorization", "")
            if header.startswith("Basic "):
                client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            else:
                client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
            return client_id == provider.client_id and secret == provider.client_secret

        def _token(self, form: dict) -> None:
            if not self._client_authenticated(form):
                return self._json(401, {"error": "invalid_client"})
            if form.get("grant_type") != "authorization_code":
                return self._json(400, {"error": "unsupported_grant_type"})
            with provider.lock:
                grant = provider.codes.pop(form.get("code", ""), None)  # a code is used once
            if grant is None:
                return self._json(400, {"error": "invalid_grant"})
            if form.get("redirect_uri") != grant["redirect_uri"]:
                return self._json(400, {"error": "invalid_grant", "error_description": "uri"})
            verifier = form.get("code_verifier", "")
            digest = hashlib.sha256(verifier.encode()).digest()
            challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            if challenge != grant["code_challenge"]:
                return self._json(
                    400, {"error": "invalid_grant", "error_description": "PKCE mismatch"}
                )
            access = secrets.token_urlsafe(24)
            provider.access_tokens[access] = {"username": grant["username"]}
            provider.log.append({"event": "token", "username": grant["username"]})
            return self._json(
                200,
                {
                    "access_token": access,
                    "token_type": "Bearer",
                    "expires_in": 300,
                    "id_token": provider.id_token(grant["username"], grant["nonce"]),
                },
            )

        def _userinfo(self) -> None:
            header = self.headers.get("Authorization", "")
            grant = provider.access_tokens.get(header.removeprefix("Bearer ").strip())
            if grant is None:
                return self._json(401, {"error": "invalid_token"})
            return self._json(200, provider.person_claims(grant["username"]))

        # -- workload identity tokens (the CI system) ---------------------------------------
        def _mint(self, form: dict) -> None:
            now = int(time.time())
            claims = {
                "iss": provider.issuer,
                "aud": "quorum",
                "iat": now,
                "nbf": now,
                "exp": now + 300,
                **form.get("claims", {}),
            }
            key = provider.stranger_key if form.get("sign_with") == "stranger" else None
            kid = form.get("kid") or provider.current_kid
            if kid not in provider.keys and key is None:
                key = provider.stranger_key  # a key id nobody published
            return self._json(200, {"token": provider.sign(claims, kid=kid, key=key)})

    return Handler


class ProviderControl:
    """The tests' handle on a running provider: its URL, its controls, and a whole sign-in."""

    def __init__(self, url: str, client_id: str, client_secret: str):
        self.url = url
        self.client_id = client_id
        self.client_secret = client_secret

    def _post(self, path: str, data: dict) -> dict:
        import requests

        response = requests.post(self.url + path, json=data, timeout=10)
        response.raise_for_status()
        return response.json()

    def person(self, username: str, groups: list[str], **claims) -> dict:
        return self._post("/_control/person", {"username": username, "groups": groups, **claims})

    def misbehave(self, mode: str | None) -> None:
        self._post("/_control/misbehave", {"mode": mode})

    def rotate(self) -> str:
        return self._post("/_control/rotate", {})["kid"]

    def mint(self, claims: dict | None = None, **options) -> str:
        return self._post("/_control/mint", {"claims": claims or {}, **options})["token"]

    def log(self) -> list[dict]:
        import requests

        return requests.get(self.url + "/_control/log", timeout=10).json()

    def authorize(self, location: str, username: str) -> str:
        """Submits the provider's sign-in form for the authorization request at `location`, as
        a person would; returns where the provider sends the browser back to."""
        import requests

        query = {k: v[0] for k, v in parse_qs(urlparse(location).query).items()}
        page = requests.get(location, timeout=10)
        page.raise_for_status()
        response = requests.post(
            self.url + "/authorize",
            data={**query, "username": username},
            allow_redirects=False,
            timeout=10,
        )
        assert response.status_code == 302, response.text
        return response.headers["Location"]

    def sign_in(self, client, username: str, next_url: str = ""):
        """A whole sign-in with Django's test client: Quorum → provider → Quorum's callback.
        Returns the callback's response."""
        start = "/oidc/authenticate/" + (f"?{urlencode({'next': next_url})}" if next_url else "")
        redirect = client.get(start)
        assert redirect.status_code == 302, redirect.content
        back = urlparse(self.authorize(redirect["Location"], username))
        return client.get(back.path + "?" + back.query)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--client-id", default="quorum")
    parser.add_argument("--client-secret", default="quorum-test-secret")
    args = parser.parse_args()
    issuer = f"http://127.0.0.1:{args.port}"
    provider = Provider(issuer, args.client_id, args.client_secret)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(provider))
    print(f"test OIDC provider at {issuer}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
