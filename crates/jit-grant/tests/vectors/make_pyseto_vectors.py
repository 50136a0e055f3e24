"""Writes pyseto.json: an attestation and a revocation list signed by pyseto (an independent
PASETO implementation), as another implementation would write them: footer {"kid": "…"} with a
space, indented payload in another key order, times with offsets and fractions, an unknown field.
crates/jit-grant/tests/interop.rs verifies them. Run: python3 make_pyseto_vectors.py
"""
import json
from pathlib import Path

import pyseto
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pyseto import Key

seed = bytes(range(1, 33))  # a fixed test key, public knowledge: never use it elsewhere
pem = Ed25519PrivateKey.from_private_bytes(seed).private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
secret = Key.new(4, "public", pem)
pub_pem = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
public = Key.new(4, "public", pub_pem)
kid = public.to_paserk_id()
footer = ('{"kid": "%s"}' % kid).encode()

attestation = {
    "body_sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "path": "/v1/requests",
    "method": "GET",
    "jti": "00112233445566778899aabbccddeeff",
    "exp": "2025-06-15T17:07:40+02:00",
    "iat": "2025-06-15T15:06:40.250Z",
    "host": "web-3",
    "groups": ["alice", "netops", "oncall"],
    "uid": 1000,
    "sub": "alice",
    "v": 1,
    "x-extension": {"ignored": True},
}
revocations = {
    "revoked": [
        {"reason": "left the team", "at": "2025-06-15T15:00:00Z", "exp": "2025-06-15T18:00:00+02:00",
         "jti": "01JXAMPLE0000000000000000A"},
    ],
    "seq": 7,
    "iat": "2025-06-15T15:06:40Z",
    "iss": "pyseto-broker",
}
out = {
    "public": public.to_paserk(),
    "kid": kid,
    "attestation": pyseto.encode(secret, json.dumps(attestation, indent=2).encode(), footer=footer,
                                 implicit_assertion=b"jitrun:attest:v1").decode(),
    "revocations": pyseto.encode(secret, json.dumps(revocations, indent=2).encode(), footer=footer,
                                 implicit_assertion=b"jitrun:revocations:v1").decode(),
}
Path(__file__).with_name("pyseto.json").write_text(json.dumps(out, indent=2) + "\n")
