"""The web tests' OpenID Connect provider (oidc_provider.py) is a real one and a strict one:
discovery, a JWKS, RS256-signed ID tokens carrying the nonce and the claims set for the
person, PKCE required (no code without an S256 challenge, no token without the verifier)."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import secrets
import urllib.parse
from pathlib import Path

import pytest

import oidc_provider

REDIRECT = "http://127.0.0.1:9/ui/callback"


@pytest.fixture(scope="module")
def idp(tmp_path_factory):
    p = oidc_provider.start(tmp_path_factory.mktemp("idp") / "idp.log")
    yield p
    p.stop()


def _req(url: str, method: str = "GET", form: dict | None = None):
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    body = urllib.parse.urlencode(form) if form is not None else None
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if form is not None else {}
    conn.request(method, u.path + ("?" + u.query if u.query else ""), body=body, headers=headers)
    r = conn.getresponse()
    return r.status, dict(r.getheaders()), r.read()


def _authorize(idp, meta, sub: str, challenge: str | None) -> dict:
    params = {"client_id": "jitbroker", "response_type": "code", "scope": "openid profile", "redirect_uri": REDIRECT,
              "state": "st", "nonce": "nonce-1"}
    if challenge:
        params |= {"code_challenge": challenge, "code_challenge_method": "S256"}
    url = meta["authorization_endpoint"] + "?" + urllib.parse.urlencode(params)
    status, headers, _ = _req(url, "POST", {"sub": sub})
    assert status == 302, status
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(headers["Location"]).query))


def _token(meta, code: str, verifier: str | None):
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "client_id": "jitbroker",
            "client_secret": "s"}
    if verifier:
        form["code_verifier"] = verifier
    status, _, body = _req(meta["token_endpoint"], "POST", form)
    return status, json.loads(body)


def test_discovery_pkce_and_signed_id_tokens(idp):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    status, _, body = _req(idp.issuer + "/.well-known/openid-configuration")
    meta = json.loads(body)
    assert status == 200 and meta["issuer"] == idp.issuer and "RS256" in meta["id_token_signing_alg_values_supported"]
    idp.set_user("sub-1", {"preferred_username": "bob", "groups": ["leads"]})
    # No code challenge: the provider answers with an error, no code.
    back = _authorize(idp, meta, "sub-1", None)
    assert "code" not in back and back.get("error") == "invalid_request", back
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    # A code, but a token request without or with a wrong verifier is refused.
    code = _authorize(idp, meta, "sub-1", challenge)["code"]
    status, answer = _token(meta, code, None)
    assert status == 400 and "id_token" not in answer, answer
    code = _authorize(idp, meta, "sub-1", challenge)["code"]
    status, answer = _token(meta, code, secrets.token_urlsafe(48))
    assert status == 400 and answer.get("error") == "invalid_grant", answer
    # The right verifier: an ID token signed with a key from the JWKS, with the nonce and claims.
    code = _authorize(idp, meta, "sub-1", challenge)["code"]
    status, answer = _token(meta, code, verifier)
    assert status == 200, answer
    head, payload, sig = answer["id_token"].split(".")
    pad = lambda s: base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    header, claims = json.loads(pad(head)), json.loads(pad(payload))
    assert header["alg"] == "RS256"
    jwks = json.loads(_req(meta["jwks_uri"])[2])["keys"]
    jwk = next(k for k in jwks if k.get("kid") == header.get("kid")) if header.get("kid") else jwks[0]
    n, e = (int.from_bytes(pad(jwk[x]), "big") for x in ("n", "e"))
    rsa.RSAPublicNumbers(e, n).public_key().verify(pad(sig), f"{head}.{payload}".encode(), padding.PKCS1v15(),
                                                    hashes.SHA256())
    assert claims["iss"] == idp.issuer and claims["aud"] in ("jitbroker", ["jitbroker"]) and claims["nonce"] == "nonce-1"
    assert claims["sub"] == "sub-1" and claims["preferred_username"] == "bob" and claims["groups"] == ["leads"]
    assert claims["exp"] > claims["iat"]
