"""Audit framings, fail-closed auditing, configuration and trust failures, and the plain CLI."""

import json
import os
import re

import pytest
from e2e_support import assert_ok

STATUS = ["/usr/bin/cat", "/proc/self/status"]
RAN = ["/usr/bin/sh", "-c", "echo RAN"]


def test_cee_framing_header(lab, world):
    a = world.alice
    res = assert_ok(lab.run_as_user(a, ["/usr/bin/true"], grant=lab.mint(a, "plain")))
    for e in res.events:
        assert e.framing == "cee", e
        assert e.app == "jitrun"
        assert e.facility == 10  # authpriv
        assert e.get("jitrun.schema_version") == 1
    assert res.actions() == ["elevate.start", "elevate.end"], str(res)
    start = res.event("elevate.start")
    assert start.get("event.outcome") == "success"
    assert start.get("process.executable") == "/usr/bin/true"
    assert isinstance(start.get("process.pid"), int)
    assert start.severity == 5  # notice
    deny = lab.run_as_user(a, ["/usr/bin/uname"]).event("elevate.deny")
    assert deny.severity == 4  # warning
    assert deny.get("jitrun.deny_reason")


@pytest.mark.parametrize("sd_id", [None, "jitlab@99999"], ids=["default-sd-id", "custom-sd-id"])
def test_rfc5424_framing(lab, world, sd_id):
    a = world.alice
    if sd_id:
        lab.write_settings(framing="rfc5424", sd_id=sd_id)
    else:
        lab.write_settings(framing="rfc5424", sd_id=None)  # key absent: default jitrun@32473
    res = assert_ok(lab.run_as_user(a, ["/usr/bin/true", "two words", "q\"uote]"], grant=lab.mint(a, "plain")))
    start = res.event("elevate.start")
    assert start.framing == "rfc5424", start
    assert start.msgid == "elevate.start"
    assert start.app == "jitrun" and start.hostname == "jitlab-host"
    assert start.procid.isdigit()
    assert start.facility == 10
    assert (sd_id or "jitrun@32473") in start.sd, start.sd
    p = start.sd[sd_id or "jitrun@32473"]
    assert p.get("event.action") == "elevate.start"
    assert p.get("user.name") == a.name
    assert p.get("jitrun.rule") == "plain"
    # argv: one JSON array in one SD-PARAM (after undoing the SD escapes of " \\ ])
    assert json.loads(p["process.args"])[1:] == ["two words", 'q"uote]'], p
    assert p.get("process.thread.caps.effective") == "[]", p  # the alias of the long name
    assert not any(c < 0x20 for c in start.raw)
    end = res.event("elevate.end")
    assert end.msgid == "elevate.end" and end.params.get("jitrun.end_reason") == "exit"
    try:
        from syslog_rfc5424_parser import SyslogMessage
    except ImportError:
        return
    m = SyslogMessage.parse(start.raw.decode())
    assert m.msgid == "elevate.start" and m.appname == "jitrun"


def test_huge_argv_is_shortened_not_dropped(lab, world):
    a = world.alice
    big = ["x" * 3000 + str(i) for i in range(10)]
    res = assert_ok(lab.run_as_user(a, ["/usr/bin/true", *big], grant=lab.mint(a, "plain")))
    start = res.event("elevate.start")
    assert len(start.raw) <= 8192, len(start.raw)
    assert start.get("jitrun.args_truncated") is True
    assert start.get("process.args")[0] == "/usr/bin/true"


def test_audit_fail_closed_runs_nothing(lab, world):
    a = world.alice
    lab.write_settings(socket=str(lab.tmp / "audit" / "no-such-socket"))
    res = lab.run_as_user(a, RAN, grant=lab.mint(a, "plain"))
    assert res.returncode == 1, str(res)
    assert "RAN" not in res.out
    assert len(res.err_lines) == 1 and res.err_lines[0].startswith("jitrun: "), str(res)


def test_audit_fail_open_when_configured(lab, world):
    a = world.alice
    lab.write_settings(socket=str(lab.tmp / "audit" / "no-such-socket"), fail_closed=False)
    res = lab.run_as_user(a, RAN, grant=lab.mint(a, "plain"))
    assert res.returncode == 0, str(res)
    assert res.out == "RAN\n"


def test_broken_policy_is_a_refusal_and_policy_error(lab, world):
    a = world.alice
    token = lab.mint(a, "plain")
    lab.set_policy(world.policy + '\n[[rule]]\nname = "typo"\nusers = ["x"]\ncommands = ["/usr/bin/true"]\ncapabilites = []\n')
    res = lab.run_as_user(a, RAN, grant=token)
    assert res.returncode == 1, str(res)
    assert len(res.err_lines) == 1 and res.err_lines[0].startswith("jitrun: "), str(res)
    assert "capabilites" in res.err and "policy.toml" in res.err  # names the file and the field
    assert "RAN" not in res.out
    assert "policy.error" in res.actions(), str(res)


def test_duplicate_rule_in_dropin(lab, world):
    a = world.alice
    token = lab.mint(a, "plain")
    lab.set_policy(world.policy, dropins={"50-dup.toml": '[[rule]]\nname = "plain"\nusers = ["x"]\ncommands = ["/usr/bin/true"]\n'})
    res = lab.run_as_user(a, RAN, grant=token)
    assert res.returncode == 1 and "RAN" not in res.out, str(res)
    assert "50-dup.toml" in res.err, str(res)


def test_dropin_rule_is_loaded(lab, world):
    a = world.alice
    lab.set_policy(world.policy, dropins={"10-extra.toml": f'[[rule]]\nname = "extra"\nusers = ["{a}"]\ncommands = ["/usr/bin/hostname"]\ngrant = "none"\n'})
    res = assert_ok(lab.run_as_user(a, ["/usr/bin/hostname"]))
    assert res.event("elevate.start").get("jitrun.rule") == "extra"


def test_broken_settings_is_a_refusal(lab, world):
    a = world.alice
    token = lab.mint(a, "plain")
    lab.write_settings(text='host = "jitlab-host"\nkill_grace = "soon"\n')
    res = lab.run_as_user(a, RAN, grant=token)
    assert res.returncode == 1 and "RAN" not in res.out, str(res)
    assert len(res.err_lines) == 1 and res.err_lines[0].startswith("jitrun: "), str(res)
    assert "jitrun.toml" in res.err


def _restore_mode(path, mode):
    os.chmod(path, mode)


@pytest.mark.parametrize("case", ["policy-group-writable", "policy-not-root", "policy-symlink",
                                  "dropin-world-writable", "key-not-root", "confdir-group-writable"])
def test_untrusted_config_files_are_refused(lab, world, case):
    a = world.alice
    token = lab.mint(a, "plain")
    conf = lab.conf
    named = "policy.toml"
    if case == "policy-group-writable":
        os.chmod(conf / "policy.toml", 0o664)
    elif case == "policy-not-root":
        os.chown(conf / "policy.toml", a.uid, a.gid)
    elif case == "policy-symlink":
        real = conf / "policy.d" / "real.toml.disabled"
        os.replace(conf / "policy.toml", real)
        os.symlink(real, conf / "policy.toml")
    elif case == "dropin-world-writable":
        lab.set_policy(world.policy, dropins={"20-x.toml": "# empty\n"})
        os.chmod(conf / "policy.d" / "20-x.toml", 0o666)
        named = "20-x.toml"
    elif case == "key-not-root":
        os.chown(conf / "keys.d" / "test.paserk", a.uid, a.gid)
        named = "test.paserk"
    elif case == "confdir-group-writable":
        os.chmod(conf, 0o775)
        named = "/etc/jitrun"
    try:
        res = lab.run_as_user(a, RAN, grant=token)
    finally:
        os.chmod(conf, 0o755)
        if (conf / "policy.toml").is_symlink():
            (conf / "policy.toml").unlink()
        os.chown(conf / "keys.d" / "test.paserk", 0, 0)
    assert res.returncode == 1 and "RAN" not in res.out, str(res)
    assert len(res.err_lines) == 1 and res.err_lines[0].startswith("jitrun: "), str(res)
    assert named in res.err, str(res)  # says which file


def test_version_and_help(lab, world):
    v = lab.run_as_user(world.bob, None, options=["--version"])
    assert v.returncode == 0 and re.search(r"\d+\.\d+\.\d+", v.out), str(v)
    h = lab.run_as_user(world.bob, None, options=["--help"])
    assert h.returncode == 0 and "--grant" in h.out + h.err, str(h)


@pytest.mark.parametrize("args", [[], ["--no-such-option", "/usr/bin/true"], ["--grant"], ["-u"]],
                         ids=["nothing", "unknown-option", "grant-without-file", "u-without-user"])
def test_usage_errors_exit_2(lab, world, args):
    res = lab.run_jitrun(world.alice, args)
    assert res.returncode == 2, str(res)
    assert "elevate.start" not in res.actions()
