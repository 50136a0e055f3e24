"""`jitctl policy check|test|explain|diff` as an admin runs them: on the shipped examples and on
throwaway policy files. No root needed."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
JITCTL = Path(os.environ.get("JITCTL_BIN") or TARGET / "debug" / "jitctl")
EXAMPLES = ROOT / "policy-examples"


def jitctl(*args, check=None, input=None) -> subprocess.CompletedProcess:
    if not JITCTL.is_file():
        pytest.fail(f"{JITCTL} does not exist: run `cargo build -p jitctl` (or make build) first")
    p = subprocess.run([str(JITCTL), *map(str, args)], capture_output=True, text=True, input=input)
    if check is True:
        assert p.returncode == 0, f"{args}: rc={p.returncode}\n{p.stdout}\n{p.stderr}"
    if check is False:
        assert p.returncode != 0, f"{args}: expected failure\n{p.stdout}\n{p.stderr}"
    return p


def test_examples_pass_their_tests_and_the_strict_lint():
    p = jitctl("policy", "test", EXAMPLES, check=True)
    lines = p.stdout.splitlines()
    oks = [l for l in lines if l.startswith("ok ")]
    m = re.search(r"^(\d+) passed, 0 failed$", p.stdout, re.M)
    assert m and int(m.group(1)) == len(oks) >= 25, p.stdout
    # Every example file contributes tests.
    files = {Path(l.split()[1].split(":")[0]).name for l in oks}
    assert files == {f.name for f in EXAMPLES.glob("*.toml")}, files
    p = jitctl("policy", "check", "--strict", EXAMPLES, check=True)
    assert "0 warning(s)" in p.stdout


def test_a_failing_case_is_reported_with_file_line_and_what_differs(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text((EXAMPLES / "net-debug.toml").read_text() + """
[[test]]
name = "wrong on purpose"
user = "nina"
groups = ["netops"]
host = "web-01"
argv = ["/usr/sbin/ip", "link"]
grant = { rule = "net-debug" }
expect = "allow"
caps = ["CAP_NET_RAW"]

[[test]]
user = "nina"
groups = ["netops"]
host = "web-01"
argv = ["/usr/sbin/ip", "link"]
expect = "allow"
""")
    n = len(f.read_text().splitlines())
    p = jitctl("policy", "test", f, check=False)
    assert p.returncode == 1
    assert re.search(rf"^FAILED  {re.escape(str(f))}:{n - 15}: wrong on purpose$", p.stdout, re.M), p.stdout
    assert "expected capabilities CAP_NET_RAW, got CAP_NET_ADMIN, CAP_NET_RAW" in p.stdout
    assert re.search(rf"^FAILED  {re.escape(str(f))}:{n - 5}: nina may run /usr/sbin/ip link$", p.stdout, re.M), p.stdout
    assert "got: denied (grant_required)" in p.stdout
    assert re.search(r"^10 passed, 2 failed$", p.stdout, re.M), p.stdout
    assert "2 of 12 policy test(s) failed" in p.stderr


def test_a_bad_test_table_is_a_load_error_with_file_line(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text('[[rule]]\nname = "r"\nusers = ["a"]\ncommands = ["/bin/true"]\n\n[[test]]\nuser = "a"\nargv = ["/bin/true"]\nexpect = "allow"\ngrnat = {}\n')
    for cmd in ("check", "test"):
        p = jitctl("policy", cmd, f, check=False)
        assert p.stderr.strip() == f'jitctl: {f}:10: test[0]: unknown key "grnat" (did you mean "grant"?); valid keys: name, user, groups, host, argv, grant, run_as, expect, caps, rule, deny', p.stderr


LINTY = """\
[[rule]]
name = "migrated"
users = ["alice"]
commands = [
  "/usr/bin/python3 **",
  "/usr/bin/less **",
  "/usr/bin/env **",
  "/opt/vendor/bin/tool",
]
run_as = "root"
capabilities = ["ALL"]
grant = "none"

[[rule]]
name = "again"
users = ["alice"]
commands = ["/usr/bin/less /var/log/syslog"]
run_as = "root"
capabilities = ["ALL"]
# jitctl-lint: allow(standing-access) until the team is on jitctl request
grant = "none"
"""


def test_no_cases_is_a_warning_not_a_failure(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text('[[rule]]\nname = "r"\nusers = ["a"]\ncommands = ["/bin/true"]\n')
    p = jitctl("policy", "test", f, check=True)
    assert p.stdout == "0 passed, 0 failed\n"
    assert "no [[test]] cases in the 1 policy file(s) given; nothing was tested" in p.stderr


def test_lint_warnings_and_strict(tmp_path):
    d = tmp_path / "etc"
    (d / "policy.d").mkdir(parents=True)
    (d / "policy.toml").write_text("")
    f = d / "policy.d" / "10-migrated.toml"
    f.write_text(LINTY)
    p = jitctl("policy", "check", d, check=True)
    found = re.findall(r"^(.*?):(\d+): warning\[([a-z-]+)\]: (.*)$", p.stdout, re.M)
    got = [(Path(a).name, int(b), c) for a, b, c, _ in found]
    assert got == [
        ("10-migrated.toml", 12, "standing-access"),
        ("10-migrated.toml", 11, "all-capabilities"),
        ("10-migrated.toml", 5, "shell-with-privilege"),
        ("10-migrated.toml", 6, "shell-escape"),
        ("10-migrated.toml", 6, "arbitrary-file"),
        ("10-migrated.toml", 7, "runs-any-command"),
        ("10-migrated.toml", 8, "outside-secure-path"),
        ("10-migrated.toml", 19, "all-capabilities"),
        ("10-migrated.toml", 17, "shell-escape"),
        ("10-migrated.toml", 14, "shadowed"),
    ], p.stdout
    # Each message says what to do.
    msgs = {c: m for _, _, c, m in found}
    assert "set grant = \"required\"" in msgs["standing-access"]
    assert "min_approvals = 2" in msgs["all-capabilities"]
    assert "!sh" in msgs["shell-escape"]
    assert "1 silenced by jitctl-lint comments" in p.stdout
    p = jitctl("policy", "check", "--strict", d, check=False)
    assert p.returncode == 1
    assert re.search(r"^.*10-migrated.toml:12: error\[standing-access\]", p.stdout, re.M), p.stdout
    assert "10 lint finding(s) with --strict" in p.stderr


def test_check_secure_path_from_settings(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text('[[rule]]\nname = "r"\nusers = ["a"]\ncommands = ["/opt/x/bin/y"]\ncapabilities = ["net_raw"]\nmin_approvals = 1\n')
    s = tmp_path / "jitrun.toml"
    s.write_text('secure_path = "/opt/x/bin:/usr/bin"\n')
    assert "warning[outside-secure-path]" in jitctl("policy", "check", f, check=True).stdout
    assert "0 warning(s)" in jitctl("policy", "check", "--settings", s, f, check=True).stdout


def test_explain(tmp_path):
    p = jitctl("policy", "explain", "--policy", EXAMPLES, "--user", "sam", "--group", "sre-leads", "--host", "h1",
               "--", "/usr/bin/bash", "--login", check=False)
    assert p.returncode == 1
    assert "decision: deny (grant_required)" in p.stdout
    assert re.search(r"^  break-glass +needs a grant \(grant = \"required\"\); run: jitctl request break-glass \(.*break-glass.toml:17\)$", p.stdout, re.M), p.stdout
    assert re.search(r"^  net-debug +does not name user sam or any of their groups \(sre-leads\)", p.stdout, re.M), p.stdout
    # With a grant (a real token minted offline).
    sec, pub = tmp_path / "k.sec", tmp_path / "k.pub"
    jitctl("keygen", "--secret", sec, "--public", pub, check=True)
    token = jitctl("grant", "mint", "--key", sec, "--user", "nina", "--rule", "net-debug", "--host", "web-01",
                   "--ttl", "30m", "--caps", "net_raw", "--approver", "lee", check=True).stdout.strip()
    g = tmp_path / "grant"
    g.write_text(token + "\n")
    p = jitctl("policy", "explain", "--policy", EXAMPLES, "--user", "nina", "--group", "netops", "--host", "web-01",
               "--grant", g, "--", "/usr/bin/tcpdump", "-n", "-i", "eth0", "-c", "10", check=True)
    assert "decision: allow" in p.stdout
    assert re.search(r"^rule: +\"net-debug\" \(.*net-debug.toml:15\)$", p.stdout, re.M), p.stdout
    assert re.search(r"^caps: +CAP_NET_RAW$", p.stdout, re.M), p.stdout
    assert re.search(r"^  net-debug +matched", p.stdout, re.M)
    assert re.search(r"^  web-restart +does not name user nina", p.stdout, re.M)
    # The same grant from standard input, for a command the rule does not list.
    p = jitctl("policy", "explain", "--policy", EXAMPLES, "--user", "nina", "--group", "netops", "--host", "web-01",
               "--grant", "-", "--", "/usr/sbin/ip", "netns", "exec", "x", "sh", input=token, check=False)
    assert "decision: deny (grant_rule_mismatch)" in p.stdout
    assert re.search(r"^  net-debug +no command pattern matches /usr/sbin/ip netns exec x sh", p.stdout, re.M), p.stdout
    # A bare name is looked up in secure_path, never PATH.
    p = jitctl("policy", "explain", "--policy", EXAMPLES, "--user", "walt", "--group", "webops", "--host", "web-01",
               "--", "systemctl", "restart", "nginx", check=False)
    assert 'request: walt runs ["/usr/bin/systemctl", "restart", "nginx"]' in p.stdout, p.stdout


def test_diff(tmp_path):
    new = tmp_path / "new"
    shutil.copytree(EXAMPLES, new)
    t = (new / "net-debug.toml").read_text()
    t = t.replace('capabilities = ["CAP_NET_ADMIN", "CAP_NET_RAW"]', 'capabilities = ["CAP_NET_RAW"]')
    t = t.replace('groups = ["netops"]\nhosts', 'groups = ["netops", "sre"]\nhosts', 1)
    (new / "net-debug.toml").write_text(t)
    b = (new / "backup.toml").read_text().replace('grant = "required"', 'grant = "none"')
    (new / "backup.toml").write_text(b)
    (new / "oncall.toml").unlink()
    p = jitctl("policy", "diff", EXAMPLES, new, check=True)
    assert "group backup-ops\n  ~ rule \"backup-read-all\"\n      grant required -> standing access (grant = \"none\")\n" in p.stdout, p.stdout
    assert "group netops\n  ~ rule \"net-debug\"\n      loses capability \"CAP_NET_ADMIN\"\n" in p.stdout, p.stdout
    assert "group oncall\n  - loses rule \"oncall-restart\"\n" in p.stdout, p.stdout
    assert ("group sre\n  + gains rule \"net-debug\"\n      run as invoker with CAP_NET_RAW; grant required (min_approvals 1, "
            "max_duration 1h); hosts web-*\n") in p.stdout, p.stdout
    assert '      command "/usr/sbin/ip link **"\n' in p.stdout.split("group sre")[1]
    j = json.loads(jitctl("policy", "diff", "--json", EXAMPLES, new, check=True).stdout)
    by = {(c["who"], c["rule"]): c for c in j["changes"]}
    assert set(by) == {("group:backup-ops", "backup-read-all"), ("group:netops", "net-debug"),
                       ("group:oncall", "oncall-restart"), ("group:sre", "net-debug")}
    assert by[("group:sre", "net-debug")]["change"] == "added"
    assert by[("group:sre", "net-debug")]["gained"]["capabilities"] == ["CAP_NET_RAW"]
    assert by[("group:netops", "net-debug")]["lost"]["capabilities"] == ["CAP_NET_ADMIN"]
    assert by[("group:backup-ops", "backup-read-all")]["grant"] == {"old": "required", "new": "none"}
    assert jitctl("policy", "diff", "--exit-code", EXAMPLES, new).returncode == 1
    p = jitctl("policy", "diff", "--exit-code", EXAMPLES, EXAMPLES, check=True)
    assert p.stdout == "no differences in who may run what\n"
