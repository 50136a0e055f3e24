"""Policy that cannot quietly give more than it says (issue 13), through the real setuid jitrun:
a glob in a rule never reaches a path through `..`, a `path:` glob stays in its directory, and
`env_keep` is an allow list whose dangerous names refuse the whole policy at load."""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

import pytest
from e2e_support import assert_denied, assert_ok


@pytest.fixture
def log_files():
    """A root-only secret directly in /var/log and another one in a subdirectory of it (the
    capability under test must be what reads them), removed afterwards."""
    tag = secrets.token_hex(4)
    top = Path(f"/var/log/jitlab-{tag}.log")
    sub = Path(f"/var/log/jitlab-{tag}.d")
    top.write_text(f"top secret {tag}\n")
    os.chmod(top, 0o600)
    sub.mkdir(mode=0o700)
    (sub / "inner.log").write_text(f"inner secret {tag}\n")
    os.chmod(sub / "inner.log", 0o600)
    try:
        yield top, sub / "inner.log", tag
    finally:
        top.unlink(missing_ok=True)
        shutil.rmtree(sub, ignore_errors=True)


def read_rule(a, pattern: str) -> str:
    return (f'[[rule]]\nname = "read-logs"\nusers = ["{a}"]\ncommands = ["/usr/bin/cat {pattern}"]\n'
            f'capabilities = ["CAP_DAC_READ_SEARCH"]\ngrant = "none"\n')


def test_a_glob_never_matches_a_dotdot_path(lab, world, log_files):
    """`cat /var/log/*` with CAP_DAC_READ_SEARCH reads the logs, never /etc/shadow through
    `/var/log/../../etc/shadow`: an argument that a glob matches may not hold a `..` component."""
    top, _, tag = log_files
    a = world.alice
    lab.set_policy(world.policy, dropins={"30-logs.toml": read_rule(a, "/var/log/*")})
    ok = assert_ok(lab.run_as_user(a, ["/usr/bin/cat", str(top)]))
    assert ok.out == f"top secret {tag}\n", "the control: the rule and its capability work"
    shadow = Path("/etc/shadow").read_text()
    for path in ["/var/log/../../etc/shadow", "/var/log/../etc/../../etc/shadow", f"/var/log/jitlab-{tag}.d/../../../etc/shadow"]:
        res = lab.run_as_user(a, ["/usr/bin/cat", path])
        assert_denied(res, "command_not_allowed")
        assert 'has a ".." path component' in res.err, str(res)
        assert res.out == "" and "root:" not in res.out and shadow not in res.out


def test_a_path_glob_matches_only_the_entries_of_its_directory(lab, world, log_files):
    top, inner, tag = log_files
    a = world.alice
    lab.set_policy(world.policy, dropins={"30-logs.toml": read_rule(a, "path:/var/log/*")})
    ok = assert_ok(lab.run_as_user(a, ["/usr/bin/cat", str(top)]))
    assert ok.out == f"top secret {tag}\n"
    for path in [str(inner), f"/var/log/./jitlab-{tag}.log", f"/var/log//jitlab-{tag}.log", "/var/log/../etc/shadow"]:
        res = lab.run_as_user(a, ["/usr/bin/cat", path])
        assert_denied(res, "command_not_allowed")
        assert "secret" not in res.out
    # The same file through a textual glob: subdirectories are in reach (the lint says so).
    lab.set_policy(world.policy, dropins={"30-logs.toml": read_rule(a, "/var/log/*")})
    assert assert_ok(lab.run_as_user(a, ["/usr/bin/cat", str(inner)])).out == f"inner secret {tag}\n"


@pytest.mark.parametrize("key,name", [
    ("env_keep", "GIT_CONFIG_PARAMETERS"), ("env_keep_unchecked", "GIT_CONFIG_PARAMETERS"),
    ("env_keep_unchecked", "PYTHONUSERBASE"), ("env_keep_unchecked", "XDG_CONFIG_HOME"),
    ("env_keep_unchecked", "OPENSSL_CONF"), ("env_keep_unchecked", "SYSTEMD_PAGER"),
    ("env_keep_unchecked", "TERMINFO"), ("env_keep", "JITLAB_UNLISTED"),
])
def test_env_keep_names_outside_the_allow_list_refuse_the_policy(lab, world, key, name):
    """A rule keeping a variable that makes a program run the caller's code (git's
    core.fsmonitor through GIT_CONFIG_PARAMETERS), or in env_keep one that is not known to be
    safe, is a policy error: nothing runs, the refusal names the file and the variable."""
    a = world.alice
    rule = (f'[[rule]]\nname = "envkeep"\nusers = ["{a}"]\ncommands = ["/usr/bin/env"]\n'
            f'grant = "none"\n{key} = ["{name}"]\n')
    lab.set_policy(world.policy, dropins={"30-envkeep.toml": rule})
    res = lab.run_as_user(a, ["/usr/bin/env"], env={name: "x"})
    assert res.returncode == 1 and len(res.err_lines) == 1, str(res)
    assert name in res.err and "30-envkeep.toml" in res.err and key in res.err, str(res)
    assert "policy.error" in res.actions() and "elevate.start" not in res.actions(), str(res)
    assert res.out == ""
