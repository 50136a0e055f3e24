"""PAM (step 7 in docs/architecture.md; issue 4): rules with `authenticate = true` go through the PAM
service `jitrun` with real modules: pam_permit, pam_deny, pam_unix with a real password typed
on a pseudo-terminal, pam_unix account checks on an expired account, and a session opened and
closed around the command (seen by pam_exec). Each run gets its own /etc/pam.d, bound over the
real one in the run's private mount namespace. `pamtester` checks the shipped service file."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest
from e2e_support import assert_denied, assert_ok
from jitlab import Lab, User, _run

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "c0rrect-h0rse-Battery"
SHIPPED = REPO / "packaging" / "pam.d" / "jitrun"


@pytest.fixture(scope="module")
def pam_users(lab: Lab):
    """Two users with known passwords (chpasswd), one of them used for the expired account."""
    a, b = lab.add_user(), lab.add_user()
    for u in (a, b):
        subprocess.run(["chpasswd"], input=f"{u.name}:{PASSWORD}\n".encode(), check=True)
    return a, b


def pam_dir(lab: Lab, name: str, service: str) -> Path:
    """A private /etc/pam.d: the host's files plus `jitrun` with `service`."""
    d = lab.tmp / f"pam.d-{name}"
    if d.exists():
        shutil.rmtree(d)
    shutil.copytree("/etc/pam.d", d, symlinks=True)
    (d / "jitrun").write_text(service)
    os.chmod(d / "jitrun", 0o644)
    return d


def policy(lab: Lab, user: User, run_as: str = "root") -> None:
    lab.set_policy(f"""
[[rule]]
name = "with-password"
users = ["{user.name}"]
commands = ["/usr/bin/id **", "/usr/bin/true", "/usr/bin/touch /tmp/jitlab-pam-marker"]
run_as = "{run_as}"
grant = "none"
authenticate = true
""", dropins={})


PERMIT = "auth required pam_permit.so\naccount required pam_permit.so\nsession required pam_permit.so\n"
DENY = "auth required pam_deny.so\naccount required pam_permit.so\nsession required pam_permit.so\n"
UNIX = "auth required pam_unix.so\naccount required pam_unix.so\nsession required pam_permit.so\n"
ACCOUNT_UNIX = "auth required pam_permit.so\naccount required pam_unix.so\nsession required pam_permit.so\n"


def test_pam_permit_runs_the_command_and_opens_a_session_for_the_target(lab, pam_users):
    user = pam_users[0]
    policy(lab, user)
    log = lab.tmp / "pam-session.log"
    log.write_text("")
    script = lab.tmp / "pam-session.sh"
    script.write_text(f'#!/bin/sh\necho "$PAM_TYPE user=$PAM_USER ruser=$PAM_RUSER service=$PAM_SERVICE" >> {log}\n')
    os.chmod(script, 0o755)
    service = ("auth required pam_permit.so\naccount required pam_permit.so\n"
               f"session required pam_exec.so {script}\n")
    d = pam_dir(lab, "permit-session", service)
    res = lab.run_as_user(user, ["/usr/bin/id", "-u"], binds=[(d, "/etc/pam.d")])
    assert_ok(res)
    assert res.out.strip() == "0", str(res)
    start = res.event("elevate.start")
    assert start.get("jitrun.rule") == "with-password"
    lines = log.read_text().splitlines()
    # opened before the command and closed after it, for the run-as user, naming the invoker
    assert lines == [f"open_session user=root ruser={user.name} service=jitrun",
                     f"close_session user=root ruser={user.name} service=jitrun"], lines


def test_pam_deny_refuses_and_runs_nothing(lab, pam_users):
    user = pam_users[0]
    policy(lab, user)
    marker = Path("/tmp/jitlab-pam-marker")
    marker.unlink(missing_ok=True)
    d = pam_dir(lab, "deny", DENY)
    res = lab.run_as_user(user, ["/usr/bin/touch", str(marker)], binds=[(d, "/etc/pam.d")])
    deny = assert_denied(res, "authenticate")
    assert deny.get("jitrun.rule") == "with-password"
    assert "authentication failed for " + user.name in res.err, str(res)
    assert not marker.exists()


def test_the_service_name_comes_from_settings(lab, pam_users):
    user = pam_users[0]
    policy(lab, user)
    d = pam_dir(lab, "named", DENY)
    (d / "jitrun-strict").write_text(PERMIT)
    lab.write_settings(secure_path="/usr/bin:/bin:/usr/sbin:/sbin", pam_service="jitrun-strict")
    assert_ok(lab.run_as_user(user, ["/usr/bin/true"], binds=[(d, "/etc/pam.d")]))
    lab.write_settings(secure_path="/usr/bin:/bin:/usr/sbin:/sbin")
    assert_denied(lab.run_as_user(user, ["/usr/bin/true"], binds=[(d, "/etc/pam.d")]), "authenticate")


def test_no_authentication_when_the_rule_does_not_ask(lab, pam_users, world):
    """pam_deny everywhere, yet a rule without authenticate runs: PAM is not consulted."""
    d = pam_dir(lab, "deny-all", DENY)
    res = lab.run_as_user(world.alice, ["/usr/bin/id"], binds=[(d, "/etc/pam.d")])
    assert_ok(res)
    assert res.event("elevate.start").get("jitrun.rule") == "standing"


def wait_count(run, needle: bytes, n: int, timeout: float = 30) -> bool:
    """Wait until ``needle`` has appeared ``n`` times in the run's terminal output."""
    deadline = time.monotonic() + timeout
    while run.output.count(needle) < n:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def spawn_with_password_prompt(lab, user, argv, d):
    return lab.spawn_as_user(user, argv, pty=True, binds=[(d, "/etc/pam.d")])


def test_pam_unix_password_on_the_terminal_with_no_echo(lab, pam_users):
    user = pam_users[0]
    policy(lab, user)
    d = pam_dir(lab, "unix", UNIX)
    with spawn_with_password_prompt(lab, user, [str(lab.jitrun), "--", "/usr/bin/id", "-u"], d) as run:
        prompt = f"[jitrun] password for {user.name}: ".encode()
        assert run.wait_output(prompt), str(run)
        run.send(PASSWORD.encode() + b"\r")
        assert run.wait(60) == 0, str(run)
        assert run.wait_output(b"\n0\r\n"), str(run)  # the reader thread has it all
        out = run.output
        assert PASSWORD.encode() not in out, out  # not echoed
        assert out.rstrip().endswith(b"0"), out
        assert "elevate.start" in [e.action for e in run.events()]


def test_pam_unix_wrong_password_three_times_is_refused(lab, pam_users):
    user = pam_users[0]
    policy(lab, user)
    marker = Path("/tmp/jitlab-pam-marker")
    marker.unlink(missing_ok=True)
    d = pam_dir(lab, "unix-wrong", UNIX)
    with spawn_with_password_prompt(lab, user, [str(lab.jitrun), "--", "/usr/bin/touch", str(marker)], d) as run:
        prompt = f"[jitrun] password for {user.name}: ".encode()
        for i in range(3):
            # each prompt appears only after the previous answer was rejected
            assert wait_count(run, prompt, i + 1), str(run)
            run.send(b"wrong-password\r")
        assert run.wait(60) == 1, str(run)
        assert run.wait_output(b"nothing was run"), str(run)  # the reader thread has it all
        out = run.output.decode(errors="replace")
        assert out.count("Sorry, try again.") == 2, out
        assert f"authentication failed for {user.name} after 3 attempt(s)" in out, out
        assert "wrong-password" not in out
        actions = [e.action for e in run.events()]
        assert "elevate.deny" in actions and "elevate.start" not in actions, actions
        deny = [e for e in run.events() if e.action == "elevate.deny"][0]
        assert deny.get("jitrun.deny_code") == "authenticate"
    assert not marker.exists()


def test_pam_unix_without_a_terminal_is_refused_clearly(lab, pam_users):
    user = pam_users[0]
    policy(lab, user)
    d = pam_dir(lab, "unix-notty", UNIX)
    res = lab.run_as_user(user, ["/usr/bin/true"], stdin=PASSWORD + "\n", binds=[(d, "/etc/pam.d")])
    assert_denied(res, "authenticate")
    assert "from a terminal" in res.err, str(res)


def test_expired_account_is_refused_by_the_account_check(lab, pam_users):
    user = pam_users[1]
    policy(lab, user)
    d = pam_dir(lab, "acct", ACCOUNT_UNIX)
    assert_ok(lab.run_as_user(user, ["/usr/bin/true"], binds=[(d, "/etc/pam.d")]))
    _run(["usermod", "--expiredate", "1970-01-02", user.name])
    try:
        res = lab.run_as_user(user, ["/usr/bin/true"], binds=[(d, "/etc/pam.d")])
        assert_denied(res, "account")
        assert f"the account {user.name} has expired" in res.err, str(res)
    finally:
        _run(["usermod", "--expiredate", "", user.name])


def test_auth_cache_per_terminal_session_and_reset(lab, pam_users):
    user = pam_users[0]
    policy(lab, user)
    d = pam_dir(lab, "unix-cache", UNIX)
    lab.write_settings(secure_path="/usr/bin:/bin:/usr/sbin:/sbin", auth_cache="5m")
    j = str(lab.jitrun)
    prompt = f"[jitrun] password for {user.name}: ".encode()
    script = (f"{j} -- /usr/bin/true && echo FIRST-OK; {j} -- /usr/bin/true && echo SECOND-OK; "
              f"{j} -k && echo RESET-OK; {j} -- /usr/bin/true && echo THIRD-OK")
    try:
        with spawn_with_password_prompt(lab, user, ["/bin/sh", "-c", script], d) as run:
            assert run.wait_output(prompt), str(run)
            run.send(PASSWORD.encode() + b"\r")
            assert run.wait_output(b"SECOND-OK"), str(run)
            # the second run did not ask: exactly one prompt before its OK (the shell may
            # already be on to the third run, which asks again after -k)
            assert run.output.split(b"SECOND-OK")[0].count(prompt) == 1, run.output
            assert run.wait_output(b"RESET-OK"), str(run)
            # after -k the third run asks again
            assert wait_count(run, prompt, 2), run.output
            run.send(PASSWORD.encode() + b"\r")
            assert run.wait_output(b"THIRD-OK"), str(run)
            assert run.wait(30) == 0
        # the cache is root's: a file per uid, 0600, in a root 0700 directory
        cache = lab.state / "auth" / str(user.uid)
        st = os.stat(cache)
        assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o600
        assert stat.S_IMODE(os.stat(lab.state / "auth").st_mode) == 0o700
        # another terminal session does not share it: it asks again
        with spawn_with_password_prompt(lab, user, [j, "--", "/usr/bin/true"], d) as run:
            assert run.wait_output(prompt), str(run)
            run.send(PASSWORD.encode() + b"\r")
            assert run.wait(60) == 0, str(run)
    finally:
        lab.write_settings(secure_path="/usr/bin:/bin:/usr/sbin:/sbin")


def test_shipped_service_file_with_pamtester(lab, pam_users):
    """pamtester, a second PAM client, against packaging/pam.d/jitrun with Debian's common-*
    files: the right password authenticates, a wrong one does not."""
    if not shutil.which("pamtester"):
        pytest.fail("pamtester is missing: make deps installs it")
    user = pam_users[0]
    d = pam_dir(lab, "shipped", SHIPPED.read_text())
    script = 'mount --bind "$1" /etc/pam.d && shift && exec "$@"'

    def pamtester(password: str, *ops: str) -> subprocess.CompletedProcess:
        return subprocess.run(["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", script,
                               "pamtester-ns", str(d), "pamtester", "-v", "jitrun", user.name, *ops],
                              input=(password + "\n").encode(), capture_output=True, timeout=60)

    ok = pamtester(PASSWORD, "authenticate", "acct_mgmt", "open_session", "close_session")
    assert ok.returncode == 0, ok
    assert b"successfully authenticated" in ok.stdout + ok.stderr, ok
    bad = pamtester("not-the-password", "authenticate")
    assert bad.returncode != 0, bad
    assert b"Authentication failure" in bad.stdout + bad.stderr, bad


def test_the_checked_file_is_the_one_executed_even_if_replaced_during_authentication(lab, pam_users):
    """The command is opened and checked once (command.rs) and that open file is what runs
    (execveat on its descriptor), so nothing that replaces the file at that path between the
    check and the exec changes what runs. PAM runs in between; here its auth stage (pam_exec,
    as root) replaces the root-owned file with another one, standing in for anything that can
    (the user cannot: the directory is root's). The original must run, never the replacement."""
    user = pam_users[0]
    target = lab.install_file("swap-target", b"#!/bin/sh\necho ORIGINAL\n", 0o755)
    lab.install_file("swap-target.new", b"#!/bin/sh\necho SWAPPED\n", 0o755)
    swap = lab.install_file("swap-hook", f"#!/bin/sh\nmv -f {target}.new {target}\n".encode(), 0o755)
    lab.set_policy(f"""
[[rule]]
name = "swap"
users = ["{user.name}"]
commands = ["{target}"]
grant = "none"
authenticate = true
""", dropins={})
    # pam_exec runs the hook for pam_authenticate only (pam_setcred: pam_permit answers)
    d = pam_dir(lab, "swap", f"auth required pam_exec.so type=auth {swap}\nauth required pam_permit.so\n"
                             "account required pam_permit.so\nsession required pam_permit.so\n")
    res = assert_ok(lab.run_as_user(user, [str(target)], binds=[(d, "/etc/pam.d")]))
    # control: the hook did replace the file before the exec (else this proves nothing)
    now = lab.run_without_jitrun(user, [str(target)])
    assert now.out == "SWAPPED\n", str(now)
    assert res.out == "ORIGINAL\n", str(res)
    assert res.event("elevate.start").get("process.executable") == str(target)


# ---- libpam is loaded only for rules that authenticate (issue 17) --------------------------


def grant_and_password_policy(lab: Lab, user: User) -> None:
    """`grant-sleep` needs a grant and no authentication; `with-password` authenticates."""
    lab.set_policy(f"""
[[rule]]
name = "grant-sleep"
users = ["{user.name}"]
commands = ["/usr/bin/sleep *", "/usr/bin/true"]
run_as = "root"
max_duration = "30m"

[[rule]]
name = "with-password"
users = ["{user.name}"]
commands = ["/usr/bin/sleep *", "/usr/bin/true"]
run_as = "root"
grant = "none"
authenticate = true
""", dropins={})


def mapped_objects(pid: int) -> set[str]:
    """File names of the shared objects mapped into ``pid`` (root reads any process's maps)."""
    names = set()
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and ".so" in parts[5]:
            names.add(os.path.basename(parts[5].strip()))
    return names


def jitrun_maps_while_sleeping(lab: Lab, user: User, argv: list[str], binds=()) -> dict[str, set[str]]:
    """Start ``argv`` (a jitrun run of `sleep`), wait for its supervisor and watchdog, and
    return what the front, the supervisor and the watchdog map; the run is ended afterwards."""
    with lab.spawn_as_user(user, argv, binds=binds) as run:
        deadline = time.monotonic() + 30
        while not run.watchdog_pids() or "elevate.start" not in [e.action for e in run.events()]:
            assert time.monotonic() < deadline and run.popen.poll() is None, str(run)
            time.sleep(0.05)
        roles = {"front": run.front_pid(), "supervisor": run.supervisor_pid(), "watchdog": run.watchdog_pids()[0]}
        return {role: mapped_objects(pid) for role, pid in roles.items()}


def test_a_run_that_does_not_authenticate_maps_no_pam_library(lab, pam_users):
    """libpam (with libaudit and libcap-ng) is loaded with dlopen by the first rule that needs
    it: a grant run's supervisor and watchdog map the C library and no PAM at all. Control: a
    rule that authenticates maps libpam in the same processes, so the probe does see it."""
    user = pam_users[0]
    grant_and_password_policy(lab, user)
    token = lab.mint(user, "grant-sleep", ttl="10m")
    grant = lab.user_file(user, "sleep.grant", token + "\n")
    j = str(lab.jitrun)
    plain = jitrun_maps_while_sleeping(lab, user, [j, "--grant", str(grant), "--", "/usr/bin/sleep", "30"])
    for role, objects in plain.items():
        assert "libc.so.6" in objects, (role, objects)  # the probe reads real maps
        assert not [o for o in objects if o.startswith(("libpam", "libaudit", "libcap-ng"))], (role, objects)
    d = pam_dir(lab, "maps", PERMIT)
    with_pam = jitrun_maps_while_sleeping(lab, user, [j, "--", "/usr/bin/sleep", "30"], binds=[(d, "/etc/pam.d")])
    # the supervisor authenticated (and holds the PAM session), the watchdog is its copy
    for role in ("supervisor", "watchdog"):
        assert [o for o in with_pam[role] if o.startswith("libpam.so.0")], (role, with_pam[role])


def libpam_path() -> Path:
    """The file the dynamic loader opens for libpam.so.0 (its cache names the path)."""
    out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.split(" ", 1)[0].strip() == "libpam.so.0" and "=>" in line:
            return Path(line.rsplit("=>", 1)[1].strip()).resolve()
    pytest.fail(f"ldconfig -p lists no libpam.so.0:\n{out}")


def test_without_a_loadable_libpam_only_rules_that_authenticate_are_refused(lab, pam_users):
    """An empty file over libpam (in the run's namespace): a rule that authenticates is refused
    with a host error that says what to install, and nothing runs; a grant run does not need
    PAM and runs as before (a jitrun linked with libpam would not even start)."""
    user = pam_users[0]
    grant_and_password_policy(lab, user)
    empty = lab.tmp / "empty-libpam.so"
    empty.write_bytes(b"")
    d = pam_dir(lab, "no-libpam", PERMIT)
    binds = [(d, "/etc/pam.d"), (empty, libpam_path())]
    marker = Path("/tmp/jitlab-pam-marker")
    marker.unlink(missing_ok=True)
    token = lab.mint(user, "grant-sleep", ttl="10m")
    ran = lab.run_as_user(user, ["/usr/bin/true"], grant="-", stdin=token + "\n", binds=binds)
    assert_ok(ran)
    assert ran.event("elevate.start").get("jitrun.rule") == "grant-sleep"
    res = lab.run_as_user(user, ["/usr/bin/true"], binds=binds)
    assert res.returncode == 1, str(res)
    assert len(res.err_lines) == 1 and res.err_lines[0].startswith("jitrun: "), str(res)
    assert "Linux-PAM cannot be loaded" in res.err and "libpam0g" in res.err, str(res)
    assert "elevate.start" not in res.actions(), str(res)
    error = res.event("policy.error")
    assert error.get("jitrun.deny_code") == "pam" and error.get("jitrun.rule") == "with-password", str(res)
    # control: with the library in place the same rule runs
    assert_ok(lab.run_as_user(user, ["/usr/bin/true"], binds=[(d, "/etc/pam.d")]))
