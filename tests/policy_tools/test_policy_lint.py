"""`jitctl policy check` on the traps of issue 13, as an admin meets them: each one is a warning
with its id, the rule's line and what to write instead; `--strict` fails until the rule fixes it
or acknowledges it by name (`allow_risks`), which `policy explain` then shows. And `env_keep` is
an allow list: the variables that let a caller choose what a privileged program runs are
refused when the policy loads. No root needed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from test_policy_cli import jitctl

TRAPS = [
    # (what the rule says, the lint id that must flag it)
    ('commands = ["/usr/bin/cat /var/log/*"]\ncapabilities = ["CAP_DAC_READ_SEARCH"]', "glob-crosses-directories"),
    ('commands = ["/usr/bin/vim.basic /etc/hosts"]\nrun_as = "root"', "shell-escape"),
    ('commands = ["/usr/bin/ex"]\nrun_as = "root"', "shell-escape"),
    ('commands = ["/usr/bin/pager"]\nrun_as = "root"', "shell-escape"),
    ('commands = ["/usr/sbin/ip -batch *"]\ncapabilities = ["CAP_NET_ADMIN"]', "shell-escape"),
    ('commands = ["/usr/bin/tcpdump -w *"]\ncapabilities = ["CAP_NET_RAW", "CAP_DAC_OVERRIDE"]', "arbitrary-file"),
    ('commands = ["/usr/bin/tee /var/log/app/*"]\nrun_as = "root"', "glob-crosses-directories"),
    ('commands = ["/usr/bin/id"]\ncapabilities = ["CAP_SETUID"]', "root-equivalent-capability"),
    ('commands = ["/usr/bin/id"]\ncapabilities = ["CAP_SYS_ADMIN"]', "root-equivalent-capability"),
    ('commands = ["/usr/bin/id"]\ncapabilities = ["CAP_SYS_MODULE"]', "root-equivalent-capability"),
    ('commands = ["/usr/bin/id"]\ncapabilities = ["CAP_SYS_PTRACE"]', "root-equivalent-capability"),
    ('commands = ["/usr/bin/tee /srv/app/state"]\ncapabilities = ["CAP_DAC_OVERRIDE"]', "root-equivalent-capability"),
    ('commands = ["/usr/bin/git -C /srv/repo status"]\nrun_as = "root"', "reads-caller-config"),
]


def policy(body: str, extra: str = "") -> str:
    return f'[[rule]]\nname = "r"\nusers = ["alice"]\nmin_approvals = 1\n{body}\n{extra}'


@pytest.mark.parametrize("body,code", TRAPS, ids=[f"{i}-{c}" for i, (_, c) in enumerate(TRAPS)])
def test_each_trap_is_a_warning_and_an_error_under_strict(tmp_path, body, code):
    f = tmp_path / "p.toml"
    f.write_text(policy(body))
    p = jitctl("policy", "check", f, check=True)
    found = re.findall(rf"^{re.escape(str(f))}:(\d+): warning\[([a-z-]+)\]: rule \"r\": (.*)$", p.stdout, re.M)
    hits = [(int(line), msg) for line, c, msg in found if c == code]
    assert hits, p.stdout
    line, msg = hits[0]
    assert line in (5, 6), p.stdout  # the commands or capabilities line
    assert ";" in msg and len(msg) > 80, msg  # what goes wrong; what to write instead
    p = jitctl("policy", "check", "--strict", f, check=False)
    assert p.returncode == 1 and f"error[{code}]" in p.stdout, p.stdout
    # Acknowledged by name in the rule: --strict passes for that id.
    ids = sorted({c for _, c, _ in found})
    f.write_text(policy(body, f"allow_risks = {ids!r}\n".replace("'", '"')))
    p = jitctl("policy", "check", "--strict", f, check=True)
    assert f"{len(found)} acknowledged by allow_risks" in p.stdout, p.stdout


def test_explain_shows_the_acknowledged_risks(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text('[[rule]]\nname = "edit-hosts"\nusers = ["alice"]\ncommands = ["/usr/bin/vim.basic /etc/hosts"]\n'
                 'run_as = "root"\ngrant = "none"\nallow_risks = ["shell-escape"]\n')
    p = jitctl("policy", "explain", "--policy", f, "--user", "alice", "--host", "h1", "--",
               "/usr/bin/vim.basic", "/etc/hosts", check=True)
    assert "decision: allow" in p.stdout
    assert re.search(r"^(risks: +| +)shell-escape \(acknowledged by allow_risks, .*p\.toml:4\)$", p.stdout, re.M), p.stdout
    assert re.search(r"^(risks: +| +)standing-access \(not acknowledged, .*p\.toml:6\)$", p.stdout, re.M), p.stdout


def test_a_misspelt_or_stale_acknowledgement_is_reported(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text(policy('commands = ["/usr/bin/ex"]\nrun_as = "root"', 'allow_risks = ["shell-escap", "standing-access"]\n'))
    p = jitctl("policy", "check", "--strict", f, check=False)
    assert "error[shell-escape]" in p.stdout, "a typo acknowledges nothing"
    assert 'allow_risks lists "shell-escap", which is not a lint id (did you mean "shell-escape"?)' in p.stdout
    assert 'allow_risks lists "standing-access", but the rule has no such finding' in p.stdout


@pytest.mark.parametrize("name", ["GIT_CONFIG_PARAMETERS", "GIT_CONFIG_GLOBAL", "PYTHONUSERBASE", "XDG_CONFIG_HOME",
                                  "OPENSSL_CONF", "SYSTEMD_PAGER", "TERMINFO"])
def test_env_keep_names_that_run_the_callers_code_are_refused_in_both_lists(tmp_path, name):
    f = tmp_path / "p.toml"
    for key in ("env_keep", "env_keep_unchecked"):
        f.write_text(policy('commands = ["/usr/bin/git -C /srv/repo status"]', f'{key} = ["{name}"]\n'))
        p = jitctl("policy", "check", f, check=False)
        assert p.returncode == 1
        assert f'{f}:6: rule "r": {key}: "{name}" is never kept' in p.stderr, p.stderr


def test_env_keep_is_an_allow_list_with_an_explicit_escape_hatch(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text(policy('commands = ["/usr/bin/id"]', 'env_keep = ["TERM", "APP_REGION"]\n'))
    p = jitctl("policy", "check", f, check=False)
    assert 'env_keep: "APP_REGION" is not on the list of variables known to be safe' in p.stderr
    assert "env_keep_unchecked instead" in p.stderr
    f.write_text(policy('commands = ["/usr/bin/id"]', 'env_keep = ["TERM"]\nenv_keep_unchecked = ["APP_REGION"]\n'))
    p = jitctl("policy", "check", f, check=True)
    assert re.search(rf"^{re.escape(str(f))}:7: warning\[env-keep-unchecked\]: .*APP_REGION", p.stdout, re.M), p.stdout


def test_a_python_script_run_with_capabilities_as_the_caller_is_flagged(tmp_path):
    """Issue 12 item 4: a rule whose command is a script for an interpreter that loads code from
    the caller's home (Python's user site directory) is flagged; the same script in isolated
    mode (-I), run as a dedicated user, or a shell script, is not."""
    if not Path("/usr/bin/python3").exists():
        pytest.skip("no /usr/bin/python3 here")
    scripts = tmp_path / "bin"
    scripts.mkdir()
    for name, line in [("report", "#!/usr/bin/python3"), ("report-env", "#!/usr/bin/env python3"),
                       ("report-isolated", "#!/usr/bin/python3 -I"), ("backup", "#!/bin/sh")]:
        (scripts / name).write_text(f"{line}\nprint('hi')\n")
    f = tmp_path / "p.toml"

    def codes(command: str, extra: str = 'capabilities = ["CAP_NET_BIND_SERVICE"]') -> set[str]:
        f.write_text(policy(f'commands = ["{scripts}/{command}"]\n{extra}'))
        out = jitctl("policy", "check", f, check=True).stdout
        return set(re.findall(r"warning\[([a-z-]+)\]", out))

    assert "script-interpreter" in codes("report")
    assert "script-interpreter" in codes("report-env")
    f.write_text(policy(f'commands = ["{scripts}/report"]\ncapabilities = ["CAP_NET_BIND_SERVICE"]'))
    msg = jitctl("policy", "check", f, check=True).stdout
    assert "user site directory" in msg and "#!/usr/bin/python3 -I" in msg, msg
    assert "script-interpreter" not in codes("report-isolated")
    assert "script-interpreter" not in codes("backup")
    assert "script-interpreter" not in codes("report", 'run_as = "nobody"')
