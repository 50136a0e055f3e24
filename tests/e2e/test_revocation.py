"""Revocation on the host (docs/broker.md): the signed list in /var/lib/jitrun/revocations
refuses grants on it (`revoked`), rules with `require_fresh_revocations` refuse grants while
the list is missing, invalid or older than `revocations.max_age` (`revocations_stale`), and
the watchdog ends a running command once its grant appears on the list (`revoked`)."""

import time
from datetime import datetime, timedelta, timezone

from e2e_support import assert_denied, assert_ok
from jitlab import decode_token

TRUE = ["/usr/bin/true"]


def fresh_rule(world, name="fresh") -> str:
    return (f'[[rule]]\nname = "{name}"\nusers = ["{world.alice}"]\n'
            f'commands = ["/usr/bin/true", "/usr/bin/sleep *"]\nrequire_fresh_revocations = true\n')


def _wait(pred, what: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_a_revoked_grant_is_refused_with_when_why_and_what_next(lab, world):
    a = world.alice
    token = lab.mint(a, "plain")
    other = lab.mint(a, "plain")
    at = datetime.now(timezone.utc) - timedelta(minutes=5)
    lab.write_revocations([lab.revocation_entry(token, reason="laptop stolen", at=at)])
    res = lab.run_as_user(a, TRUE, grant=token)
    deny = assert_denied(res, "revoked")
    jti = decode_token(token)[0]["jti"]
    for part in (f"grant {jti} was revoked", at.strftime("%Y-%m-%dT%H:%M:%SZ"), "laptop stolen",
                 "jitctl request plain"):
        assert part in res.err, res.err
    assert deny.get("jitrun.rule") == "plain"
    # Another grant of the same rule is not affected.
    assert_ok(lab.run_as_user(a, TRUE, grant=other))


def test_a_revoked_grant_in_the_store_is_reported(lab, world):
    a = world.alice
    token = lab.mint(a, "plain")
    lab.store_grant(a, token)
    lab.write_revocations([lab.revocation_entry(token)])
    res = lab.run_as_user(a, TRUE)
    assert_denied(res, "revoked")


def test_a_list_that_does_not_verify_revokes_nothing_but_is_not_fresh(lab, world):
    a = world.alice
    token = lab.mint(a, "plain")
    lab.set_policy(world.policy, dropins={"50-fresh.toml": fresh_rule(world)})
    # Signed by a key this host does not trust: it cannot revoke anything...
    lab.write_revocations([lab.revocation_entry(token)], secret=world.untrusted_secret)
    assert_ok(lab.run_as_user(a, TRUE, grant=token))
    # ...and a rule that needs a fresh list refuses.
    res = lab.run_as_user(a, TRUE, grant=lab.mint(a, "fresh"))
    assert_denied(res, "revocations_stale")
    assert "unknown key" in res.err, res.err
    # A grant-kind token is not a revocation list.
    lab.write_revocations(raw=(lab.mint(a, "plain") + "\n").encode())
    assert_denied(lab.run_as_user(a, TRUE, grant=lab.mint(a, "fresh")), "revocations_stale")


def test_require_fresh_revocations(lab, world):
    a = world.alice
    lab.set_policy(world.policy, dropins={"50-fresh.toml": fresh_rule(world)})
    # Missing list: refused, naming the file and the fix.
    res = lab.run_as_user(a, TRUE, grant=lab.mint(a, "fresh"))
    deny = assert_denied(res, "revocations_stale")
    assert "/var/lib/jitrun/revocations does not exist" in res.err and "jitctl revocations sync" in res.err
    assert deny.get("jitrun.rule") == "fresh"
    # Rules that do not ask are not affected.
    assert_ok(lab.run_as_user(a, TRUE, grant=lab.mint(a, "plain")))
    # A valid list without max_age: fresh whatever its age.
    lab.write_revocations(iat=datetime.now(timezone.utc) - timedelta(days=2))
    assert_ok(lab.run_as_user(a, TRUE, grant=lab.mint(a, "fresh")))
    # With max_age: a list older than it is stale; a newer one is fine.
    settings = (lab.conf / "jitrun.toml").read_text() + '\n[revocations]\nmax_age = "10m"\n'
    lab.write_settings(text=settings)
    res = lab.run_as_user(a, TRUE, grant=lab.mint(a, "fresh"))
    assert_denied(res, "revocations_stale")
    assert "older than revocations.max_age 10m" in res.err, res.err
    lab.write_revocations(seq=2, iat=datetime.now(timezone.utc) - timedelta(minutes=1))
    assert_ok(lab.run_as_user(a, TRUE, grant=lab.mint(a, "fresh")))


def test_revoking_a_running_command_ends_it(lab, world):
    a = world.alice
    token = lab.mint(a, "plain", ttl="10m")
    lab.write_revocations([], seq=1)
    grant = lab.user_file(a, ".jitlab/revoke-grant", token + "\n")
    with lab.spawn_as_user(a, [str(lab.jitrun), "--grant", str(grant), "--", "/usr/bin/sleep", "600"]) as run:
        _wait(lambda: "elevate.start" in [e.action for e in run.events()], "elevate.start")
        lab.write_revocations([lab.revocation_entry(token, reason="incident over")], seq=2)
        rc = run.wait(timeout=60)
        assert rc == 128 + 15, str(run)
        ends = [e for e in run.events() if e.action == "elevate.end"]
        assert len(ends) == 1, str(run)
        assert ends[0].get("jitrun.end_reason") == "revoked", str(run)
        assert ends[0].get("jitrun.signal") == "SIGTERM", str(run)
        out = run.output.decode()
        assert "was revoked" in out and "incident over" in out and "jitctl request plain" in out, out


def test_list_marks_a_revoked_grant(lab, world):
    a = world.alice
    token, other = lab.mint(a, "plain"), lab.mint(a, "plain")
    lab.store_grant(a, token, name="revoked-one")
    lab.store_grant(a, other, name="fine-one")
    lab.write_revocations([lab.revocation_entry(token, reason="rotated")])
    res = lab.run_as_user(a, None, options=["-l"])
    assert res.returncode == 0, str(res)
    lines = {l.split(":")[0].strip(): l for l in res.out.splitlines() if l.startswith("  ")}
    assert "not usable now (revoked)" in lines["revoked-one"] and "rotated" in lines["revoked-one"], res.out
    assert "left" in lines["fine-one"] and "revoked" not in lines["fine-one"], res.out


def test_a_tiny_nofile_limit_does_not_hide_the_revocation_list(lab, world):
    """Reading the list needs descriptors; a caller's RLIMIT_NOFILE must not make jitrun or its
    watchdog see "no list" (fail open)."""
    a = world.alice
    for nofile in ("9:9", "6:6"):
        token = lab.mint(a, "plain")
        lab.write_revocations([lab.revocation_entry(token)])
        res = lab.run_as_user(a, TRUE, grant=token, limits={"nofile": nofile})
        assert res.returncode == 1 and "elevate.start" not in res.actions(), str(res)
        # Refused as revoked, or because the list could not be read: never "no list".
        codes = [e.get("jitrun.deny_code") for e in res.events if e.action in ("elevate.deny", "policy.error")]
        assert codes and codes[0] in ("revoked", "resource_limit"), str(res)
        lab.clear_revocations()
    # While running: the watchdog still reads the list.
    token = lab.mint(a, "plain", ttl="10m")
    grant = lab.user_file(a, ".jitlab/nofile-grant", token + "\n")
    argv = ["/usr/bin/prlimit", "--nofile=9:9", "--", str(lab.jitrun), "--grant", str(grant), "--",
            "/usr/bin/sleep", "600"]
    with lab.spawn_as_user(a, argv) as run:
        _wait(lambda: "elevate.start" in [e.action for e in run.events()], "elevate.start")
        lab.write_revocations([lab.revocation_entry(token)])
        assert run.wait(timeout=60) is not None, str(run)
        ends = [e for e in run.events() if e.action == "elevate.end"]
        assert len(ends) == 1 and ends[0].get("jitrun.end_reason") == "revoked", str(run)
