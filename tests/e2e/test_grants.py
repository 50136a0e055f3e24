"""Where grants come from (--grant FILE, --grant -, the grant store), what `jitrun -l` shows,
use counters, reading user-named files with the user's own identity, and interoperability
with an independent PASETO implementation (pyseto)."""

import os
import re
from pathlib import Path

from e2e_support import assert_denied, assert_ok, status_of
from jitlab import cap_mask, decode_token

STATUS = ["/usr/bin/cat", "/proc/self/status"]


def jti(token: str) -> str:
    return decode_token(token)[0]["jti"]


def test_grant_from_stdin(lab, world):
    a = world.alice
    token = lab.mint(a, "net-debug")
    res = assert_ok(lab.run_as_user(a, STATUS, grant="-", stdin=token + "\n"))
    assert int(status_of(res)["CapEff"], 16) == cap_mask("CAP_NET_RAW")
    assert res.event("elevate.start").get("jitrun.grant.id") == jti(token)


def test_grant_store_is_used_without_grant_option(lab, world):
    a = world.alice
    token = lab.mint(a, "net-debug")
    lab.store_grant(a, token, name="whatever-name.txt")  # any name
    lab.store_grant(a, "this is not a grant", name="junk")  # skipped
    res = assert_ok(lab.run_as_user(a, STATUS))
    assert int(status_of(res)["CapEff"], 16) == cap_mask("CAP_NET_RAW")
    assert res.event("elevate.start").get("jitrun.grant.id") == jti(token)


def test_grant_store_picks_the_grant_that_fits(lab, world):
    a = world.alice
    expired = lab.mint_with_pyseto(lab.claims(a, "net-debug", start=-600, ttl=60))
    other_rule = lab.mint(a, "plain")  # valid, but its rule does not allow this command
    good = lab.mint(a, "net-debug")
    for t in (expired, other_rule, good):
        lab.store_grant(a, t)
    res = assert_ok(lab.run_as_user(a, STATUS))
    assert res.event("elevate.start").get("jitrun.grant.id") == jti(good)
    assert int(status_of(res)["CapEff"], 16) == cap_mask("CAP_NET_RAW")


def _shadow_lines() -> list[str]:
    return [l for l in Path("/etc/shadow").read_text().splitlines() if len(l) > 8]


def _assert_no_shadow(res):
    blob = res.stdout + res.stderr + b"".join(e.raw for e in res.events)
    for line in _shadow_lines():
        assert line.encode() not in blob, "content of /etc/shadow leaked"
        secret = line.split(":")[1]
        if len(secret) > 3:  # a real hash, not '*' or '!'
            assert secret.encode() not in blob, "a password hash from /etc/shadow leaked"


def test_grant_symlink_to_shadow_is_refused(lab, world):
    a = world.alice
    link = a.home / "evil-grant"
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink("/etc/shadow", link)
    os.lchown(link, a.uid, a.gid)
    res = lab.run_as_user(a, STATUS, grant=Path(link))
    assert_denied(res, "grant_unreadable")
    _assert_no_shadow(res)


def test_grant_file_the_user_cannot_read_is_refused(lab, world):
    a = world.alice
    # root-owned 0600 file in a place alice can reach: jitrun (euid 0) could read it, alice cannot
    f = lab.user_file(a, "rootonly-grant", lab.mint(a, "net-debug"))
    os.chown(f, 0, 0)
    os.chmod(f, 0o600)
    assert_denied(lab.run_as_user(a, STATUS, grant=f), "grant_unreadable")


def test_grant_store_symlink_to_shadow_is_not_followed(lab, world):
    a = world.alice
    d = lab.grant_dir(a)
    lab.store_grant(a, "placeholder", name="placeholder")
    link = d / "shadow-link"
    os.symlink("/etc/shadow", link)
    os.lchown(link, a.uid, a.gid)
    res = lab.run_as_user(a, STATUS)
    assert_denied(res, "grant_required")
    _assert_no_shadow(res)
    lres = lab.run_as_user(a, None, options=["-l"])
    assert lres.returncode == 0, str(lres)
    _assert_no_shadow(lres)


def test_max_uses(lab, world):
    a = world.alice
    token = lab.mint(a, "plain", max_uses=2)
    for _ in range(2):
        assert_ok(lab.run_as_user(a, ["/usr/bin/true"], grant=token))
    assert_denied(lab.run_as_user(a, ["/usr/bin/true"], grant=token), "grant_used_up")


def test_list_shows_rules_and_grants(lab, world):
    a = world.alice
    token = lab.mint(a, "net-debug", ttl="20m")
    lab.store_grant(a, token)
    res = lab.run_as_user(a, None, options=["-l"])
    assert res.returncode == 0, str(res)
    text = res.out + res.err
    for rule in ("net-debug", "read-all", "svc-bind", "plain", "standing"):
        assert rule in text, str(res)
    assert "elsewhere" not in text  # erin's rule is not alice's
    assert jti(token) in text, str(res)
    # time left, in some human form: "19m58s", "19 min", "0:19:58"...
    assert re.search(r"(?<!\d)(19|20) ?(m(?![a-z])|min|:\d\d)", text), str(res)


def test_list_for_user_without_rules(lab, world):
    res = lab.run_as_user(world.bob, None, options=["-l"])
    assert res.returncode == 0, str(res)
    assert (res.out + res.err).strip(), "jitrun -l says nothing to a user without rules"
    assert "net-debug" not in res.out + res.err


def test_pyseto_minted_grant_is_accepted(lab, world):
    """Interop: pyseto's footer is spaced (`{"kid": "..."}`), its claims are in another order
    with whitespace, and carry an unknown claim; jitrun must accept it."""
    a = world.alice
    claims = lab.claims(a, "net-debug", x_unknown_claim={"nested": True})
    claims = dict(reversed(list(claims.items())))
    token = lab.mint_with_pyseto(claims)
    assert b'{"kid": "' in decode_token(token)[2]
    res = assert_ok(lab.run_as_user(a, STATUS, grant=token))
    assert int(status_of(res)["CapEff"], 16) == cap_mask("CAP_NET_RAW")
    assert res.event("elevate.start").get("jitrun.grant.id") == claims["jti"]


def test_jitctl_grant_verifies_with_pyseto(lab, world):
    import json

    import pyseto

    token = lab.mint(world.alice, "net-debug", caps=["CAP_NET_RAW"], approvers=[world.bob.name])
    pk = pyseto.Key.from_paserk(Path(lab.public_key).read_text().strip())
    decoded = pyseto.decode(pk, token, implicit_assertion=b"jitrun:grant:v1")
    claims = json.loads(decoded.payload)
    assert claims["sub"] == world.alice.name and claims["rule"] == "net-debug"
    assert claims["caps"] == ["CAP_NET_RAW"] and claims["approvers"] == [world.bob.name]
    assert json.loads(decoded.footer)["kid"] == pk.to_paserk_id()


def test_jitctl_grant_show(lab, world):
    token = lab.mint(world.alice, "net-debug")
    ok = lab.jitctl("grant", "show", "--public", lab.public_key, token)
    assert world.alice.name in ok.stdout.decode() and "net-debug" in ok.stdout.decode()
    bad = lab.jitctl("grant", "show", "--public", world.untrusted_public, token, check=False)
    assert bad.returncode != 0


def test_tiny_file_size_limit_cannot_reset_the_use_counter(lab, world):
    """A caller's RLIMIT_FSIZE of one byte must not kill jitrun half-way through rewriting the
    max_uses counter (which would read as 0 uses afterwards): the run is refused cleanly,
    nothing runs, and the grant still starts exactly max_uses commands."""
    a = world.alice
    token = lab.mint(a, "plain", max_uses=2)
    assert_ok(lab.run_as_user(a, ["/usr/bin/true"], grant=token))
    res = lab.run_as_user(a, ["/usr/bin/true"], grant=token, limits={"fsize": "1:1"})
    assert res.returncode == 1, str(res)  # a refusal, not death by SIGXFSZ (153)
    assert len(res.err.strip().splitlines()) == 1 and res.err.startswith("jitrun: "), str(res)
    assert "elevate.start" not in res.actions(), str(res)
    assert_ok(lab.run_as_user(a, ["/usr/bin/true"], grant=token))
    assert_denied(lab.run_as_user(a, ["/usr/bin/true"], grant=token), "grant_used_up")
