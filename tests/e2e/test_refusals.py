"""Every refusal: exit 1, one `jitrun: ` line on stderr, an elevate.deny event with the
machine-readable deny_code, and the command never started."""

from e2e_support import assert_denied, assert_ok
from jitlab import tamper_token

STATUS = ["/usr/bin/cat", "/proc/self/status"]


def run_status(lab, user, token, **kw):
    return lab.run_as_user(user, STATUS, grant=token, **kw)


def test_wrong_user(lab, world):
    token = lab.mint(world.alice, "net-debug")
    assert_denied(run_status(lab, world.bob, token), "grant_wrong_user")


def test_wrong_uid(lab, world):
    a = world.alice
    token = lab.mint(a, "net-debug", uid=a.uid + 4242)
    assert_denied(run_status(lab, a, token), "grant_wrong_uid")


def test_right_uid_binding_is_accepted(lab, world):
    a = world.alice
    assert_ok(run_status(lab, a, lab.mint(a, "net-debug", uid=a.uid)))


def test_wrong_group(lab, world):
    d = world.dave  # in a group no rule names; the grant names a rule for other people
    assert_denied(run_status(lab, d, lab.mint(d, "net-debug")), "grant_rule_mismatch")


def test_no_rule_at_all(lab, world):
    assert_denied(run_status(lab, world.bob, None), "no_rule")


def test_grant_for_another_host(lab, world):
    a = world.alice
    token = lab.mint(a, "net-debug", hosts=["db-*", "other-host"])
    assert_denied(run_status(lab, a, token), "grant_wrong_host")


def test_rule_for_other_hosts_only(lab, world):
    # erin has standing access to /usr/bin/true, but only on elsewhere-* hosts
    assert_denied(lab.run_as_user(world.erin, ["/usr/bin/true"]), "host_not_allowed")


def test_command_not_in_any_rule(lab, world):
    assert_denied(lab.run_as_user(world.alice, ["/usr/bin/uname", "-a"]), "command_not_allowed")


def test_command_not_in_the_grants_rule(lab, world):
    a = world.alice
    res = lab.run_as_user(a, ["/usr/bin/cat", "/etc/hostname"], grant=lab.mint(a, "net-debug"))
    assert_denied(res, "grant_rule_mismatch")


def test_rule_needs_a_grant(lab, world):
    assert_denied(run_status(lab, world.alice, None), "grant_required")


def test_standing_access_needs_no_grant(lab, world):
    res = assert_ok(lab.run_as_user(world.alice, ["/usr/bin/id"]))
    assert res.out.startswith(f"uid={world.alice.uid}(")
    assert res.event("elevate.start").get("jitrun.rule") == "standing"


def test_grant_rule_unknown(lab, world):
    a = world.alice
    assert_denied(run_status(lab, a, lab.mint(a, "no-such-rule")), "grant_rule_unknown")


def test_expired(lab, world):
    a = world.alice
    token = lab.mint_with_pyseto(lab.claims(a, "net-debug", start=-600, ttl=300))
    assert_denied(run_status(lab, a, token), "grant_expired")


def test_not_yet_valid(lab, world):
    a = world.alice
    token = lab.mint(a, "net-debug", not_before="+10m", ttl="5m")
    assert_denied(run_status(lab, a, token), "grant_not_yet_valid")


def test_forged_claims_fail_the_signature(lab, world):
    a = world.alice
    token = lab.mint(a, "net-debug", caps=["CAP_NET_RAW"])

    def widen(c):
        c["caps"] = ["CAP_NET_RAW", "CAP_SYS_ADMIN"]

    assert_denied(run_status(lab, a, tamper_token(token, widen)), "grant_bad_signature")


def test_forged_signature_byte(lab, world):
    a = world.alice
    token = lab.mint(a, "net-debug")
    parts = token.split(".")
    # flip one character in the middle of payload||signature (stays valid base64url)
    mid = len(parts[2]) - 40
    parts[2] = parts[2][:mid] + ("A" if parts[2][mid] != "A" else "B") + parts[2][mid + 1:]
    assert_denied(run_status(lab, a, ".".join(parts)), "grant_bad_signature")


def test_unknown_key(lab, world):
    a = world.alice
    token = lab.mint(a, "net-debug", key=world.untrusted_secret)
    assert_denied(run_status(lab, a, token), "grant_unknown_key")


def test_unknown_key_claiming_a_trusted_kid(lab, world):
    """A token signed by an untrusted key but carrying the trusted key's kid."""
    a = world.alice
    token = lab.mint_with_pyseto(lab.claims(a, "net-debug"), secret=world.untrusted_secret,
                                 public=world.untrusted_public, footer={"kid": lab.kid()})
    assert_denied(run_status(lab, a, token), "grant_bad_signature")


def test_wrong_implicit_assertion(lab, world):
    a = world.alice
    token = lab.mint_with_pyseto(lab.claims(a, "net-debug"), implicit_assertion=b"jitrun:attest:v1")
    assert_denied(run_status(lab, a, token), "grant_bad_signature")


def test_malformed_grant_file(lab, world):
    a = world.alice
    assert_denied(run_status(lab, a, "v4.public.this-is-not-a-token"), "grant_malformed")


def test_claim_of_wrong_type(lab, world):
    a = world.alice
    token = lab.mint_with_pyseto(lab.claims(a, "net-debug", caps="CAP_NET_RAW"))  # a string, not an array
    assert_denied(run_status(lab, a, token), "grant_invalid_claim")


def test_caps_beyond_the_rule(lab, world):
    a = world.alice
    token = lab.mint(a, "net-debug", caps=["CAP_NET_RAW", "CAP_SYS_ADMIN"])
    assert_denied(run_status(lab, a, token), "grant_caps")


def test_run_as_beyond_the_rule_in_grant(lab, world):
    a = world.alice
    token = lab.mint(a, "net-debug", run_as="root")
    assert_denied(run_status(lab, a, token), "run_as")


def test_run_as_beyond_the_rule_with_dash_u(lab, world):
    a = world.alice
    assert_denied(run_status(lab, a, lab.mint(a, "net-debug"), options=["-u", "root"]), "run_as")


def test_lifetime_beyond_max_duration(lab, world):
    a = world.alice
    token = lab.mint(a, "net-debug", ttl="45m")  # the rule allows 30m
    assert_denied(run_status(lab, a, token), "duration")


def test_grant_cmd_narrowing_excludes_other_commands(lab, world):
    a = world.alice
    token = lab.mint(a, "plain", cmd="/usr/bin/sleep 0")
    assert_denied(lab.run_as_user(a, ["/usr/bin/sleep", "1"], grant=token), "grant_command")
    assert_ok(lab.run_as_user(a, ["/usr/bin/sleep", "0"], grant=token))


def test_too_few_approvals(lab, world):
    a = world.alice
    token = lab.mint(a, "approved", approvers=[a.name])  # the requester never counts
    assert_denied(lab.run_as_user(a, ["/usr/bin/true"], grant=token), "approvals")


def test_enough_approvals(lab, world):
    a = world.alice
    token = lab.mint(a, "approved", approvers=[world.bob.name], ticket="OPS-1", reason="debugging")
    res = assert_ok(lab.run_as_user(a, ["/usr/bin/true"], grant=token))
    start = res.event("elevate.start")
    assert start.get("jitrun.rule") == "approved"
    assert start.get("jitrun.grant.approvers") == [world.bob.name]
    assert start.get("jitrun.grant.ticket") == "OPS-1"


def test_denial_does_not_run_the_command(lab, world):
    a = world.alice
    marker = a.home / "ran-marker"
    if marker.exists():
        marker.unlink()
    res = lab.run_as_user(a, ["/usr/bin/sh", "-c", f"echo ran > {marker}"], grant=lab.mint(a, "net-debug"))
    assert_denied(res, "grant_rule_mismatch")
    assert not marker.exists()


def test_rule_asking_for_authentication_never_runs_unauthenticated(lab, world):
    """A rule with authenticate = true never runs its command unauthenticated: here the host's
    PAM stack asks for a password (pam_unix) and there is no terminal to ask on, so it is
    refused with a message that says why (tests/e2e/test_pam.py covers PAM itself)."""
    a = world.alice
    lab.set_policy(world.policy, dropins={"20-auth.toml": f'[[rule]]\nname = "needs-auth"\nusers = ["{a}"]\ncommands = ["/usr/bin/hostname"]\ngrant = "none"\nauthenticate = true\n'})
    res = lab.run_as_user(a, ["/usr/bin/hostname"])
    deny = assert_denied(res, "authenticate")
    assert deny.get("jitrun.rule") == "needs-auth"
    assert "authenticate" in res.err and "PAM service jitrun" in res.err, str(res)
    assert "from a terminal" in res.err, str(res)
