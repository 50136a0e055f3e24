"""Interoperability of jitrun grant tokens with an independent PASETO implementation (pyseto).

docs/tokens.md: v4.public, footer {"kid": "<k4.pid>"}, implicit assertion
jitrun:grant:v1, keys as PASERK. The signature covers the footer bytes as they arrive, so a
footer spaced differently by another implementation must still verify.

Uses the built jitctl at $JITCTL, else target/debug/jitctl under the repository root.
Needs: pip install pyseto pytest
"""

import json
import os
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyseto
import pytest
from pyseto import Key

REPO = Path(__file__).resolve().parents[2]
JITCTL = os.environ.get("JITCTL") or str(REPO / "target" / "debug" / "jitctl")
IMPLICIT = b"jitrun:grant:v1"


def jitctl(*args, input=None, check=True):
    proc = subprocess.run([JITCTL, *args], input=input, capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"jitctl {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


@pytest.fixture(scope="module", autouse=True)
def _binary():
    if not os.access(JITCTL, os.X_OK):
        pytest.fail(f"jitctl binary not found at {JITCTL}; run `cargo build -p jitctl` or set $JITCTL")


@pytest.fixture()
def keys(tmp_path):
    secret, public = tmp_path / "broker.key", tmp_path / "broker.pub"
    kid = jitctl("keygen", "--secret", str(secret), "--public", str(public)).stdout.strip()
    return {
        "secret_file": secret,
        "public_file": public,
        "kid": kid,
        "secret": Key.from_paserk(secret.read_text().strip()),
        "public": Key.from_paserk(public.read_text().strip()),
    }


def mint(keys, *extra):
    return jitctl(
        "grant", "mint", "--key", str(keys["secret_file"]), "--user", "alice", "--rule", "net-debug",
        "--host", "web-*", "--host", "db-1", "--ttl", "30m", "--caps", "net_raw", "--approver", "bob",
        "--cmd", "/usr/sbin/tcpdump -i * **", "--ticket", "OPS-7", "--reason", "interop test", *extra,
    ).stdout.strip()


def test_keygen_writes_paserk_with_modes(keys):
    assert keys["secret_file"].read_text().startswith("k4.secret.")
    assert keys["public_file"].read_text().startswith("k4.public.")
    assert keys["secret_file"].stat().st_mode & 0o777 == 0o600
    assert keys["public_file"].stat().st_mode & 0o777 == 0o644


def test_pyseto_kid_equals_ours(keys):
    # (c) PASERK k4.pid of our public key, computed by pyseto.
    assert keys["kid"].startswith("k4.pid.")
    assert keys["public"].to_paserk_id() == keys["kid"]
    # pyseto reads our k4.secret and derives the same public key.
    assert keys["secret"].to_paserk().startswith("k4.secret.")
    assert keys["secret"].to_paserk() == keys["secret_file"].read_text().strip()


def test_pyseto_verifies_a_token_minted_by_jitctl(keys):
    # (a) verify with the PASERK public key and the implicit assertion.
    token = mint(keys)
    assert token.startswith("v4.public.")
    decoded = pyseto.decode(keys["public"], token, implicit_assertion=IMPLICIT)
    claims = json.loads(decoded.payload)
    assert claims["sub"] == "alice"
    assert claims["rule"] == "net-debug"
    assert claims["hosts"] == ["web-*", "db-1"]
    assert claims["caps"] == ["CAP_NET_RAW"]
    assert claims["approvers"] == ["bob"]
    assert claims["cmd"] == "/usr/sbin/tcpdump -i * **"
    assert claims["iss"].startswith("jitctl@")
    assert len(claims["jti"]) == 26
    for t in ("iat", "nbf", "exp"):
        assert claims[t].endswith("Z"), claims[t]
        assert "." not in claims[t], "whole seconds"
    iat = datetime.fromisoformat(claims["iat"].replace("Z", "+00:00"))
    exp = datetime.fromisoformat(claims["exp"].replace("Z", "+00:00"))
    assert exp - iat == timedelta(minutes=30)
    # The footer, exactly as we write it: compact JSON with the kid.
    assert decoded.footer == ('{"kid":"%s"}' % keys["kid"]).encode()
    assert json.loads(decoded.footer)["kid"] == keys["public"].to_paserk_id()


def test_the_implicit_assertion_is_bound(keys):
    token = mint(keys)
    for wrong in (b"", b"jitrun:attest:v1", b"jitrun:revocations:v1"):
        with pytest.raises(pyseto.VerifyError):
            pyseto.decode(keys["public"], token, implicit_assertion=wrong)


def pyseto_grant(keys, footer, implicit=IMPLICIT, **changes):
    now = (datetime.now(timezone(timedelta(hours=2))) - timedelta(minutes=1)).replace(microsecond=250000)
    claims = {
        # Another order than ours, other offsets, fractional seconds, an unknown claim.
        "rule": "net-debug",
        "exp": (now + timedelta(hours=1)).isoformat(),
        "nbf": now.astimezone(timezone.utc).isoformat(),
        "iat": now.isoformat(),
        "jti": "01JPYSET0000000000000000ZZ",
        "hosts": ["web-*"],
        "sub": "alice",
        "iss": "pyseto-broker",
        "approvers": ["bob", "carol"],
        "caps": ["CAP_NET_RAW"],
        "x-extension": {"ignored": True},
    }
    claims.update(changes)
    payload = json.dumps(claims, indent=2).encode()
    return pyseto.encode(keys["secret"], payload, footer=footer, implicit_assertion=implicit).decode()


def test_jitctl_verifies_a_token_minted_by_pyseto_with_a_spaced_footer(keys):
    # (b) footer {"kid": "<k4.pid>"} WITH a space after the colon.
    footer = ('{"kid": "%s"}' % keys["public"].to_paserk_id()).encode()
    token = pyseto_grant(keys, footer)
    assert token.rsplit(".", 1)[1] == pyseto.utils.base64url_encode(footer).decode()

    proc = jitctl("grant", "show", "--public", str(keys["public_file"]), token)
    out = proc.stdout
    assert f"signature: verified with {keys['kid']}" in out
    assert f"kid: {keys['kid']}" in out
    shown = json.loads(out[: out.index("\n}\n") + 2])
    assert shown["sub"] == "alice"
    assert shown["iss"] == "pyseto-broker"
    assert shown["approvers"] == ["bob", "carol"]
    assert shown["x-extension"] == {"ignored": True}
    assert "expires in" in out

    # Also from standard input.
    proc = jitctl("grant", "show", "--public", str(keys["public_file"]), "-", input=token + "\n")
    assert f"signature: verified with {keys['kid']}" in proc.stdout


def test_jitctl_refuses_pyseto_tokens_that_are_not_grants(keys, tmp_path):
    kid = keys["public"].to_paserk_id()
    footer = ('{"kid": "%s"}' % kid).encode()
    # Another kind (implicit assertion of an attestation): refused.
    token = pyseto_grant(keys, footer, implicit=b"jitrun:attest:v1")
    proc = jitctl("grant", "show", "--public", str(keys["public_file"]), token, check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith("jitctl: signature NOT verified")
    assert proc.stdout == ""
    # Signed by a key we were not given: refused, naming the kid.
    other_secret, other_public = tmp_path / "o.key", tmp_path / "o.pub"
    jitctl("keygen", "--secret", str(other_secret), "--public", str(other_public))
    proc = jitctl("grant", "show", "--public", str(other_public), pyseto_grant(keys, footer), check=False)
    assert proc.returncode == 1
    assert kid in proc.stderr
    # Good signature, but not a grant a host could use (a claim of the wrong type): exit 1.
    proc = jitctl(
        "grant", "show", "--public", str(keys["public_file"]), pyseto_grant(keys, footer, hosts="web-1"),
        check=False,
    )
    assert proc.returncode == 1
    assert "not a valid grant" in proc.stderr and "hosts" in proc.stderr
    # Without --public: shown, but said to be unverified, exit 0.
    proc = jitctl("grant", "show", pyseto_grant(keys, footer))
    assert "signature: NOT verified (no --public key given)" in proc.stdout
