"""Attacks on the setuid binary, tried as the unprivileged user (issue 4, part 2): each one must
fail with a clear one-line `jitrun: ` message (or a usage error), run nothing and leak nothing.

Attacks already replayed elsewhere are not repeated here; docs/SECURITY.md maps every attack
and historical CVE to its test. Helpers: tests/harness/helpers/exec_argv.c (argc == 0, empty
argv[0], closed standard descriptors) and preload_marker.c (a shared object that leaves a
marker file in every process that loads it)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import stat
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
from e2e_support import TEST_SECURE_PATH, assert_denied, assert_ok
from jitlab import HELPERS_SRC, User, _run, decode_token

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
        pids = run.jitrun_pids()  # the supervisor and the watchdog
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
    refusal; in an unknown claim, which DESIGN.md says is ignored, it is skipped."""
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
