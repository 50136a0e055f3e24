"""`jitrun attest` (docs/broker.md, "Attestation"): setuid, no network; signs with
/etc/jitrun/host.key (root, 0600 or stricter) who the caller is (real uid, passwd, groups),
the host, the time, a random jti, and the request binding it is handed; refuses bad input and
a loose or missing key; logs nothing."""

import hashlib
import json
import os
from datetime import datetime, timedelta, timezone

import pytest
from jitlab import ATTEST_IA

EMPTY = hashlib.sha256(b"").hexdigest()


def attest(lab, user, method="POST", path="/v1/requests", body_sha256=EMPTY, extra=()):
    return lab.run_jitrun(user, ["attest", "--method", method, "--path", path, "--body-sha256", body_sha256,
                                 *extra])


def verify(pub, token: str) -> dict:
    import pyseto

    key = pyseto.Key.from_paserk(pub.read_text().strip())
    decoded = pyseto.decode(key, token, implicit_assertion=ATTEST_IA)
    footer = json.loads(decoded.footer)
    assert footer == {"kid": key.to_paserk_id()}
    return json.loads(decoded.payload)


@pytest.fixture()
def host_key(lab):
    sec, pub = lab.install_host_key()
    yield pub
    (lab.conf / "host.key").unlink(missing_ok=True)


def test_attestation_says_who_where_and_what(lab, world, host_key):
    c = world.carol  # in the ops group
    body = hashlib.sha256(b'{"rule":"db"}').hexdigest()
    before = datetime.now(timezone.utc).replace(microsecond=0)
    res = attest(lab, c, body_sha256=body)
    assert res.returncode == 0, str(res)
    assert res.err == "" and res.events == [], str(res)  # not logged
    token = res.out.strip()
    assert token.startswith("v4.public.") and "\n" not in token
    p = verify(host_key, token)
    assert set(p) == {"v", "sub", "uid", "groups", "host", "iat", "exp", "jti", "method", "path", "body_sha256"}
    assert p["v"] == 1
    assert (p["sub"], p["uid"]) == (c.name, c.uid)
    assert p["groups"] == sorted({c.group, world.ops}), p
    assert p["host"] == lab.host
    iat = datetime.fromisoformat(p["iat"].replace("Z", "+00:00"))
    exp = datetime.fromisoformat(p["exp"].replace("Z", "+00:00"))
    assert before <= iat <= datetime.now(timezone.utc) and exp - iat == timedelta(seconds=60)
    assert len(p["jti"]) == 32 and int(p["jti"], 16) >= 0 and p["jti"] == p["jti"].lower()
    assert (p["method"], p["path"], p["body_sha256"]) == ("POST", "/v1/requests", body)
    # Every attestation has its own jti.
    again = verify(host_key, attest(lab, c, body_sha256=body).out.strip())
    assert again["jti"] != p["jti"]


def test_the_environment_does_not_change_the_identity(lab, world, host_key):
    a = world.alice
    res = lab.run_jitrun(a, ["attest", "--method", "GET", "--path", "/v1/grants", "--body-sha256", EMPTY],
                         env={"USER": "root", "LOGNAME": "root", "HOME": "/root", "HOSTNAME": "evil"})
    p = verify(host_key, res.out.strip())
    assert (p["sub"], p["uid"], p["host"]) == (a.name, a.uid, lab.host)


@pytest.mark.parametrize("args", [
    ["--method", "post", "--path", "/v1/requests", "--body-sha256", EMPTY],
    ["--method", "TRACE", "--path", "/v1/requests", "--body-sha256", EMPTY],
    ["--method", "GET", "--path", "/etc/shadow", "--body-sha256", EMPTY],
    ["--method", "GET", "--path", "/v1/requests?mine=true", "--body-sha256", EMPTY],
    ["--method", "GET", "--path", "/v1/x\x1b[31m", "--body-sha256", EMPTY],
    ["--method", "GET", "--path", "/v1/requests", "--body-sha256", EMPTY[:63]],
    ["--method", "GET", "--path", "/v1/requests", "--body-sha256", EMPTY.upper()],
    ["--method", "GET", "--path", "/v1/requests"],
    ["--method", "GET", "--path", "/v1/requests", "--body-sha256", EMPTY, "--grant", "x"],
])
def test_bad_input_is_a_usage_error(lab, world, host_key, args):
    res = lab.run_jitrun(world.alice, ["attest", *args])
    assert res.returncode == 2, str(res)
    assert res.out == "" and res.err.startswith("jitrun: attest: "), str(res)


def test_a_host_key_others_can_read_is_refused(lab, world):
    lab.install_host_key(mode=0o640)
    try:
        res = attest(lab, world.alice)
        assert res.returncode == 1 and res.out == "", str(res)
        assert "/etc/jitrun/host.key" in res.err and "mode 0640" in res.err and "chmod 0600" in res.err, res.err
        assert res.events == [], str(res)
        lab.install_host_key(mode=0o400)  # stricter is fine
        assert attest(lab, world.alice).returncode == 0
        key = lab.conf / "host.key"
        os.chown(key, world.alice.uid, 0)
        res = attest(lab, world.alice)
        assert res.returncode == 1 and f"owned by uid {world.alice.uid}" in res.err, str(res)
    finally:
        (lab.conf / "host.key").unlink(missing_ok=True)


def test_a_missing_or_broken_host_key_is_refused(lab, world):
    res = attest(lab, world.alice)
    assert res.returncode == 1 and "/etc/jitrun/host.key does not exist" in res.err, str(res)
    assert "jitctl host-key init" in res.err
    key = lab.conf / "host.key"
    key.write_text(lab.public_key.read_text())  # a public key is not a secret key
    os.chmod(key, 0o600)
    try:
        res = attest(lab, world.alice)
        assert res.returncode == 1 and "k4.secret" in res.err, str(res)
    finally:
        key.unlink()


def test_attest_only_as_the_first_word(lab, world, host_key):
    # `jitrun -- attest` runs a program called attest (none on the secure path), not the subcommand.
    res = lab.run_jitrun(world.alice, ["--", "attest", "--method", "GET"])
    assert res.returncode != 0 and "v4.public." not in res.out
    assert "elevate.deny" in res.actions(), str(res)
