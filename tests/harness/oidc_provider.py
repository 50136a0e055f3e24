"""A real OpenID Connect provider on loopback for the web tests.

It is oidc-provider-mock (PyPI): authlib's authorization server with discovery
(/.well-known/openid-configuration), a JWKS, RS256-signed ID tokens and nonces, and a sign-in
form where the tester types the subject. Two things are made stricter here, with authlib's own
code: PKCE is required (RFC 7636, S256 only: an authorization request without a code challenge
is refused, and the token request must carry the matching verifier), and so is the nonce.

Run it as a process: ``python3 oidc_provider.py PORT`` (it prints ``ready`` when it listens);
:func:`start` does that and waits. People and their claims are set with
``PUT /users/{sub}`` (JSON claims: preferred_username, groups, email, ...).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Provider:
    issuer: str
    proc: subprocess.Popen
    log: Path

    def set_user(self, sub: str, claims: dict) -> None:
        req = urllib.request.Request(f"{self.issuer}/users/{sub}", data=json.dumps(claims).encode(), method="PUT",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 204, r.status

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(log: Path, timeout: float = 60) -> Provider:
    """Start the provider on a free loopback port; returns once discovery answers."""
    port = free_port()
    out = open(log, "wb")
    proc = subprocess.Popen([sys.executable, __file__, str(port)], stdin=subprocess.DEVNULL, stdout=out,
                            stderr=subprocess.STDOUT, env={**os.environ, "AUTHLIB_INSECURE_TRANSPORT": "1"})
    issuer = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(issuer + "/.well-known/openid-configuration", timeout=2) as r:
                if r.status == 200:
                    return Provider(issuer, proc, log)
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"the OIDC provider did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.1)


def _app():
    """oidc-provider-mock's Flask app, with PKCE (S256) and the nonce required."""
    from dataclasses import dataclass as _dc

    import authlib.oauth2.rfc7636 as rfc7636
    import oidc_provider_mock._app as mock
    from authlib.oauth2.rfc6749.errors import InvalidRequestError
    from oidc_provider_mock import _storage

    @_dc(kw_only=True, frozen=True)
    class PkceCode(_storage.AuthorizationCode):
        code_challenge: str | None = None
        code_challenge_method: str | None = None

    class StrictPkce(rfc7636.CodeChallenge):
        SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

        def validate_code_challenge(self, grant, redirect_uri):
            data = grant.request.payload.data
            if not data.get("code_challenge") or data.get("code_challenge_method") != "S256":
                raise InvalidRequestError("PKCE is required: send code_challenge with code_challenge_method=S256")
            return super().validate_code_challenge(grant, redirect_uri)

        def validate_code_verifier(self, grant, result):
            if not grant.request.form.get("code_verifier"):
                raise InvalidRequestError("Missing 'code_verifier'")
            return super().validate_code_verifier(grant, result)

    class Grant(mock.AuthorizationCodeGrant):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            StrictPkce(required=True)(self)

        def save_authorization_code(self, code, request):
            data = request.payload.data
            mock.storage.store_authorization_code(PkceCode(
                code=code, user_id=request.user.sub, client_id=request.client.get_client_id(),
                redirect_uri=data.get("redirect_uri"), scope=request.payload.scope, nonce=data.get("nonce"),
                code_challenge=data.get("code_challenge"), code_challenge_method=data.get("code_challenge_method")))

    mock.AuthorizationCodeGrant = Grant
    app = mock.app(require_nonce=True)
    # No interactive debugger on errors.
    inner = getattr(app.wsgi_app, "app", None)
    if inner is not None:
        app.wsgi_app = inner
    app.debug = False
    return app


def main() -> None:
    import logging

    import werkzeug.serving

    port = int(sys.argv[1])
    os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"
    logging.basicConfig(level=logging.INFO, stream=sys.stdout)
    server = werkzeug.serving.make_server("127.0.0.1", port, _app(), threaded=True)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
