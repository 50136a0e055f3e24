"""Sealed break-glass grants on the host (docs/tokens.md, "Sealed grants"): valid for the
rule's `sealed_validity` (weeks) instead of `max_duration`, usable once on each host (the
`max_uses = 1` counter under /var/lib/jitrun/uses/, which is per host), and the command they
start still ends after the rule's `max_duration`. A rule without `sealed_validity` refuses
them. Every run is a `break_glass` event at alert severity.

"Another host" is what makes a host another: its own /var/lib/jitrun and its own settings
`host`, bound over the lab's in that run's mount namespace."""

from __future__ import annotations

import os
from pathlib import Path

from e2e_support import assert_denied, assert_ok
from jitlab import decode_token

TRUE = ["/usr/bin/true"]
OTHER_HOST = "jitlab-other"


def sealed_rule(world, name: str = "sealed-fix", validity: str | None = "30d", max_duration: str = "30m") -> str:
    lines = [f'[[rule]]\nname = "{name}"\nusers = ["{world.alice}"]',
             'commands = ["/usr/bin/true", "/usr/bin/sleep *"]', f'max_duration = "{max_duration}"',
             "min_approvals = 2"]
    if validity:
        lines.append(f'sealed_validity = "{validity}"')
    return "\n".join(lines) + "\n"


def use(lab, world, rule: str = "sealed-fix", validity: str | None = "30d", max_duration: str = "30m"):
    lab.set_policy(world.policy, dropins={"50-sealed.toml": sealed_rule(world, rule, validity, max_duration)})


def other_host(lab, tmp_path: Path) -> list[tuple[Path, str]]:
    """Binds that make a run another host: a fresh state directory and settings naming it."""
    state = tmp_path / "other-state"
    state.mkdir(mode=0o700)
    os.chown(state, 0, 0)
    os.chmod(tmp_path, 0o755)
    settings = tmp_path / "other-jitrun.toml"
    text = (lab.conf / "jitrun.toml").read_text().replace(f'host = "{lab.host}"', f'host = "{OTHER_HOST}"')
    assert OTHER_HOST in text
    settings.write_text(text)
    os.chown(settings, 0, 0)
    os.chmod(settings, 0o644)
    return [(state, "/var/lib/jitrun"), (settings, "/etc/jitrun/jitrun.toml")]


def test_a_sealed_grant_works_once_per_host_and_alerts(lab, world, tmp_path):
    a = world.alice
    use(lab, world)
    token = lab.mint(a, "sealed-fix", ttl="30d", hosts=[lab.host, OTHER_HOST], sealed=True)
    claims = decode_token(token)[0]
    assert claims["sealed"] is True and claims["break_glass"] is True and claims["max_uses"] == 1
    # A 30-day grant on a rule whose max_duration is 30m: accepted, as break-glass (no approvals).
    res = assert_ok(lab.run_as_user(a, TRUE, grant=token))
    alert = res.event("break_glass")
    assert alert.get("jitrun.grant.id") == claims["jti"], str(res)
    assert alert.severity == 1, str(res)  # alert
    # Used up on this host: a copy of the token cannot be replayed here.
    res = lab.run_as_user(a, TRUE, grant=token)
    deny = assert_denied(res, "grant_used_up")
    assert f"sealed grant {claims['jti']} was already used on this host" in res.err, str(res)
    assert deny.get("jitrun.rule") == "sealed-fix", str(res)
    # On another host (its own state, its own name) the same grant is still good, once.
    binds = other_host(lab, tmp_path)
    res = assert_ok(lab.run_as_user(a, TRUE, grant=token, binds=binds))
    assert res.event("elevate.start").get("host.name") == OTHER_HOST, str(res)
    assert_denied(lab.run_as_user(a, TRUE, grant=token, binds=binds), "grant_used_up")
    # The use counter is the host's own: one file per grant id, 1 use.
    counter = lab.state / "uses" / claims["jti"]
    assert int(counter.read_text()) == 1


def test_a_sealed_grant_past_its_validity_is_refused(lab, world):
    a = world.alice
    use(lab, world)
    # Sealed 20 minutes ago, valid for 10 (jitctl grant mint signs no grant already past).
    claims = lab.claims(a, "sealed-fix", ttl=600, start=-1200, sealed=True, break_glass=True, max_uses=1)
    token = lab.mint_with_pyseto(claims)
    res = lab.run_as_user(a, TRUE, grant=token)
    assert_denied(res, "grant_expired")
    # Nothing was counted: the refusal came before any use.
    assert not (lab.state / "uses" / decode_token(token)[0]["jti"]).exists()


def test_a_sealed_grant_longer_than_sealed_validity_is_refused(lab, world):
    a = world.alice
    use(lab, world, validity="7d")
    res = lab.run_as_user(a, TRUE, grant=lab.mint(a, "sealed-fix", ttl="8d", sealed=True))
    assert_denied(res, "duration")
    assert "sealed_validity 7d" in res.err, str(res)
    assert_ok(lab.run_as_user(a, TRUE, grant=lab.mint(a, "sealed-fix", ttl="7d", sealed=True)))


def test_a_rule_without_sealed_validity_refuses_sealed_grants(lab, world):
    a = world.alice
    use(lab, world, validity=None)
    # Even one that lasts no longer than max_duration.
    res = lab.run_as_user(a, TRUE, grant=lab.mint(a, "sealed-fix", ttl="10m", sealed=True))
    assert_denied(res, "duration")
    assert "sets no sealed_validity" in res.err, str(res)
    # An ordinary break-glass grant for the same rule is not affected.
    assert_ok(lab.run_as_user(a, TRUE, grant=lab.mint(a, "sealed-fix", ttl="10m", break_glass=True)))


def test_a_sealed_claim_without_single_use_break_glass_is_refused(lab, world):
    a = world.alice
    use(lab, world)
    for extra in ({"break_glass": True}, {"max_uses": 1}, {"break_glass": True, "max_uses": 3}):
        claims = lab.claims(a, "sealed-fix", ttl=3600, sealed=True, **extra)
        res = lab.run_as_user(a, TRUE, grant=lab.mint_with_pyseto(claims))
        assert_denied(res, "grant_invalid_claim")
        assert "single-use break-glass" in res.err, str(res)


def test_the_command_of_a_sealed_grant_ends_after_max_duration(lab, world):
    """The grant is valid for 30 days; the rule's max_duration (2s) ends the command."""
    a = world.alice
    use(lab, world, max_duration="2s")
    token = lab.mint(a, "sealed-fix", ttl="30d", sealed=True)
    # A timeout only to catch a hang: without the bound the command would sleep 10 minutes.
    res = lab.run_as_user(a, ["/usr/bin/sleep", "600"], grant=token, timeout=120)
    assert not res.timed_out, str(res)
    assert res.returncode == 143, str(res)  # SIGTERM at the bound
    end = res.event("elevate.end")
    assert end.get("jitrun.end_reason") == "expired", str(res)
    assert "sealed grant" in res.err and "max_duration" in res.err, str(res)
    # The grant itself is still valid (for other hosts); this host's single use is spent.
    assert_denied(lab.run_as_user(a, TRUE, grant=token), "grant_used_up")


def test_an_ordinary_grant_still_ends_at_its_exp(lab, world):
    """The bound applies to sealed grants only: a grant within max_duration runs until exp."""
    a = world.alice
    use(lab, world, max_duration="30m")
    token = lab.mint(a, "sealed-fix", ttl="2s", break_glass=True)
    res = lab.run_as_user(a, ["/usr/bin/sleep", "600"], grant=token, timeout=120)
    assert not res.timed_out and res.returncode == 143, str(res)
    assert res.event("elevate.end").get("jitrun.end_reason") == "expired", str(res)
    assert "expired at" in res.err and "sealed grant" not in res.err, str(res)
