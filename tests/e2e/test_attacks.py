"""Attacks on the setuid binary, tried as the unprivileged user (issue 4, part 2): each one must
fail with a clear one-line `jitrun: ` message (or a usage error), run nothing and leak nothing.
The last part (issue 12) is what the caller still controls around a run that is allowed: her
own cgroup, her own process attributes, her dotfiles, argv[0], core dumps, SIGSTOP of her own
setuid process, a FIFO named as the command, and a supervisor stopped for job control.

Attacks already replayed elsewhere are not repeated here; docs/SECURITY.md maps every attack
and historical CVE to its test. Forged audit events (a user writing `jitrun[PID]: @cee:{...}` to
the syslog socket, issue 12 item 8) are in test_audit_sender.py, which runs a real rsyslogd. Helpers: tests/harness/helpers/exec_argv.c (argc == 0, empty
argv[0], closed standard descriptors) and preload_marker.c (a shared object that leaves a
marker file in every process that loads it)."""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
from e2e_support import TEST_SECURE_PATH, assert_denied, assert_ok
from jitlab import HELPERS_SRC, User, _proc_table, _run, cap_mask, decode_token, descendants, parse_proc_status, pid_alive

RAN = ["/usr/bin/sh", "-c", "echo RAN"]


# ---- shared kit: the helper, the marker library, a marker directory


@pytest.fixture(scope="module")
def kit(lab, world):
    marker_dir = Path(tempfile.mkdtemp(prefix="jitattack-markers-"))
    os.chmod(marker_dir, 0o1777)  # whoever loads the library (root or the user) can leave a mark
    so = lab.bin_dir / "preload-marker.so"
    _run(["gcc", "-Wall", "-O2", "-shared", "-fPIC", f"-DMARKER_DIR=\"{marker_dir}\"", "-o", so,
          HELPERS_SRC / "preload_marker.c"])
    os.chown(so, 0, 0)
    os.chmod(so, 0o755)
    exec_argv = lab.compile_helper("exec-argv")
    yield {"markers": marker_dir, "so": so, "exec_argv": exec_argv}
    shutil.rmtree(marker_dir, ignore_errors=True)


def markers(kit) -> list[str]:
    return sorted(os.listdir(kit["markers"]))


@pytest.fixture
def clean_markers(kit):
    for f in kit["markers"].iterdir():
        f.unlink()
    yield
    for f in kit["markers"].iterdir():
        f.unlink()


def one_line_refusal(res, rc: int = 1):
    """Exit ``rc``, exactly one stderr line `jitrun: ...`, nothing started."""
    assert not res.timed_out, str(res)
    assert res.returncode == rc, str(res)
    assert len(res.err_lines) == 1 and res.err_lines[0].startswith("jitrun: "), str(res)
    assert "elevate.start" not in res.actions(), str(res)
    assert "RAN" not in res.out, str(res)


def plain(lab, world, **kw):
    return lab.mint(world.alice, "plain", **kw)


def parse_env(out: str) -> dict:
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


# ---- argc == 0 and an empty argv[0] (PwnKit, CVE-2021-4034)


def pwnkit_dir(lab, kit, user) -> Path:
    """A working directory laid out like the PwnKit exploit's: GCONV_PATH=. finds a
    gconv-modules file there that maps charset PWNKIT to the marker library."""
    lab.user_file(user, "pwnkit/gconv-modules", "module UTF-8// PWNKIT// pwnkit 2\n", mode=0o644)
    lab.user_file(user, "pwnkit/pwnkit.so", kit["so"].read_bytes(), mode=0o755)
    lab.user_file(user, "pwnkit/GCONV_PATH=./pwnkit", "#!/bin/sh\necho PWNED\n", mode=0o755)
    return user.home / "pwnkit"


@pytest.mark.parametrize("mode", ["argc0", "empty0"])
def test_argc_zero_and_empty_argv0_are_refused(lab, world, kit, clean_markers, mode):
    a = world.alice
    cwd = pwnkit_dir(lab, kit, a)
    # with argc == 0, argv[1] would alias envp[0] ("GCONV_PATH=."); with an empty argv[0] the
    # rest of argv would otherwise be a perfectly valid, granted run
    args = [] if mode == "argc0" else ["--grant", str(lab.user_file(a, ".jitlab/pk-grant", plain(lab, world))),
                                       "--", "/usr/bin/sh", "-c", "echo RAN"]
    res = lab.run_jitrun(a, args, prefix=[str(kit["exec_argv"]), mode], cwd=cwd)
    one_line_refusal(res)
    assert "argc == 0" in res.err or "empty argv[0]" in res.err, str(res)
    assert "PWNED" not in res.out + res.err
    assert markers(kit) == [], "the gconv module was loaded"


# ---- -u: CVE-2019-14287 (`-u#-1`) and hostile user names


@pytest.mark.parametrize("user", ["#-1", "#4294967295", "4294967295", "-1", "../../x", "a b", "a\nroot",
                                  "root\x00", "x" * (128 * 1024 - 1)],
                         ids=["hash-minus-1", "hash-4294967295", "4294967295", "minus-1", "dotdot", "space",
                              "newline", "nul", "128KiB"])
def test_hostile_dash_u_never_runs_as_root(lab, world, user):
    """Never a run as root: a usage error (2) or a refusal (1), one line. (A single argv string
    is at most 128 KiB on Linux, so '1 MB of text' is tested at the largest size execve allows.)"""
    a = world.alice
    if "\x00" in user:  # cannot be in argv: the kernel cuts it at the NUL; test the cut name
        user = user.split("\x00")[0]
    res = lab.run_as_user(a, ["/usr/bin/id", "-u"], options=["-u", user])  # standing access to id
    assert not res.timed_out, str(res)
    assert res.returncode in (1, 2), str(res)
    assert "elevate.start" not in res.actions(), str(res)
    assert res.out == "", str(res)
    assert len(res.err_lines) == 1 and res.err_lines[0].startswith("jitrun: "), str(res)
    assert len(res.err) < 1024, "the refusal must not echo a huge name back"


def test_dash_u_numeric_forms_are_usage_errors(lab, world):
    """The exact CVE-2019-14287 spellings are rejected before any lookup (usage, exit 2)."""
    for user in ("#-1", "#4294967295", "../../x", "a b"):
        res = lab.run_as_user(world.alice, ["/usr/bin/id"], options=["-u", user])
        one_line_refusal(res, rc=2)


# ---- the environment


HOSTILE_ENV = {
    "GCONV_PATH": ".", "CHARSET": "PWNKIT", "ENV": "/tmp/evil-env", "PERL5OPT": "-Mevil",
    "PERL5LIB": "/tmp", "TZ": "../../etc/shadow", "LANG": "../../../tmp/evil", "LC_ALL": "../../x",
    "LC_MESSAGES": "/tmp/x", "LD_LIBRARY_PATH": "/tmp", "LD_AUDIT": "/tmp/x.so", "GLIBC_TUNABLES": "x=y",
    "NLSPATH": "/tmp/%N", "PYTHONSTARTUP": "/tmp/x.py", "NODE_OPTIONS": "--require /tmp/x.js",
    "BASH_FUNC_id%%": "() { echo PWNED; }", "SHELLOPTS": "xtrace", "PS4": "$(id)", "IFS": "/",
    "BASH_ENV": "/tmp/x", "PYTHONPATH": "/tmp", "PATH": "/tmp:/usr/bin",
    "EDITOR": "vi -- /etc/shadow", "VISUAL": "vi -- /etc/shadow", "SUDO_EDITOR": "vi -- /etc/shadow",  # CVE-2023-22809
}


def test_hostile_environment_reaches_neither_jitrun_nor_the_command(lab, world, kit, clean_markers):
    a = world.alice
    so = str(kit["so"])
    # the marker library works: loaded by a plain program, it leaves its mark
    ctl = lab.run_without_jitrun(a, ["/usr/bin/env", f"LD_PRELOAD={so}", "/usr/bin/true"])
    assert ctl.returncode == 0 and markers(kit), f"the marker library is not loaded by ld.so: {ctl}"
    for f in kit["markers"].iterdir():
        f.unlink()
    env = dict(HOSTILE_ENV, LD_PRELOAD=so)
    res = assert_ok(lab.run_as_user(a, ["/usr/bin/env"], grant=plain(lab, world), env=env))
    got = parse_env(res.out)
    for name in env:
        if name != "PATH":
            assert name not in got, f"{name} reached the command\n{res}"
    assert got["PATH"] == TEST_SECURE_PATH
    assert set(got) <= {"HOME", "USER", "LOGNAME", "SHELL", "PATH", "TERM"}, sorted(got)
    assert markers(kit) == [], "LD_PRELOAD was honoured by jitrun or by the command"
    # and a refusal path (jitrun's own code only) loads nothing either
    deny = lab.run_as_user(world.bob, ["/usr/bin/true"], env=env)
    assert_denied(deny, "no_rule")
    assert markers(kit) == [], "LD_PRELOAD was honoured by jitrun"


SAFE_ENV = {"TERM", "COLORTERM", "COLUMNS", "LINES", "NO_COLOR", "LANG", "LANGUAGE", "TZ"}


def envkeep_rule(a, keep) -> str:
    """A standing rule for /usr/bin/env keeping `keep`: names on jitrun's known-safe list in
    env_keep, the others in env_keep_unchecked (where the never-kept ones are still refused)."""
    safe = [k for k in keep if k in SAFE_ENV or k.startswith("LC_")]
    other = [k for k in keep if k not in safe]
    return (f'[[rule]]\nname = "envkeep"\nusers = ["{a}"]\ncommands = ["/usr/bin/env"]\n'
            f'grant = "none"\nenv_keep = {json.dumps(safe)}\nenv_keep_unchecked = {json.dumps(other)}\n')


def test_env_keep_of_a_loader_variable_is_a_policy_error(lab, world, kit, clean_markers):
    """A rule may not keep LD_PRELOAD: the policy is refused at load (policy.error), nothing runs."""
    a = world.alice
    lab.set_policy(world.policy, dropins={"30-envkeep.toml": envkeep_rule(a, ["LD_PRELOAD", "TZ"])})
    res = lab.run_as_user(a, ["/usr/bin/env"], env={"LD_PRELOAD": str(kit["so"]), "TZ": "UTC"})
    one_line_refusal(res)
    assert "LD_PRELOAD" in res.err and "30-envkeep.toml" in res.err, str(res)
    assert "policy.error" in res.actions(), str(res)
    assert res.out == "" and markers(kit) == []


@pytest.mark.parametrize("name", ["GCONV_PATH", "BASH_ENV", "LD_LIBRARY_PATH"])
def test_env_keep_of_other_code_loading_variables_is_a_policy_error(lab, world, name):
    a = world.alice
    lab.set_policy(world.policy, dropins={"30-envkeep.toml": envkeep_rule(a, [name])})
    res = lab.run_as_user(a, ["/usr/bin/env"], env={name: "/tmp"})
    one_line_refusal(res)
    assert name in res.err and "policy.error" in res.actions(), str(res)


@pytest.mark.parametrize("name", ["EDITOR", "VISUAL", "SUDO_EDITOR", "PYTHONPATH", "PERL5OPT", "NODE_OPTIONS", "PATH"])
def test_env_keep_of_editor_interpreter_and_path_variables_is_a_policy_error(lab, world, name):
    """EDITOR & co (CVE-2023-22809), interpreter start-up hooks and PATH are on the same
    never-kept list as the loader variables (jit_policy::NEVER_KEPT_ENV): a rule naming one is
    refused at load, with the file and the name, and nothing runs."""
    a = world.alice
    lab.set_policy(world.policy, dropins={"30-envkeep.toml": envkeep_rule(a, [name, "JITLAB_OK"])})
    res = lab.run_as_user(a, ["/usr/bin/env"], env={name: "vi -- /etc/shadow", "JITLAB_OK": "1"})
    one_line_refusal(res)
    assert name in res.err and "30-envkeep.toml" in res.err and "policy.error" in res.actions(), str(res)
    assert res.out == ""


def test_env_keep_passes_a_sane_variable(lab, world):
    """The control for the refusals above: an ordinary variable a rule keeps does pass."""
    a = world.alice
    lab.set_policy(world.policy, dropins={"30-envkeep.toml": envkeep_rule(a, ["JITLAB_OK"])})
    res = assert_ok(lab.run_as_user(a, ["/usr/bin/env"], env={"JITLAB_OK": "/tmp/fine"}))
    assert parse_env(res.out).get("JITLAB_OK") == "/tmp/fine", str(res)


def test_env_keep_drops_path_tricks_in_kept_locale_and_tz(lab, world):
    """TZ/LANG/LC_* that a rule keeps pass only when they are not paths."""
    a = world.alice
    lab.set_policy(world.policy, dropins={
        "30-envkeep.toml": envkeep_rule(a, ["TZ", "LANG", "LC_ALL", "LC_TIME", "JITLAB_FN"])})
    hostile = {"TZ": "../../etc/shadow", "LANG": "../../../tmp/x", "LC_ALL": "/etc/shadow",
               "JITLAB_FN": "() { id; }", "LC_TIME": "C.UTF-8"}
    res = assert_ok(lab.run_as_user(a, ["/usr/bin/env"], env=hostile))
    got = parse_env(res.out)
    for name in ("TZ", "LANG", "LC_ALL", "JITLAB_FN"):
        assert name not in got, f"{name}={got.get(name)!r} was kept\n{res}"
    assert got.get("LC_TIME") == "C.UTF-8", "a sane kept value must pass (else this test proves nothing)"
    ok = assert_ok(lab.run_as_user(a, ["/usr/bin/env"], env={"TZ": "Europe/Paris", "LANG": "C.UTF-8"}))
    # a named zone is a relative name under the zoneinfo directory: kept; absolute or `..` is not
    assert parse_env(ok.out).get("LANG") == "C.UTF-8", str(ok)
    assert parse_env(ok.out).get("TZ") == "Europe/Paris", str(ok)


# ---- file descriptors

OPEN_FDS = 'for i in 3 4 5 6 7 8 9; do eval "exec $i>>\\"\\$0\\""; done; shift; exec "$@"'


def fd_prefix(path: Path) -> list[str]:
    return ["/bin/sh", "-c", OPEN_FDS, str(path), "wrapper"]


def test_descriptors_above_2_do_not_reach_the_command(lab, world):
    a = world.alice
    leak = lab.user_file(a, ".jitlab/fd-target", "", mode=0o600)
    show = ["/usr/bin/sh", "-c", "ls /proc/$$/fd"]
    # the wrapper really hands fds 3..9 on (else this test proves nothing)
    ctl = lab.run_without_jitrun(a, [*fd_prefix(leak), *show])
    assert {"3", "9"} <= set(ctl.out.split()), str(ctl)
    res = assert_ok(lab.run_as_user(a, show, grant=plain(lab, world), prefix=fd_prefix(leak)))
    assert sorted(res.out.split(), key=int) == ["0", "1", "2"], str(res)


def counter_file(lab, token) -> Path:
    return lab.state / "uses" / decode_token(token)[0]["jti"]


def tree_digest(*roots: Path) -> dict[str, str]:
    out = {}
    for root in roots:
        for dirpath, _, files in os.walk(root):
            for f in files:
                p = Path(dirpath) / f
                if p.is_file() and not p.is_symlink() and not stat.S_ISSOCK(p.stat().st_mode):
                    out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def test_closed_standard_descriptors_are_harmless_devices_for_the_command(lab, world, kit):
    """fds 0-2 closed before exec: jitrun must not open its own files (settings, policy, the audit
    socket, the checked executable) on them and hand those to the command. What the command
    gets is /dev/null (jitrun's harden.rs) or /dev/full (glibc's own AT_SECURE fix-up, which
    opens a closed fd 0 write-only on /dev/full before jitrun's main runs)."""
    a = world.alice
    report = a.home / "fd-report"
    report.unlink(missing_ok=True)
    grant = lab.user_file(a, ".jitlab/closed-grant", plain(lab, world))
    script = f'x=$(readlink /proc/$$/fd/0 /proc/$$/fd/1 /proc/$$/fd/2); echo "$x" > {report}'
    res = lab.run_jitrun(a, ["--grant", str(grant), "--", "/usr/bin/sh", "-c", script],
                         prefix=[str(kit["exec_argv"]), "closed"])
    assert res.returncode == 0, str(res)
    assert res.actions() == ["elevate.start", "elevate.end"], str(res)
    links = report.read_text().split()
    assert len(links) == 3 and set(links) <= {"/dev/null", "/dev/full"}, links


def test_closed_standard_descriptors_cannot_redirect_refusals_into_state(lab, world, kit):
    """With fds 0-2 closed, a refusal that comes AFTER jitrun opened a root-owned file (the
    grant's use counter, the audit socket) must not land in that file: a regression would
    write `jitrun: ...` into the counter or send it as a datagram."""
    a = world.alice
    token = plain(lab, world, max_uses=1)
    grant = lab.user_file(a, ".jitlab/closed-uses-grant", token)
    args = ["--grant", str(grant), "--", "/usr/bin/true"]
    first = lab.run_jitrun(a, args, prefix=[str(kit["exec_argv"]), "closed"])
    assert first.returncode == 0 and "elevate.start" in first.actions(), str(first)
    before = tree_digest(lab.conf, lab.state)
    second = lab.run_jitrun(a, args, prefix=[str(kit["exec_argv"]), "closed"])
    assert second.returncode == 1, str(second)
    assert [e.get("jitrun.deny_code") for e in second.events] == ["grant_used_up"], str(second)
    assert counter_file(lab, token).read_bytes() == b"%020d\n" % 1
    after = tree_digest(lab.conf, lab.state)
    assert after == before, "a refusal changed trusted files or state"
    for rec in second.events:
        assert not rec.raw.startswith(b"jitrun: "), rec
        assert rec.framing == "cee", rec
    bob = lab.run_jitrun(world.bob, ["--", "/usr/bin/true"], prefix=[str(kit["exec_argv"]), "closed"])
    assert bob.returncode == 1 and [e.action for e in bob.events] == ["elevate.deny"], str(bob)
    assert all(e.framing == "cee" for e in bob.events), str(bob)


ROOT = User(name="root", uid=0, gid=0, home=Path("/root"), groups=[])
SHOW_STD_FDS = ("import os, sys\n"
                "fds = [os.readlink(f'/proc/self/fd/{i}') if os.path.exists(f'/proc/self/fd/{i}') else '-' "
                "for i in range(3)]\n"
                "open(sys.argv[1], 'w').write(' '.join(fds))\n")


def test_closed_standard_descriptors_are_harmless_devices_for_a_root_caller(lab, world, kit):
    """The tests above start jitrun setuid, where glibc itself reopens closed fds 0-2 (AT_SECURE).
    glibc does nothing for root (no AT_SECURE: a cron job or a service running jitrun with its
    descriptors closed): then Rust's runtime (before main) and harden.rs (`ensure_std_fds`) put
    /dev/null there, so the files jitrun opens (settings, policy, the audit socket, the checked
    executable) never land on 0-2 and the command gets harmless devices."""
    report = Path(tempfile.mkdtemp(prefix="jitattack-fds-")) / "fd-report"
    # what fds 0-2 are, read before the report file is opened (it would take the lowest free fd)
    show = ["/usr/bin/python3", "-c", SHOW_STD_FDS, str(report)]
    try:
        # control: started this way as root, a plain program really gets fds 0-2 closed
        # (nothing else reopens them), so the assertion below is jitrun's doing
        ctl = subprocess.run([str(kit["exec_argv"]), "closed", *show], timeout=60)
        assert ctl.returncode == 0 and report.read_text().split() == ["-"] * 3, report.read_text()
        lab.set_policy(world.policy, dropins={"30-root.toml": '[[rule]]\nname = "root-fds"\nusers = ["root"]\n'
                                                              'commands = ["/usr/bin/python3 **"]\n'
                                                              'grant = "none"\n'})
        res = lab.run_jitrun(ROOT, ["--", *show], prefix=[str(kit["exec_argv"]), "closed"])
        assert res.returncode == 0, str(res)
        assert res.actions() == ["elevate.start", "elevate.end"], str(res)
        assert res.event("elevate.start").get("jitrun.rule") == "root-fds", str(res)
        links = report.read_text().split()
        assert links == ["/dev/null"] * 3, links
    finally:
        shutil.rmtree(report.parent, ignore_errors=True)


# ---- trusted files (what test_audit_config.py::test_untrusted_config_files_are_refused lacks)


@pytest.mark.parametrize("case", ["key-group-writable", "settings-user-owned", "settings-symlink",
                                  "policydir-symlink", "keysdir-world-writable", "state-group-writable",
                                  "uses-dir-user-owned"])
def test_more_untrusted_files_are_refused(lab, world, case):
    a = world.alice
    conf, state = lab.conf, lab.state
    token = plain(lab, world, max_uses=3)  # max_uses: the run must use /var/lib/jitrun/uses
    named = ""
    undo = []
    if case == "key-group-writable":
        k = conf / "keys.d" / "test.paserk"
        os.chmod(k, 0o664)
        undo.append(lambda: os.chmod(k, 0o644))
        named = "test.paserk"
    elif case == "settings-user-owned":
        s = conf / "jitrun.toml"
        os.chown(s, a.uid, a.gid)
        undo.append(lambda: os.chown(s, 0, 0))
        named = "jitrun.toml"
    elif case == "settings-symlink":
        s = conf / "jitrun.toml"
        real = conf / "jitrun.toml.real"
        os.replace(s, real)
        os.symlink(real, s)
        undo.append(lambda: (s.unlink(), os.replace(real, s)))
        named = "jitrun.toml"
    elif case == "policydir-symlink":
        d = conf / "policy.d"
        real = conf / "policy.d.real"
        os.replace(d, real)
        os.symlink(real, d)
        undo.append(lambda: (d.unlink(), os.replace(real, d)))
        named = "policy.d"
    elif case == "keysdir-world-writable":
        d = conf / "keys.d"
        os.chmod(d, 0o777)
        undo.append(lambda: os.chmod(d, 0o755))
        named = "keys.d"
    elif case == "state-group-writable":
        os.chmod(state, 0o770)
        undo.append(lambda: os.chmod(state, 0o700))
        named = "/var/lib/jitrun"
    elif case == "uses-dir-user-owned":
        u = state / "uses"
        u.mkdir(mode=0o700, exist_ok=True)
        os.chown(u, a.uid, a.gid)
        undo.append(lambda: os.chown(u, 0, 0))
        named = "/var/lib/jitrun/uses"
    try:
        res = lab.run_as_user(a, RAN, grant=token)
    finally:
        for f in undo:
            f()
    one_line_refusal(res)
    assert named in res.err, str(res)
    assert "RAN" not in res.out


# ---- grant paths that are not files (test_grants.py covers symlinks to /etc/shadow)


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "sparse-1GB", "directory", "dev-tty"])
def test_grant_path_that_is_not_a_small_file_is_refused_without_reading_it(lab, world, kind):
    a = world.alice
    if kind == "fifo":
        path = a.home / ".jitlab" / "grant-fifo"
        lab._user_dirs(a, path.parent)
        path.unlink(missing_ok=True)
        os.mkfifo(path, 0o600)
        os.chown(path, a.uid, a.gid)
    elif kind == "dev-zero":
        path = Path("/dev/zero")
    elif kind == "dev-tty":
        path = Path("/dev/tty")
    elif kind == "directory":
        path = a.home
    else:
        path = lab.user_file(a, ".jitlab/grant-huge", b"v4.public.", mode=0o600)
        os.truncate(path, 1 << 30)  # sparse: 1 GB that costs nothing on disk
    try:
        # a generous timeout: a jitrun that blocks on the FIFO or reads 1 GB would hit it
        res = lab.run_as_user(a, RAN, grant=path, timeout=30)
        assert_denied(res, "grant_unreadable")
        assert str(path) in res.err, str(res)
    finally:
        if kind in ("fifo", "sparse-1GB"):
            path.unlink(missing_ok=True)


# ---- the command


def test_command_in_a_user_writable_directory_is_refused(lab, world):
    """The file is root-owned and 0755, but its directory is the user's: the user could swap it."""
    a = world.alice
    tools = a.home / "tools"
    tools.mkdir(mode=0o755, exist_ok=True)
    os.chown(tools, a.uid, a.gid)
    target = tools / "rtrue"
    shutil.copyfile("/usr/bin/true", target)
    os.chown(target, 0, 0)
    os.chmod(target, 0o755)
    lab.set_policy(world.policy, dropins={"30-tools.toml": f'[[rule]]\nname = "tools"\nusers = ["{a}"]\n'
                                                          f'commands = ["{target}"]\ngrant = "none"\n'})
    res = lab.run_as_user(a, [str(target)])
    assert_denied(res, "command_unsafe")
    assert str(tools) in res.err, str(res)  # names the directory at fault


@pytest.mark.parametrize("spelling", ["./true", "bin/true", "../bin/true"])
def test_relative_command_paths_are_refused(lab, world, spelling):
    a = world.alice
    lab.user_file(a, "bin/true", Path("/usr/bin/true").read_bytes(), mode=0o755)
    res = lab.run_as_user(a, [spelling], grant=plain(lab, world), cwd=a.home / "bin" if spelling.startswith(".")
                          else a.home)
    assert_denied(res, "command_relative")


# ---- the supervisor cannot be traced, read or signalled by the user

PROBE = r"""
import ctypes, errno, os, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
PTRACE_ATTACH, PTRACE_DETACH = 16, 17
def attempt(pid):
    out = []
    for what in ("mem", "environ", "maps"):
        try:
            with open(f"/proc/{pid}/{what}", "rb") as f:
                f.read(16) if what != "mem" else f.read(1)
            out.append(f"{what}=ok")
        except OSError as e:
            out.append(f"{what}={errno.errorcode.get(e.errno, e.errno)}")
    r = libc.ptrace(PTRACE_ATTACH, pid, None, None)
    if r == 0:
        out.append("ptrace=ok")
        libc.ptrace(PTRACE_DETACH, pid, None, None)
    else:
        out.append("ptrace=" + errno.errorcode.get(ctypes.get_errno(), "?"))
    for sig in (signal.SIGKILL, signal.SIGSTOP, signal.SIGTERM):
        try:
            os.kill(pid, sig)
            out.append(f"{sig.name}=ok")
        except OSError as e:
            out.append(f"{sig.name}={errno.errorcode.get(e.errno, e.errno)}")
    return " ".join(out)
for p in sys.argv[1:]:
    print(p, attempt(int(p)))
"""

# a control: the same probe against the user's own process succeeds (mem read gives EIO for
# address 0, which still means it was opened), so the denials below are real denials
CONTROL = PROBE.replace("for p in sys.argv[1:]:", "import subprocess\nc = subprocess.Popen(['sleep', '30'])\n"
                                                   "sys.argv[1:] = [str(c.pid)]\nfor p in sys.argv[1:]:")


def test_user_cannot_trace_read_or_signal_the_supervisor(lab, world):
    a = world.alice
    ctl = lab.run_without_jitrun(a, ["/usr/bin/python3", "-c", CONTROL])
    assert "environ=ok" in ctl.out and "ptrace=ok" in ctl.out, f"the probe cannot even reach its own child\n{ctl}"
    grant = lab.user_file(a, ".jitlab/sup-grant", plain(lab, world))
    with lab.spawn_as_user(a, [str(lab.jitrun), "--grant", str(grant), "--", "/usr/bin/sh", "-c",
                               "echo STARTED; exec sleep 60"]) as run:
        assert run.wait_output(b"STARTED", 30), str(run)
        pids = run.jitrun_pids()  # the front, the supervisor and the watchdog
        assert pids, str(run)
        res = lab.run_without_jitrun(a, ["/usr/bin/python3", "-c", PROBE, *map(str, pids)])
        assert res.returncode == 0, str(res)
        lines = res.out.splitlines()
        assert len(lines) == len(pids), str(res)
        for line in lines:
            fields = dict(x.split("=") for x in line.split()[1:])
            assert fields["mem"] in ("EACCES", "EPERM"), line
            assert fields["environ"] in ("EACCES", "EPERM"), line
            assert fields["ptrace"] == "EPERM", line
            for sig in ("SIGKILL", "SIGSTOP", "SIGTERM"):
                assert fields[sig] == "EPERM", line
        assert all(Path(f"/proc/{p}").exists() for p in pids), "a jitrun process died"
        assert run.popen.poll() is None, str(run)


# ---- tokens


def test_oversized_token_is_refused_before_decoding(lab, world):
    a = world.alice
    big = lab.mint_with_pyseto(lab.claims(a, "plain", reason="x" * (70 * 1024)))
    assert len(big) > 64 * 1024
    res = lab.run_as_user(a, RAN, grant=big)
    assert_denied(res, "grant_unreadable")
    assert "too large" in res.err, str(res)
    # the same through standard input: read bounded, refused
    res = lab.run_as_user(a, RAN, grant="-", stdin=big + "\n" + "y" * (1 << 20))
    assert_denied(res, "grant_unreadable")
    assert "too large" in res.err, str(res)


def test_non_utf8_grant_file_is_refused(lab, world):
    a = world.alice
    token = plain(lab, world)
    path = lab.user_file(a, ".jitlab/grant-latin1", token.encode() + b"\xff\xfe\n", mode=0o600)
    assert_denied(lab.run_as_user(a, RAN, grant=path), "grant_unreadable")


def test_signed_non_utf8_payload_is_refused(lab, world):
    a = world.alice
    payload = json.dumps(lab.claims(a, "plain", reason="caf\u00e9")).encode().replace(b"caf\\u00e9", b"caf\xe9")
    assert b"\xe9" in payload
    assert_denied(lab.run_as_user(a, RAN, grant=lab.mint_with_pyseto(payload)), "grant_malformed")


def claims_with_duplicate(lab, a, key: str, first, last) -> bytes:
    c = lab.claims(a, "plain")
    c.pop(key, None)
    body = json.dumps(c)[:-1]
    return (body + f', {json.dumps(key)}: {json.dumps(first)}, {json.dumps(key)}: {json.dumps(last)}}}').encode()


@pytest.mark.parametrize("key,first,last", [
    ("sub", "root", None), ("rule", "read-all", "plain"), ("caps", ["CAP_SYS_ADMIN"], []),
])
def test_duplicate_claim_keys_are_refused(lab, world, key, first, last):
    """Parsers that keep the first and ones that keep the last would disagree about the grant."""
    a = world.alice
    payload = claims_with_duplicate(lab, a, key, first, a.name if last is None else last)
    assert payload.count(f'"{key}"'.encode()) == 2
    res = lab.run_as_user(a, RAN, grant=lab.mint_with_pyseto(payload))
    assert_denied(res, "grant_invalid_claim")
    assert key in res.err, str(res)


def nested_claims(lab, a, key: str, depth: int = 20000) -> bytes:
    c = lab.claims(a, "plain")
    c.pop(key, None)
    return (json.dumps(c)[:-1] + f', "{key}": ' + "[" * depth + "]" * depth + "}").encode()


def test_deeply_nested_claims_do_not_crash_jitrun(lab, world):
    """20000 levels of nesting (no stack overflow, no abort): in a claim jitrun reads it is a
    refusal; in an unknown claim, which docs/tokens.md says is ignored, it is skipped."""
    a = world.alice
    token = lab.mint_with_pyseto(nested_claims(lab, a, "caps"))
    assert len(token) < 64 * 1024
    res = lab.run_as_user(a, RAN, grant=token)
    assert_denied(res, "grant_invalid_claim")
    res = lab.run_as_user(a, RAN, grant=lab.mint_with_pyseto(nested_claims(lab, a, "x-unknown")))
    assert_ok(res)
    assert res.out == "RAN\n"


def test_revocation_list_token_is_not_a_grant(lab, world):
    """(An attestation passed as a grant: test_refusals.py::test_wrong_implicit_assertion.)"""
    a = world.alice
    token = lab.mint_with_pyseto(lab.claims(a, "plain"), implicit_assertion=b"jitrun:revocations:v1")
    assert_denied(lab.run_as_user(a, RAN, grant=token), "grant_bad_signature")


def test_grant_id_cannot_traverse_out_of_the_use_counter_directory(lab, world):
    """sudo-rs CVE-2023-42456 (a user name that became a path): the grant id names the use
    counter file; an id with '/' or '..' is refused before any file is made."""
    a = world.alice
    victim = Path(tempfile.gettempdir()) / f"jitattack-traversal-{os.getpid()}"
    victim.unlink(missing_ok=True)
    token = lab.mint_with_pyseto(lab.claims(a, "plain", jti=f"../../../..{victim}", max_uses=3))
    res = lab.run_as_user(a, RAN, grant=token)
    assert_denied(res, "grant_invalid_claim")
    assert not victim.exists()
    assert not list(lab.state.rglob("*jitattack-traversal*"))


def test_baron_samedit_trailing_backslashes_pass_verbatim(lab, world):
    """CVE-2021-3156: sudo un-escaped backslashes in `sudoedit -s` arguments and overflowed the
    heap on a trailing one. jitrun never rewrites argv: the command and the audit trail see
    exactly what was given; a refusal with a huge backslash argument is a clean refusal."""
    a = world.alice
    args = ["\\", "A\\", "\\\\\\", "x" * 1000 + "\\"]
    res = assert_ok(lab.run_as_user(a, ["/usr/bin/true", *args], grant=plain(lab, world)))
    assert res.event("elevate.start").get("process.args")[1:] == [x.replace("\\", "\\\\") for x in args]
    res = lab.run_as_user(world.bob, ["/usr/bin/true", "-s", "A" * 65536 + "\\"])
    assert_denied(res, "no_rule")
    assert len(res.err) < 1024, "the refusal must not echo the huge argument back"


# ---- max_uses under a race


def test_max_uses_holds_under_20_concurrent_runs(lab, world):
    a = world.alice
    token = plain(lab, world, max_uses=5)
    grant = lab.user_file(a, ".jitlab/race-grant", token)
    mark = lab.audit.mark()
    results: list = [None] * 20
    barrier = threading.Barrier(20)

    def one(i):
        barrier.wait()
        results[i] = lab.run_jitrun(a, ["--grant", str(grant), "--", "/usr/bin/true"], timeout=60)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert all(r is not None and not r.timed_out for r in results), [str(r) for r in results]
    rcs = sorted(r.returncode for r in results)
    assert rcs == [0] * 5 + [1] * 15, [str(r) for r in results if r.returncode not in (0, 1)]
    for r in results:
        if r.returncode == 1:
            assert len(r.err_lines) == 1 and "used 5 of 5" in r.err, str(r)
    lab.audit.sync()
    events = lab.audit.since(mark)
    starts = [e for e in events if e.action == "elevate.start"]
    denies = [e for e in events if e.action == "elevate.deny"]
    assert len(starts) == 5, [e.raw for e in events]
    assert len(denies) == 15 and {e.get("jitrun.deny_code") for e in denies} == {"grant_used_up"}
    assert counter_file(lab, token).read_bytes() == b"%020d\n" % 5


def flock_waiters(path: Path) -> int:
    """How many processes wait in flock(2) for ``path``: the blocked (`->`) lines of /proc/locks."""
    st = os.stat(path)
    key = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    return sum(1 for line in Path("/proc/locks").read_text().splitlines()
               if "->" in line.split() and key in line.split())


def wait_until(pred, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_max_uses_counter_is_read_and_rewritten_under_its_lock(lab, world):
    """The 20-way race above starts its runs as close together as it can, yet they seldom meet
    inside the few instructions between reading and rewriting the counter: it passes even with
    the lock removed (scripts/defence_check.py showed it). Here the overlap is certain: the
    test holds the counter's lock itself while 20 runs start. Each must wait for the lock (seen
    in /proc/locks) rather than read the count; none may get past it; once it is released, they
    go one at a time and exactly the uses left start."""
    a = world.alice
    token = plain(lab, world, max_uses=5)
    grant = lab.user_file(a, ".jitlab/locked-grant", token)
    args = ["--grant", str(grant), "--", "/usr/bin/true"]
    assert_ok(lab.run_jitrun(a, args))  # one use: the counter file exists now
    counter = counter_file(lab, token)
    mark = lab.audit.mark()
    with contextlib.ExitStack() as stack:
        with open(counter, "rb") as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            runs = [stack.enter_context(lab.spawn_as_user(a, [str(lab.jitrun), *args])) for _ in range(20)]

            def finished():
                return [r.popen.poll() for r in runs if r.popen.poll() is not None]

            # every run ends up waiting for the lock, or (a regression) goes past it
            settled = wait_until(lambda: flock_waiters(counter) + len(finished()) >= 20, 120)
            assert finished() == [], f"runs went past the locked counter: exit statuses {finished()}"
            assert settled and flock_waiters(counter) == 20, f"{flock_waiters(counter)} runs wait for the lock"
        rcs = sorted(r.wait(120) for r in runs)  # released: one at a time
    assert rcs == [0] * 4 + [1] * 16, rcs
    assert counter.read_bytes() == b"%020d\n" % 5
    lab.audit.sync()
    starts = [e for e in lab.audit.since(mark) if e.action == "elevate.start"]
    assert len(starts) == 4, [e.raw for e in starts]


# ---- TIOCSTI (doas CVE-2023-28339): keystrokes pushed into the caller's terminal


def test_command_cannot_inject_keystrokes_into_the_callers_terminal(lab, world):
    """A command running as another user on the caller's terminal cannot TIOCSTI into it:
    jitrun's seccomp filter makes the ioctl fail with EPERM (TIOCLINUX too). Control: the same
    helper run directly by the user on its own terminal succeeds (legacy_tiocsti is on here)."""
    legacy = Path("/proc/sys/dev/tty/legacy_tiocsti")
    if legacy.exists() and legacy.read_text().strip() == "0":
        pytest.skip("this kernel refuses TIOCSTI to everyone (dev.tty.legacy_tiocsti = 0)")
    helper = lab.compile_helper("tiocsti")
    a = world.alice
    with lab.spawn_as_user(a, [str(helper)], pty=True) as control:
        assert control.wait(30) == 0, str(control)
        # (the pty reader may lag behind the exit: wait for the text, do not just look)
        assert control.wait_output(b"TIOCSTI ok"), str(control)
    lab.set_policy(world.policy, dropins={"20-tiocsti.toml": f"""
[[rule]]
name = "as-service"
users = ["{a}"]
commands = ["{helper}"]
run_as = "{world.svc}"
grant = "none"
"""})
    with lab.spawn_as_user(a, [str(lab.jitrun), "--", str(helper)], pty=True) as run:
        assert run.wait(30) == 3, str(run)
        assert run.wait_output(b"TIOCSTI refused: Operation not permitted"), str(run)
        start = [e for e in run.events() if e.action == "elevate.start"]
        assert start and start[0].get("user.target.name") == world.svc.name, str(run)


# ==== issue 12: what the caller controls around a run she is allowed to make ====================
# Each test replays one attack that worked against the setuid binary, with a control that shows
# the attack's mechanism is real on this host (so that a pass is not vacuous).

NET_RAW = cap_mask("net_raw")

RAW_RULES = """
[[rule]]
name = "raw-sleep"
users = ["{a}"]
commands = ["/usr/bin/sleep *"]
capabilities = ["CAP_NET_RAW"]
max_duration = "30m"

[[rule]]
name = "raw-shell"
users = ["{a}"]
commands = ["/usr/bin/dash -c **"]
capabilities = ["CAP_NET_RAW"]
grant = "none"
"""


def raw_rules(lab, world) -> None:
    lab.set_policy(world.policy, dropins={"30-raw.toml": RAW_RULES.format(a=world.alice)})


def proc_state(pid: int) -> str | None:
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return data[data.rindex(b")") + 2: data.rindex(b")") + 3].decode()


def proc_stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat after the command name: index 0 is field 3 (state)."""
    data = Path(f"/proc/{pid}/stat").read_text()
    return data[data.rindex(")") + 2:].split()


def status_of_pid(pid: int) -> dict[str, str]:
    return parse_proc_status(Path(f"/proc/{pid}/status").read_text())


def cap_eff(pid: int) -> int:
    return int(status_of_pid(pid)["CapEff"], 16)


def seconds_left(token: str) -> float:
    exp = datetime.fromisoformat(decode_token(token)[0]["exp"].replace("Z", "+00:00"))
    return exp.timestamp() - time.time()


def exe_of(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


def tree_process(run, exe: str, not_pids: tuple[int, ...] = ()) -> int:
    """The live process of the run's tree that runs ``exe`` (waits for it to appear)."""
    found: list[int] = []

    def one() -> bool:
        found[:] = [p for p in [run.pid, *descendants(run.pid)] if exe_of(p) == exe and p not in not_pids
                    and proc_state(p) not in (None, "Z")]
        return len(found) == 1
    assert wait_until(one, 30), f"no single {exe} in the run's tree: {found}\n{run}"
    return found[0]


def events_of(run, action: str) -> list:
    return [e for e in run.events() if e.action == action]


def cgroup2_mount() -> Path | None:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        if right.split()[:1] == ["cgroup2"]:
            return Path(left.split()[4])
    return None


def remove_cgroup_tree(top: Path) -> None:
    """Kill what is left in a test's cgroup tree and remove it, deepest first."""
    dirs = sorted((d for d in top.rglob("*") if d.is_dir()), key=lambda d: -len(d.parts)) + [top]
    for d in dirs:
        with contextlib.suppress(OSError):
            (d / "cgroup.kill").write_text("1")
        wait_until(lambda: "populated 0" in (d / "cgroup.events").read_text(), 10)
        with contextlib.suppress(OSError):
            d.rmdir()


@contextlib.contextmanager
def delegated_cgroup(user: User):
    """A cgroup delegated to ``user`` the way systemd does it (Delegate=yes, a user scope): the
    directory and its cgroup.procs, cgroup.threads and cgroup.subtree_control are hers."""
    mount = cgroup2_mount()
    if mount is None:
        pytest.skip("no cgroup v2 on this host")
    top = mount / f"jitattack-deleg-{secrets.token_hex(4)}"
    top.mkdir()
    try:
        for f in (top, top / "cgroup.procs", top / "cgroup.threads", top / "cgroup.subtree_control"):
            os.chown(f, user.uid, user.gid)
        yield top
    finally:
        remove_cgroup_tree(top)


# Runs as the user: waits until the test has put it into her delegated cgroup, leaves a decoy
# process of her own there, then becomes jitrun.
DELEGATED_SHELL = r"""
trigger=$1
shift
while [ ! -e "$trigger" ]; do sleep 0.05; done
sleep 1000 &
echo "DECOY=$!"
exec "$@"
"""

# Runs as the user: moves the given pids into a sub-cgroup of her delegated cgroup and kills it.
CGROUP_KILL = r"""
import errno, os, sys
top, pids = sys.argv[1], sys.argv[2:]
trap = os.path.join(top, "trap")
os.mkdir(trap)
out = []
for p in pids:
    try:
        with open(os.path.join(trap, "cgroup.procs"), "w") as f:
            f.write(p)
        out.append(f"{p}=moved")
    except OSError as e:
        out.append(f"{p}={errno.errorcode.get(e.errno, e.errno)}")
with open(os.path.join(trap, "cgroup.kill"), "w") as f:
    f.write("1")
print(" ".join(out))
"""


def test_a_delegated_cgroup_cannot_kill_the_supervisor_and_watchdog(lab, world):
    """Issue 12 #1: a user who owns a cgroup (a systemd user scope, any Delegate=yes unit) moved
    the root supervisor and watchdog into a sub-cgroup of hers and wrote its cgroup.kill: both
    died and the command kept CAP_NET_RAW long past its grant, with no elevate.end. jitrun now
    moves its own processes into its root-owned cgroup first thing; moving them out needs write
    access to the root cgroup. Control: her own decoy process in her cgroup is hers to move and
    kill."""
    a = world.alice
    raw_rules(lab, world)
    with delegated_cgroup(a) as top:
        trigger = a.home / ".jitlab" / "cgroup-go"
        trigger.unlink(missing_ok=True)
        token = lab.mint(a, "raw-sleep", ttl="10s")
        grant = lab.user_file(a, ".jitlab/cgroup-grant", token)
        argv = ["/bin/sh", "-c", DELEGATED_SHELL, "shell", str(trigger), str(lab.jitrun), "--grant", str(grant),
                "--", "/usr/bin/sleep", "600"]
        with lab.spawn_as_user(a, argv) as run:
            (top / "cgroup.procs").write_text(str(run.pid))  # her session lives in her cgroup
            lab.user_file(a, ".jitlab/cgroup-go", "")
            assert run.wait_output(b"DECOY=", 30), str(run)
            assert wait_until(lambda: events_of(run, "elevate.start"), 30), str(run)
            decoy = int(re.search(rb"DECOY=(\d+)", run.output).group(1))
            cmd = tree_process(run, "/usr/bin/sleep", (decoy,))
            assert cap_eff(cmd) & NET_RAW, "the command should hold CAP_NET_RAW (else nothing is at stake)"
            # the front (the process her shell started, run.pid) stays in her cgroup by design
            # and only waits (crates/jitrun/src/front.rs): hers to kill, like her decoy; the
            # supervisor and the watchdog must be out of her reach
            jitruns = run.jitrun_pids()
            inner = [run.supervisor_pid(), *run.watchdog_pids()]
            assert len(inner) == 2 and run.pid not in inner and set(inner) <= set(jitruns), \
                f"supervisor and watchdog expected besides the front: {jitruns}\n{run}"
            res = lab.run_without_jitrun(a, ["/usr/bin/python3", "-c", CGROUP_KILL, str(top), str(decoy),
                                             *map(str, jitruns)])
            assert res.returncode == 0, str(res)
            moved = dict(x.split("=") for x in res.out.split())
            assert moved[str(decoy)] == "moved", f"the delegation does not work: {res.out}"
            assert wait_until(lambda: not pid_alive(decoy), 10), "cgroup.kill did not end her own decoy"
            for pid in inner:
                assert moved[str(pid)] != "moved", f"jitrun process {pid} was moved into her cgroup: {res.out}"
            assert all(pid_alive(p) for p in inner), f"the supervisor or the watchdog died: {res.out}\n{run}"
            assert seconds_left(token) > 0, "test too slow: the grant expired before the attack"
            rc = run.wait(seconds_left(token) + 30)
            assert rc is not None, f"jitrun did not end the run at the grant's expiry\n{run}"
            # whether or not she killed the front, the supervisor ends the command at expiry
            assert wait_until(lambda: events_of(run, "elevate.end"), seconds_left(token) + 30), str(run)
            ends = events_of(run, "elevate.end")
            assert len(ends) == 1 and ends[0].get("jitrun.end_reason") == "expired", str(run)
            assert not pid_alive(cmd), "the command outlived its grant"


def spawn_raw_sleep(lab, world, tag: str, seconds: int):
    """alice runs `sleep SECONDS` on a fresh `raw-sleep` grant (CAP_NET_RAW), not waited for."""
    raw_rules(lab, world)
    grant = lab.user_file(world.alice, f".jitlab/{tag}-grant", lab.mint(world.alice, "raw-sleep", ttl="10m"))
    return lab.spawn_as_user(world.alice, [str(lab.jitrun), "--grant", str(grant), "--", "/usr/bin/sleep",
                                           str(seconds)])


def test_a_run_whose_supervisor_and_watchdog_died_is_ended_and_logged_by_the_next_jitrun(lab, world):
    """Issue 12 #1, second half: if both root processes of a run vanish anyway (only root or the
    OOM killer can end them now), the command would keep its capabilities with nothing logged.
    The next jitrun on the host, even one that refuses, finds the run's cgroup without a
    supervisor, kills the command and logs elevate.end with `supervisor_killed`."""
    a = world.alice
    with spawn_raw_sleep(lab, world, "stale", 600) as run:
        assert wait_until(lambda: events_of(run, "elevate.start"), 30), str(run)
        session = events_of(run, "elevate.start")[0].get("jitrun.session_id")
        assert exe_of(run.pid) == str(lab.jitrun), "the spawned process is not jitrun"
        cmd = tree_process(run, "/usr/bin/sleep")
        supervisor = run.supervisor_pid()
        assert supervisor == int(status_of_pid(cmd)["PPid"]), str(run)
        watchdogs = run.watchdog_pids()
        assert len(watchdogs) == 1, str(run)
        # both at once: the watchdog stopped first cannot react to the supervisor's death
        os.kill(watchdogs[0], signal.SIGSTOP)
        os.kill(supervisor, signal.SIGKILL)
        os.kill(watchdogs[0], signal.SIGKILL)
        assert wait_until(lambda: not pid_alive(supervisor) and not pid_alive(watchdogs[0]), 20)
        # control: a stale run, the command alone and still capable
        assert pid_alive(cmd) and cap_eff(cmd) & NET_RAW, "the command did not outlive its supervisor"
        mark = lab.audit.mark()
        res = lab.run_as_user(world.bob, ["/usr/bin/true"])
        assert_denied(res, "no_rule")
        assert wait_until(lambda: not pid_alive(cmd), 20), "the next jitrun left the abandoned command running"
        lab.audit.sync()
        ends = [e for e in lab.audit.since(mark) if e.action == "elevate.end"
                and e.get("jitrun.session_id") == session]
        assert len(ends) == 1, [e.raw for e in lab.audit.since(mark)]
        assert ends[0].get("jitrun.end_reason") == "supervisor_killed", ends[0].raw
        assert ends[0].get("user.name") == a.name and ends[0].get("jitrun.rule") == "raw-sleep", ends[0].raw
        mount = cgroup2_mount()
        assert mount is None or not (mount / "jitrun" / session).exists(), "the abandoned run's cgroup is left"


def test_a_finished_runs_cgroup_is_removed(lab, world):
    """No jitrun process moves itself out of the run's cgroup to remove it (a move waits for an
    RCU grace period, before the caller gets her exit status): the front and the watchdog remove
    the run's directories once the supervisor has exited. Control: they exist while the command
    runs."""
    mount = cgroup2_mount()
    if mount is None:
        pytest.skip("no cgroup v2 on this host")
    with spawn_raw_sleep(lab, world, "cgroup", 2) as run:
        assert wait_until(lambda: events_of(run, "elevate.start"), 30), str(run)
        session = mount / "jitrun" / events_of(run, "elevate.start")[0].get("jitrun.session_id")
        assert (session / "supervisor").is_dir() and (session / "command").is_dir(), str(run)
        assert run.wait(60) == 0, str(run)
        assert wait_until(lambda: not session.exists(), 30), f"{session} is left after the run\n{run}"
        ends = events_of(run, "elevate.end")
        assert len(ends) == 1 and ends[0].get("jitrun.end_reason") == "exit", str(run)


# ---- issue 12 #2: inherited process attributes

# Runs as the user: sets her timer slack (nanoseconds, argv[1]), then execs the rest.
TIMER_SLACK = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(29, ctypes.c_ulong(int(sys.argv[1])), 0, 0, 0) != 0:  # PR_SET_TIMERSLACK
    raise OSError(ctypes.get_errno(), "PR_SET_TIMERSLACK")
os.execv(sys.argv[2], sys.argv[2:])
"""

ONE_HOUR_NS = 3_600_000_000_000


def test_the_callers_timer_slack_does_not_delay_the_end_of_a_grant(lab, world):
    """Issue 12 #2: a caller's PR_SET_TIMERSLACK is inherited through the setuid exec; with an
    hour of slack the supervisor's and watchdog's timers may fire an hour late, and a 6 s grant's
    command kept its capability that long. jitrun sets its own slack at start: the run ends at
    expiry (the generous timeout only catches the hang)."""
    a = world.alice
    raw_rules(lab, world)
    ctl = lab.run_without_jitrun(a, ["/usr/bin/python3", "-c", TIMER_SLACK, str(ONE_HOUR_NS), "/usr/bin/cat",
                                     "/proc/self/timerslack_ns"])
    assert ctl.out.strip() == str(ONE_HOUR_NS), f"the slack is not inherited by exec: {ctl}"
    token = lab.mint(a, "raw-sleep", ttl="6s")
    res = lab.run_as_user(a, ["/usr/bin/sleep", "600"], grant=token, timeout=90,
                          prefix=["/usr/bin/python3", "-c", TIMER_SLACK, str(ONE_HOUR_NS)])
    assert not res.timed_out, f"the grant's end waited for the caller's timer slack\n{res}"
    assert res.event("elevate.end").get("jitrun.end_reason") == "expired", str(res)


# Runs as the user: the attributes of her own process that survive fork and a setuid execve and
# that she may set without privilege (argv[1]: timer slack, argv[2]: seconds of ITIMER_REAL,
# argv[3]: oom_score_adj), then execs the rest. (PR_SET_TSC is left out: with PR_TSC_SIGSEGV
# every dynamically linked program, jitrun included, dies in the loader before main.)
ATTRIBUTES = r"""
import ctypes, os, platform, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
def ok(r, what):
    if r != 0:
        raise OSError(ctypes.get_errno(), what)
ok(libc.prctl(29, ctypes.c_ulong(int(sys.argv[1])), 0, 0, 0), "PR_SET_TIMERSLACK")
os.setpriority(os.PRIO_PROCESS, 0, 19)
os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
ioprio_set = {"x86_64": 251, "aarch64": 30}[platform.machine()]
ok(libc.syscall(ioprio_set, 1, 0, (3 << 13) | 7), "ioprio_set(IOPRIO_CLASS_IDLE)")
if sys.argv[3] != "keep":
    with open("/proc/self/oom_score_adj", "w") as f:
        f.write(sys.argv[3])
libc.personality(0x0020000 | 0x4000000)  # UNAME26 | STICKY_TIMEOUTS
signal.setitimer(signal.ITIMER_REAL, float(sys.argv[2]))
os.execv(sys.argv[4], sys.argv[4:])
"""


def ioprio_class(pid: int) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    number = {"x86_64": 252, "aarch64": 31}[os.uname().machine]  # ioprio_get
    value = libc.syscall(number, 1, pid)
    assert value >= 0, f"ioprio_get({pid}): errno {ctypes.get_errno()}"
    return value >> 13


def scheduling_of(pid: int) -> dict:
    f = proc_stat_fields(pid)
    return {"nice": int(f[16]), "policy": int(f[38]), "slack": int(Path(f"/proc/{pid}/timerslack_ns").read_text()),
            "cpus": status_of_pid(pid)["Cpus_allowed_list"], "ioprio_class": ioprio_class(pid),
            "oom_score_adj": int(Path(f"/proc/{pid}/oom_score_adj").read_text()),
            "personality": int(Path(f"/proc/{pid}/personality").read_text(), 16)}


def test_inherited_process_attributes_are_reset_for_jitrun_and_given_back_to_the_command(lab, world):
    """Issue 12 #2: nice 19, SCHED_IDLE, one CPU, the idle I/O class, an hour of timer slack,
    personality flags and an armed ITIMER_REAL all survive a setuid exec. The supervisor and
    watchdog must run with the kernel's defaults (else they starve, fire their timers late, or
    get SIGALRM when the caller chose); the command gets back what a person would have chosen
    for it (nice, chrt -i, taskset, ionice, timer slack). Control: the command shows the
    caller's values, so the wrapper really set them."""
    a = world.alice
    raw_rules(lab, world)
    token = lab.mint(a, "raw-sleep", ttl="8s")
    mine = scheduling_of(os.getpid())
    with lab.spawn_as_user(a, ["/usr/bin/python3", "-c", ATTRIBUTES, str(ONE_HOUR_NS), "4", "keep", str(lab.jitrun),
                               "--grant", str(lab.user_file(a, ".jitlab/attr-grant", token)), "--",
                               "/usr/bin/sleep", "600"]) as run:
        assert wait_until(lambda: events_of(run, "elevate.start") or run.popen.poll() is not None, 30), str(run)
        assert run.popen.poll() is None, f"jitrun ended at once: {run.popen.poll()}\n{run}"
        cmd = tree_process(run, "/usr/bin/sleep")
        command = scheduling_of(cmd)
        del command["oom_score_adj"]  # test_a_raised_oom_score_adj_is_reset_for_jitrun_or_the_run_is_refused
        assert command == {"nice": 19, "policy": 5, "slack": ONE_HOUR_NS, "cpus": command["cpus"],
                           "ioprio_class": 3, "personality": 0}, command
        assert "," not in command["cpus"] and "-" not in command["cpus"], command
        jitruns = run.jitrun_pids()  # the front, the supervisor, the watchdog
        assert run.supervisor_pid() in jitruns and len(run.watchdog_pids()) == 1, str(run)
        for pid in jitruns:
            got = scheduling_of(pid)
            assert got["slack"] == 50_000 and got["nice"] == 0 and got["policy"] == 0, got
            assert got["cpus"] == mine["cpus"] and got["ioprio_class"] != 3, got
            assert got["personality"] == 0, got
        # the caller's ITIMER_REAL (4 s) was disarmed: no SIGALRM reaches the command
        rc = run.wait(seconds_left(token) + 30)
        assert rc is not None, str(run)
        ends = events_of(run, "elevate.end")
        assert len(ends) == 1 and ends[0].get("jitrun.end_reason") == "expired", str(run)


def test_a_raised_oom_score_adj_is_reset_for_jitrun(lab, world):
    """Issue 12 #2: oom_score_adj 1000 on the supervisor and watchdog would make them the OOM
    killer's first victims, and a memory hog of the caller's could then leave the command
    unsupervised. jitrun lowers what she raised herself (no privilege needed down to the floor
    a privileged process set, 0 here; CAP_SYS_RESOURCE, which root lacks on some hosts, only
    below it); the command gets her 1000 back (the control)."""
    a = world.alice
    raw_rules(lab, world)
    token = lab.mint(a, "raw-sleep", ttl="5m")
    prefix = ["/usr/bin/python3", "-c", ATTRIBUTES, str(50_000), "0", "1000"]
    with lab.spawn_as_user(a, [*prefix, str(lab.jitrun), "--grant", str(lab.user_file(a, ".jitlab/oom-grant", token)),
                               "--", "/usr/bin/sleep", "600"]) as run:
        cmd = tree_process(run, "/usr/bin/sleep")
        assert scheduling_of(cmd)["oom_score_adj"] == 1000, "the caller's value should reach the command"
        jitruns = run.jitrun_pids()  # the front, the supervisor, the watchdog
        assert len(run.watchdog_pids()) == 1 and run.supervisor_pid() in jitruns, str(run)
        assert [scheduling_of(p)["oom_score_adj"] for p in jitruns] == [0] * len(jitruns), str(run)


FAKE_SETTINGS = 'host = "{host}"\n\n[audit]\nsocket = "/nonexistent/log"\nfail_closed = false\n'


def test_a_user_namespace_cannot_feed_jitrun_a_fake_configuration(lab, world):
    """In a user namespace of her own the caller is uid 0 and may bind-mount her own
    /etc/jitrun (her files show up as root's there). The kernel ignores the setuid bit of a file
    whose owner that namespace does not map, so jitrun holds no privilege there; it must still
    refuse rather than act on her configuration. Control: the namespace, the fake policy and
    the bind mount really work (she is uid 0 there and sees her policy at /etc/jitrun)."""
    a = world.alice
    fake = a.home / "fake-etc"
    state = a.home / "fake-state"
    lab.user_file(a, "fake-etc/jitrun.toml", FAKE_SETTINGS.format(host=lab.host), mode=0o644)
    lab.user_file(a, "fake-etc/policy.toml",
                  f'[[rule]]\nname = "all"\nusers = ["{a}"]\ncommands = ["/usr/bin/cat /etc/shadow"]\n'
                  'run_as = "root"\ncapabilities = ["CAP_DAC_READ_SEARCH"]\ngrant = "none"\n', mode=0o644)
    lab._user_dirs(a, fake / "keys.d")
    lab._user_dirs(a, fake / "policy.d")
    lab._user_dirs(a, state)
    for d in (fake, fake / "keys.d", fake / "policy.d"):
        os.chmod(d, 0o755)
    script = (f'mount --bind {fake} /etc/jitrun && mount --bind {state} /var/lib/jitrun && '
              f'echo "NS_UID=$(id -u) $(head -c 8 /etc/jitrun/policy.toml)" && '
              f'exec {lab.jitrun} -- /usr/bin/cat /etc/shadow')
    res = lab.run_without_jitrun(a, ["/usr/bin/unshare", "--user", "--map-root-user", "--mount", "--", "/bin/sh",
                                     "-c", script])
    assert "NS_UID=0 [[rule]]" in res.out, f"the user namespace or the bind mount did not work: {res}"
    assert "root:" not in res.out, f"/etc/shadow was read\n{res}"
    assert res.returncode == 1, str(res)
    assert "user namespace" in res.err and "Permission denied" not in res.err, \
        f"jitrun acted on the namespace's configuration instead of refusing\n{res}"


# ---- issue 12 #3: argv[0]

PGREP_RULE = '[[rule]]\nname = "pgrep"\nusers = ["{a}"]\ncommands = ["/usr/bin/pgrep -f *"]\nrun_as = "root"\ngrant = "none"\n'


@pytest.mark.parametrize("spelling", ["home-symlink", "secure-path"])
def test_argv0_is_the_path_the_rule_matched_so_pgrep_cannot_act_as_pkill(lab, world, spelling):
    """Issue 12 #3: a rule allows `/usr/bin/pgrep -f *` as root. `ln -s /usr/bin/pgrep ~/pkill;
    jitrun ~/pkill -f PATTERN` matched the rule (the resolved path) but ran with argv[0] `pkill`
    and killed a root process. Debian's own /usr/bin/pkill is such a symlink, so `jitrun pkill`
    did the same. The command's argv[0] is now the path the rule matched. Control: the pattern
    finds the victim."""
    a = world.alice
    lab.set_policy(world.policy, dropins={"30-pgrep.toml": PGREP_RULE.format(a=a)})
    n = str(4_200_000 + secrets.randbelow(99_999))
    victim = subprocess.Popen(["/usr/bin/sleep", n])
    try:
        pattern = f"slee[p] {n}"  # matches the victim, not the jitrun command lines that carry it
        ctl = subprocess.run(["/usr/bin/pgrep", "-f", pattern], capture_output=True, text=True)
        assert ctl.stdout.split() == [str(victim.pid)], ctl
        if spelling == "home-symlink":
            link = a.home / "pkill"
            link.unlink(missing_ok=True)
            os.symlink("/usr/bin/pgrep", link)
            os.lchown(link, a.uid, a.gid)
            name = str(link)
        else:
            assert os.path.realpath("/usr/bin/pkill") == "/usr/bin/pgrep", "pkill is not pgrep here"
            name = "pkill"
        res = assert_ok(lab.run_as_user(a, [name, "-f", pattern]))
        assert res.event("elevate.start").get("process.executable") == "/usr/bin/pgrep", str(res)
        assert victim.poll() is None, f"the root process was killed: the command acted as pkill\n{res}"
        assert res.out.split() == [str(victim.pid)], f"pgrep should have listed the victim\n{res}"
    finally:
        victim.kill()
        victim.wait()


def test_argv0_of_a_multicall_busybox_is_the_matched_path(lab, world):
    """The same for busybox: a rule allows `busybox wc *` as root; a symlink named `rm` made it
    remove root's file."""
    busybox = shutil.which("busybox", path="/usr/bin:/bin")
    if not busybox:
        pytest.skip("busybox is not installed (make deps installs it)")
    busybox = os.path.realpath(busybox)
    a = world.alice
    lab.set_policy(world.policy, dropins={"30-busybox.toml": f'[[rule]]\nname = "bb-wc"\nusers = ["{a}"]\n'
                                                              f'commands = ["{busybox} wc *"]\nrun_as = "root"\n'
                                                              'grant = "none"\n'})
    victim_dir = Path(tempfile.mkdtemp(prefix="jitattack-bb-"))
    victim = victim_dir / "precious"
    victim.write_text("one line\n")
    os.chmod(victim_dir, 0o755)
    link = a.home / "rm"
    link.unlink(missing_ok=True)
    os.symlink(busybox, link)
    os.lchown(link, a.uid, a.gid)
    try:
        # control: run by its own name the applet really is rm (on a file of hers)
        mine = lab.user_file(a, "mine.txt", "x\n")
        ctl = lab.run_without_jitrun(a, [str(link), str(mine)])
        assert ctl.returncode == 0 and not mine.exists(), ctl
        res = assert_ok(lab.run_as_user(a, [str(link), "wc", str(victim)]))
        assert victim.exists(), f"root's file was removed: the command acted as rm\n{res}"
        assert res.out.split()[:3] == ["1", "2", "9"], f"busybox should have run wc\n{res}"
    finally:
        shutil.rmtree(victim_dir, ignore_errors=True)


# ---- issue 12 #4: the caller's files steer a capable command

PYTOOL = "#!/usr/bin/python3\nprint('TOOL RAN')\n"

EVIL_PTH = ("import sys; print('PTH RAN')\n"
            "import sys; exec(\"try:\\n print('SHADOW', open('/etc/shadow').readline().strip())\\n"
            "except OSError as e:\\n print('NO SHADOW', e.errno)\")\n")


def test_a_capable_command_does_not_run_the_callers_python_user_site(lab, world):
    """Issue 12 #4: capabilities arrive as ambient capabilities, so the kernel does not mark the
    exec secure; with HOME still the caller's, Python ran ~/.local/.../zz-evil.pth inside a
    command holding CAP_DAC_READ_SEARCH, which printed a line of /etc/shadow. An elevated
    command now gets a HOME its caller cannot write, PYTHONNOUSERSITE=1 and PYTHONSAFEPATH=1.
    Control: run by the user herself, the tool does load her .pth file."""
    a = world.alice
    tool = lab.install_file("pytool", PYTOOL.encode(), 0o755)
    lab.set_policy(world.policy, dropins={"30-pytool.toml": f'[[rule]]\nname = "pytool"\nusers = ["{a}"]\n'
                                                            f'commands = ["{tool}", "/usr/bin/env"]\n'
                                                            'capabilities = ["CAP_DAC_READ_SEARCH"]\n'
                                                            'grant = "none"\n'})
    site = lab.run_without_jitrun(a, ["/usr/bin/python3", "-c", "import site; print(site.getusersitepackages())"])
    site_dir = Path(site.out.strip())
    lab.user_file(a, str((site_dir / "zz-evil.pth").relative_to(a.home)), EVIL_PTH, mode=0o644)
    ctl = lab.run_without_jitrun(a, [str(tool)])
    assert "PTH RAN" in ctl.out and "NO SHADOW" in ctl.out and "TOOL RAN" in ctl.out, ctl
    res = assert_ok(lab.run_as_user(a, [str(tool)]))
    assert "TOOL RAN" in res.out, str(res)
    assert "SHADOW" not in res.out, f"the caller's .pth ran with CAP_DAC_READ_SEARCH\n{res}"
    assert "PTH RAN" not in res.out, f"the caller's .pth ran in a capable command\n{res}"
    env = parse_env(assert_ok(lab.run_as_user(a, ["/usr/bin/env"])).out)
    assert env["HOME"] == "/nonexistent" and not Path("/nonexistent").exists(), env
    assert env.get("PYTHONNOUSERSITE") == "1" and env.get("PYTHONSAFEPATH") == "1", env
    # a run that gains nothing keeps her HOME (test_execution.py::test_environment_is_clean)


# ---- issue 12 #5: core dumps

GREP_RULE = ('[[rule]]\nname = "grep-secret"\nusers = ["{a}"]\ncommands = ["/usr/bin/grep -F -f * -"]\n'
             'capabilities = ["CAP_DAC_READ_SEARCH"]\ngrant = "none"\n')


def quit_grep_and_collect_cores(lab, user, argv: list[str], cwd: Path) -> list[Path]:
    """Start ``argv`` (ends in a grep reading stdin) as ``user`` in ``cwd`` with RLIMIT_CORE
    unlimited, SIGQUIT the grep once it waits, and return the core files left in ``cwd``."""
    # SIGQUIT at its default action: a shell's background job inherits it ignored
    quit_default = ["/usr/bin/python3", "-c", "import os, signal, sys; signal.signal(signal.SIGQUIT, "
                    "signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"]
    cmd = ["/usr/bin/prlimit", "--core=unlimited", "--", *quit_default, *argv]
    with lab.spawn_as_user(user, cmd, stdin=subprocess.PIPE, cwd=cwd) as run:
        grep = tree_process(run, "/usr/bin/grep")
        assert wait_until(lambda: proc_state(grep) == "S", 20), str(run)
        assert lab.run_without_jitrun(user, ["/usr/bin/kill", "-QUIT", str(grep)]).returncode == 0
        assert wait_until(lambda: not pid_alive(grep), 30), str(run)
        run.wait(30)
    return sorted(cwd.glob("core*"))


def test_a_capable_command_leaves_no_core_dump(lab, world):
    """Issue 12 #5: the command got the caller's RLIMIT_CORE back and stays dumpable (its uids
    all equal after exec): a SIGQUIT to a grep holding CAP_DAC_READ_SEARCH left a core, owned by
    the caller, holding a line of a root-only file. An elevated command now runs with a hard
    RLIMIT_CORE of 1 byte: too small for any core file, and the kernel's "no dump" value for a
    core_pattern pipe. Control: the same grep run by the user leaves a core here."""
    pattern = Path("/proc/sys/kernel/core_pattern").read_text().strip()
    if pattern.startswith(("|", "@")):
        pytest.skip(f"core dumps go to {pattern!r} here: no core file to look for")
    a = world.alice
    lab.set_policy(world.policy, dropins={"30-grep.toml": GREP_RULE.format(a=a)})
    secret_dir = Path(tempfile.mkdtemp(prefix="jitattack-core-"))  # root, 0700
    secret = secret_dir / "secret.log"
    token = f"JITSECRET{secrets.token_hex(8)}"
    secret.write_text(token + "\n")
    os.chmod(secret, 0o600)
    cores = a.home / "cores"
    lab._user_dirs(a, cores)
    try:
        mine = lab.user_file(a, "mine.pat", "x\n")
        ctl = quit_grep_and_collect_cores(lab, a, ["/usr/bin/grep", "-F", "-f", str(mine), "-"], cores)
        assert ctl, f"no core file from the user's own grep: this host writes none ({pattern!r})"
        for f in ctl:
            f.unlink()
        left = quit_grep_and_collect_cores(lab, a, [str(lab.jitrun), "--", "/usr/bin/grep", "-F", "-f", str(secret),
                                                    "-"], cores)
        leaked = [f for f in left if token.encode() in f.read_bytes()]
        assert not left, f"the capable command left core files {left} (holding the secret: {bool(leaked)})"
    finally:
        shutil.rmtree(secret_dir, ignore_errors=True)
        shutil.rmtree(cores, ignore_errors=True)


# ---- issue 12 #6: a lock a stopped jitrun could hold

SPOOLED = (b'<86>Jan  1 00:00:00 jitrun[1]: @cee:{"event":{"action":"jitlab.spooled"},'
           b'"jitrun":{"session_id":"spooled-before"}}')


def test_a_held_audit_spool_lock_does_not_stop_other_users_runs(lab, world):
    """Issue 12 #6: a caller SIGSTOPped her own jitrun while it held the audit spool's lock
    (taken whenever /var/lib/jitrun/spool exists); every other jitrun on the host then hung in
    flock. The test holds that lock itself, as a stopped jitrun would: other users' runs must
    complete and be logged, and the event waiting in the spool goes out with the first run
    after the lock is released (the control: jitrun really drains this spool)."""
    spool = lab.state / "spool"
    spool.mkdir(mode=0o700, exist_ok=True)
    (spool / "00000000000000000001-0000000001-0000.dgram").write_bytes(SPOOLED)
    with open(spool / ".lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        denied = lab.run_as_user(world.bob, ["/usr/bin/true"], timeout=30)
        assert not denied.timed_out, f"jitrun waited for the spool's lock\n{denied}"
        assert_denied(denied, "no_rule")
        ran = assert_ok(lab.run_as_user(world.alice, ["/usr/bin/id"], timeout=30))
        assert ran.actions() == ["elevate.start", "elevate.end"], str(ran)
        assert list(spool.glob("*.dgram")), "the waiting event went out while another process held the lock"
    after = lab.run_as_user(world.bob, ["/usr/bin/true"], timeout=30)
    assert after.actions() == ["jitlab.spooled", "elevate.deny"], str(after)


def pending_signals(pid: int) -> int:
    """The signals pending for ``pid`` (0 once it is gone)."""
    try:
        st = status_of_pid(pid)
    except OSError:
        return 0
    return int(st["SigPnd"], 16) | int(st["ShdPnd"], 16)


@pytest.mark.parametrize("how", ["kill-stop", "ctrl-z"])
def test_the_caller_cannot_stop_her_own_jitrun_before_it_starts_the_command(lab, world, how):
    """Issue 12 #6, the root of it: before it forks, jitrun had the caller's real uid, so she
    could SIGSTOP it (or stop it with Ctrl-Z from her terminal) while it held a lock. jitrun
    makes itself unsignalable by her right after reading who she is. The test holds the grant's
    use counter lock so that her jitrun waits (seen in /proc/locks) at a known point; her
    SIGSTOP is refused, her Ctrl-Z stays pending. Control: she can stop a process of her own."""
    a = world.alice
    token = lab.mint(a, "plain", max_uses=5)
    grant = lab.user_file(a, ".jitlab/stop-grant", token)
    args = [str(lab.jitrun), "--grant", str(grant), "--", "/usr/bin/true"]
    assert_ok(lab.run_jitrun(a, args[1:]))  # the counter file exists now
    counter = lab.state / "uses" / decode_token(token)[0]["jti"]
    ctl = lab.run_without_jitrun(a, ["/bin/sh", "-c", "sleep 30 & p=$!; kill -STOP $p && echo STOPPED; kill -9 $p"])
    assert "STOPPED" in ctl.out, ctl
    if how == "ctrl-z":
        # a foreground job of a job-control shell: the kernel discards Ctrl-Z for a process
        # group without a parent in its session (an orphaned one), as jitrun alone on a pty is
        args = ["/bin/sh", "-m", "-c", '"$@"', "shell", *args]
    with open(counter, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with lab.spawn_as_user(a, args, pty=(how == "ctrl-z")) as run:
            assert wait_until(lambda: flock_waiters(counter) == 1, 30), str(run)
            # the supervisor (which waits for the lock) and the front (which waits for it)
            pids = run.jitrun_pids()
            assert run.supervisor_pid() in pids and len(pids) in (1, 2), str(run)
            for pid in pids:
                if how == "kill-stop":
                    res = lab.run_without_jitrun(a, ["/usr/bin/kill", "-STOP", str(pid)])
                    assert res.returncode != 0, f"the caller stopped her jitrun while it waits for a lock\n{res}"
            if how == "ctrl-z":
                run.send(b"\x1a")
                tstp = 1 << (signal.SIGTSTP - 1)
                # stopped (and then, its shell gone, hung up) or the signal waiting, blocked
                for pid in pids:
                    assert wait_until(lambda: proc_state(pid) in ("T", None) or pending_signals(pid) & tstp, 20), \
                        str(run)
            for pid in pids:
                assert proc_state(pid) not in ("T", None), \
                    f"the caller stopped her jitrun while it waits for a lock\n{run}"
            fcntl.flock(held, fcntl.LOCK_UN)
            assert run.wait(30) == 0, str(run)


# ---- issue 12 #7: nothing opened as root before the policy allows it

FIFO_WRITER = "import sys\nwith open(sys.argv[1], 'w') as f:\n    f.write('released\\n')\n"


def test_a_fifo_named_as_the_command_is_never_opened_as_root(lab, world):
    """Issue 12 #7: jitrun opened the command as root (O_RDONLY|O_NONBLOCK) before it checked the
    policy and the file's type: a user with no rule at all named a root-only FIFO and released
    its blocked writer (a device would have been opened as root too). Now the policy decides on
    the path first, and the file is checked through an O_PATH descriptor before it is opened.
    Control: opening the FIFO for reading does release the writer."""
    fifo = lab.bin_dir / f"fifo-{secrets.token_hex(4)}"
    os.mkfifo(fifo, 0o600)  # root's alone
    writer = subprocess.Popen(["/usr/bin/python3", "-c", FIFO_WRITER, str(fifo)])
    try:
        assert_denied(lab.run_as_user(world.bob, [str(fifo)]), "no_rule")
        # a rule that names it: refused as not a regular file, still without opening it
        lab.set_policy(world.policy, dropins={"30-fifo.toml": f'[[rule]]\nname = "fifo"\nusers = ["{world.alice}"]\n'
                                                              f'commands = ["{fifo}"]\ngrant = "none"\n'})
        res = lab.run_as_user(world.alice, [str(fifo)])
        assert res.returncode == 126 and "not a regular file" in res.err, str(res)
        # an open would have let the writer go on at once; give it time to show that it did
        with pytest.raises(subprocess.TimeoutExpired):
            writer.wait(timeout=3)
        with open(fifo) as f:  # the control: a reader releases it
            assert f.read() == "released\n"
        assert writer.wait(timeout=30) == 0
    finally:
        writer.kill()
        writer.wait()
        fifo.unlink()


# ---- issue 12 #9: leftovers while the supervisor is stopped

# The command: a child in a new session (still in the command's cgroup), its pid, then it waits
# for a line on the FIFO $1 and exits. (It waits in open(2), which Ctrl-Z stops: a shell that
# polls with `sleep` is often inside vfork(2), where a stop signal waits for the child's exec.)
LEFTOVER = r"""
( setsid /usr/bin/sleep 1000 </dev/null >/dev/null 2>&1 & echo "LEFTOVER=$!" )
read line < "$1"
exit 0
"""


def release_fifo(fifo: Path) -> None:
    """Write a line to ``fifo`` once a reader has it open."""
    def opened() -> bool:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            return False  # ENXIO: no reader yet
        os.write(fd, b"go\n")
        os.close(fd)
        return True
    assert wait_until(opened, 20), f"nobody opened {fifo} for reading"


def leftover_scenario(lab, world, binds=()):
    """Ctrl-Z stops the command and the supervisor stops itself; the user continues only the
    command, which exits; its setsid'd child must be ended at once, though the supervisor is
    still stopped. Then the supervisor is continued and logs the end."""
    a = world.alice
    raw_rules(lab, world)
    trigger = a.home / ".jitlab" / "leftover-go"
    lab._user_dirs(a, trigger.parent)
    trigger.unlink(missing_ok=True)
    os.mkfifo(trigger, 0o600)
    os.chown(trigger, a.uid, a.gid)
    argv = [str(lab.jitrun), "--", "/usr/bin/dash", "-c", LEFTOVER, "leftover", str(trigger)]
    with lab.spawn_as_user(a, argv, pty=True, binds=binds) as run:
        assert run.wait_output(b"LEFTOVER=", 30), str(run)
        leftover = int(re.search(rb"LEFTOVER=(\d+)", run.output).group(1))
        assert cap_eff(leftover) & NET_RAW, "the leftover should hold CAP_NET_RAW (else nothing is at stake)"
        cmd = tree_process(run, "/usr/bin/dash")
        supervisor = int(status_of_pid(cmd)["PPid"])
        assert exe_of(supervisor) == str(lab.jitrun), str(run)
        try:
            run.send(b"\x1a")  # Ctrl-Z
            stopped = wait_until(lambda: proc_state(supervisor) == "T" and proc_state(cmd) == "T", 20)
            assert stopped, f"supervisor {proc_state(supervisor)}, command {proc_state(cmd)}\n{run}"
            res = lab.run_without_jitrun(a, ["/usr/bin/kill", "-CONT", "--", f"-{cmd}"])
            assert res.returncode == 0, f"the user cannot continue her command: {res}"
            release_fifo(trigger)
            assert wait_until(lambda: not pid_alive(cmd), 20), "the command did not exit"
            assert proc_state(supervisor) == "T", "the scenario needs the supervisor still stopped"
            gone = wait_until(lambda: not pid_alive(leftover), 30)
            assert gone, f"{leftover} kept CAP_NET_RAW after the command exited, while the supervisor was stopped"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(supervisor, signal.SIGCONT)
        assert run.wait(30) == 0, str(run)
        ends = events_of(run, "elevate.end")
        assert len(ends) == 1 and ends[0].get("jitrun.end_reason") == "exit", str(run)
        return events_of(run, "elevate.start")[0]


def test_leftovers_end_when_the_command_exits_while_the_supervisor_is_stopped(lab, world):
    """Issue 12 #9 (standing rule: no grant, so no expiry would ever end them)."""
    start = leftover_scenario(lab, world)
    assert start.get("jitrun.containment") == "cgroup", start.raw


def test_without_cgroups_the_watchdog_ends_the_supervisors_adopted_orphans(lab, world):
    """Issue 12 "also": without cgroup v2 the command is held by its process group and the
    orphans its supervisor adopts as a child subreaper; the watchdog looked for the children of
    its own pid and found none. The same scenario as above, on a cgroup v2 mount hidden by a
    bind mount in the run's namespace (jitrun then uses process-group containment)."""
    mount = cgroup2_mount()
    if mount is None:
        pytest.skip("no cgroup v2 on this host: the other tests already run without it")
    empty = Path(tempfile.mkdtemp(prefix="jitattack-nocgroup-"))
    try:
        start = leftover_scenario(lab, world, binds=[(empty, mount)])
        assert start.get("jitrun.containment") == "process_group", start.raw
        assert not any(empty.iterdir()), "jitrun made directories in what covers the cgroup mount"
    finally:
        shutil.rmtree(empty, ignore_errors=True)


# ---- issue 12 "also": refusals under a tiny RLIMIT_NOFILE


@pytest.mark.parametrize("nofile", ["4:4", "5:5"])
def test_runs_under_a_tiny_open_files_limit_are_refused_or_run_but_always_logged(lab, world, nofile):
    """With a hard RLIMIT_NOFILE of 4 or 5 (which root cannot raise without CAP_SYS_RESOURCE)
    jitrun had no descriptor left to look at its audit spool with, so a refusal went unlogged.
    Whatever it can or cannot do with so few, what it did is logged: a refusal as one event,
    a run as its start and end."""
    denied = lab.run_as_user(world.bob, ["/usr/bin/true"], limits={"nofile": nofile})
    assert denied.returncode == 1 and len(denied.err_lines) == 1, str(denied)
    assert [e.action for e in denied.events] == ["elevate.deny"], str(denied)
    ran = lab.run_as_user(world.alice, ["/usr/bin/id"], limits={"nofile": nofile})
    if ran.returncode == 0:
        assert ran.actions() == ["elevate.start", "elevate.end"], str(ran)
    else:
        assert ran.returncode == 1 and len(ran.err_lines) == 1, str(ran)
        assert len(ran.events) == 1 and ran.events[0].action in ("elevate.deny", "policy.error"), str(ran)
