"""The command gets exactly rule ∩ grant, for each run_as mode, and nothing more — not even
through a setuid-root program it starts."""

import re

import pytest
from e2e_support import assert_denied, assert_ok, ids, status_of
from jitlab import cap_mask

STATUS = ["/usr/bin/cat", "/proc/self/status"]
FULL = (1 << 64) - 1


def check_caps(st, mask: int, ambient: bool):
    assert int(st["CapEff"], 16) == mask, st
    assert int(st["CapPrm"], 16) == mask, st
    assert int(st["CapBnd"], 16) == mask, st
    assert int(st["CapInh"], 16) & ~mask == 0, st  # holds nothing more
    if ambient:
        assert int(st["CapAmb"], 16) == mask, st
    else:
        assert int(st["CapAmb"], 16) & ~mask == 0, st
    assert st["NoNewPrivs"] == "1", st


def check_start_event(res, user, target: str, rule: str, caps: list[str], token: str):
    from jitlab import decode_token

    start = res.event("elevate.start")
    assert start.get("user.name") == user.name
    assert str(start.get("user.id")) == str(user.uid)
    assert start.get("user.target.name") == target
    assert start.get("jitrun.rule") == rule
    assert start.get("jitrun.grant.id") == decode_token(token)[0]["jti"]
    assert sorted(start.get("process.thread.capabilities.effective") or []) == sorted(caps)
    assert start.get("host.name") == "jitlab-host"
    assert start.get("jitrun.schema_version") == 1
    assert start.facility == 10  # authpriv
    end = res.event("elevate.end")
    assert end.get("jitrun.end_reason") == "exit"
    assert end.get("process.exit_code") == 0
    assert end.get("jitrun.session_id") == start.get("jitrun.session_id") is not None


def test_invoker_gets_exactly_net_raw(lab, world):
    a = world.alice
    token = lab.mint(a, "net-debug")
    res = assert_ok(lab.run_as_user(a, STATUS, grant=token))
    st = status_of(res)
    check_caps(st, cap_mask("CAP_NET_RAW"), ambient=True)
    assert ids(st["Uid"]) == [a.uid] * 4
    assert ids(st["Gid"]) == [a.gid] * 4
    assert set(ids(st["Groups"])) == a.gids()
    check_start_event(res, a, a.name, "net-debug", ["CAP_NET_RAW"], token)


def test_run_as_root_gets_uid0_with_only_dac_read_search(lab, world):
    a = world.alice
    token = lab.mint(a, "read-all")
    res = assert_ok(lab.run_as_user(a, STATUS, grant=token))
    st = status_of(res)
    check_caps(st, cap_mask("CAP_DAC_READ_SEARCH"), ambient=False)
    assert ids(st["Uid"]) == [0] * 4
    assert ids(st["Gid"]) == [0] * 4
    assert set(ids(st["Groups"])) <= {0}, "root run keeps the invoker's groups"
    check_start_event(res, a, "root", "read-all", ["CAP_DAC_READ_SEARCH"], token)


@pytest.mark.parametrize("with_u", [False, True], ids=["rule-run_as", "dash-u"])
def test_run_as_service_user_gets_its_identity_and_net_bind_service(lab, world, with_u):
    a, svc = world.alice, world.svc
    token = lab.mint(a, "svc-bind")
    res = assert_ok(lab.run_as_user(a, STATUS, grant=token, options=["-u", svc.name] if with_u else []))
    st = status_of(res)
    check_caps(st, cap_mask("CAP_NET_BIND_SERVICE"), ambient=True)
    assert ids(st["Uid"]) == [svc.uid] * 4
    assert ids(st["Gid"]) == [svc.gid] * 4
    assert set(ids(st["Groups"])) == svc.gids()  # initgroups of the service user, not alice's
    check_start_event(res, a, svc.name, "svc-bind", ["CAP_NET_BIND_SERVICE"], token)


def test_grant_narrows_rule_caps(lab, world):
    a = world.alice
    token = lab.mint(a, "net-admin", caps=["CAP_NET_RAW"])
    res = assert_ok(lab.run_as_user(a, STATUS, grant=token))
    check_caps(status_of(res), cap_mask("CAP_NET_RAW"), ambient=True)
    assert res.event("elevate.start").get("process.thread.capabilities.effective") == ["CAP_NET_RAW"]


def test_rule_caps_without_narrowing(lab, world):
    a = world.alice
    res = assert_ok(lab.run_as_user(a, STATUS, grant=lab.mint(a, "net-admin")))
    check_caps(status_of(res), cap_mask("CAP_NET_RAW", "CAP_NET_ADMIN"), ambient=True)


def test_group_member_is_allowed(lab, world):
    c = world.carol  # named by the rule only through the ops group
    res = assert_ok(lab.run_as_user(c, STATUS, grant=lab.mint(c, "net-debug")))
    st = status_of(res)
    check_caps(st, cap_mask("CAP_NET_RAW"), ambient=True)
    assert ids(st["Uid"]) == [c.uid] * 4


def _probe(res):
    m = re.search(r"uid=(\d+) euid=(\d+)", res.out)
    assert m, str(res)
    st = status_of(res)
    return int(m.group(1)), int(m.group(2)), st


def test_setuid_root_program_started_by_the_command_gains_nothing(lab, world):
    a, b = world.alice, world.bin
    res = assert_ok(lab.run_as_user(a, [f"{b}/launcher", f"{b}/probe"], grant=lab.mint(a, "net-debug")))
    uid, euid, st = _probe(res)
    assert (uid, euid) == (a.uid, a.uid), "the setuid bit took effect under jitrun"
    allowed = cap_mask("CAP_NET_RAW")
    assert int(st["CapEff"], 16) & ~allowed == 0, st
    assert int(st["CapPrm"], 16) & ~allowed == 0, st


def test_setuid_root_program_under_run_as_root_stays_within_the_set(lab, world):
    a, b = world.alice, world.bin
    res = assert_ok(lab.run_as_user(a, [f"{b}/launcher", f"{b}/probe"], grant=lab.mint(a, "read-all")))
    uid, euid, st = _probe(res)
    assert euid == 0
    allowed = cap_mask("CAP_DAC_READ_SEARCH")
    assert int(st["CapEff"], 16) & ~allowed == 0, "uid 0 regained capabilities (SECBIT_NOROOT missing?)"
    assert int(st["CapPrm"], 16) & ~allowed == 0, st


def test_sanity_probe_really_is_setuid_root(lab, world):
    """Guards the two tests above: outside jitrun the probe does become euid 0."""
    import subprocess

    out = subprocess.run(["setpriv", f"--reuid={world.alice.uid}", f"--regid={world.alice.gid}", "--clear-groups",
                          str(world.bin / "probe")], capture_output=True, text=True, check=True).stdout
    assert f"uid={world.alice.uid} euid=0" in out


@pytest.mark.parametrize("name", ["probe", "setgid-true", "fcap-true", "world-writable", "user-owned"])
def test_unsafe_target_is_refused(lab, world, name):
    a = world.alice
    rule = "net-debug" if name == "probe" else "plain"
    if name == "fcap-true":
        import shutil
        import subprocess

        if not shutil.which("getcap") or "cap_net_raw" not in subprocess.run(
                ["getcap", str(world.bin / name)], capture_output=True, text=True).stdout:
            pytest.fail("could not give the test file a file capability (setcap missing? make deps)")
    res = lab.run_as_user(a, [str(world.bin / name)], grant=lab.mint(a, rule))
    assert_denied(res, "command_unsafe")
