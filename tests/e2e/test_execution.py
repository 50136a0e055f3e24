"""Running the command: exit status, signals, standard streams, the terminal, argv, the
environment, and the end of the grant ending the command's whole process tree."""

from e2e_support import TEST_SECURE_PATH, assert_ok
from jitlab import pid_alive


def plain(lab, world, **kw):
    return lab.mint(world.alice, "plain", **kw)


def test_exit_status_passed_through(lab, world):
    res = lab.run_as_user(world.alice, ["/usr/bin/sh", "-c", "exit 7"], grant=plain(lab, world))
    assert_ok(res, 7)
    end = res.event("elevate.end")
    assert end.get("process.exit_code") == 7
    assert end.get("jitrun.end_reason") == "exit"


def test_missing_command_is_127(lab, world):
    res = lab.run_as_user(world.alice, [str(world.bin / "missing")], grant=plain(lab, world))
    assert res.returncode == 127, str(res)
    assert "elevate.start" not in res.actions()


def test_command_not_on_secure_path_is_127(lab, world):
    res = lab.run_as_user(world.alice, ["jitlab-no-such-command"], grant=plain(lab, world))
    assert res.returncode == 127, str(res)


def test_non_executable_command_is_126(lab, world):
    res = lab.run_as_user(world.alice, [str(world.bin / "not-executable")], grant=plain(lab, world))
    assert res.returncode == 126, str(res)
    assert "elevate.start" not in res.actions()


def test_signal_death_is_128_plus_n(lab, world):
    res = lab.run_as_user(world.alice, ["/usr/bin/sh", "-c", "kill -USR1 $$"], grant=plain(lab, world))
    assert_ok(res, 128 + 10)
    end = res.event("elevate.end")
    assert end.get("jitrun.end_reason") == "signal"
    assert str(end.get("jitrun.signal")) in ("10", "SIGUSR1", "USR1"), end


def test_stdin_stdout_pass_through(lab, world):
    data = b"".join(b"line %d \x00\xff\tend\n" % i for i in range(5000))
    res = assert_ok(lab.run_as_user(world.alice, ["/usr/bin/cat"], grant=plain(lab, world), stdin=data))
    assert res.stdout == data
    assert res.stderr == b""  # jitrun itself says nothing when all goes well


def test_stdout_and_stderr_stay_separate(lab, world):
    res = assert_ok(lab.run_as_user(world.alice, ["/usr/bin/sh", "-c", "echo out; echo err >&2"],
                                    grant=plain(lab, world)))
    assert res.out == "out\n"
    assert res.err == "err\n"


def test_terminal_is_left_to_the_command(lab, world):
    res = lab.run_as_user(world.alice, ["/usr/bin/tty"], grant=plain(lab, world), pty=True)
    assert_ok(res)
    lines = [l.strip() for l in res.out.splitlines() if l.strip()]
    assert res.tty and res.tty.startswith("/dev/pts/"), str(res)
    assert res.tty in lines, str(res)  # tty(1) names the very terminal jitrun was started on
    assert "not a tty" not in res.out


def test_argv_is_logged_escaped_never_dropped(lab, world):
    args = ["a b", "line1\nline2", b"\xff", "back\\slash", "tab\there", "caf\u00e9", ""]
    res = assert_ok(lab.run_as_user(world.alice, ["/usr/bin/true", *args], grant=plain(lab, world)))
    start = res.event("elevate.start")
    logged = start.get("process.args")
    assert logged is not None, start
    assert logged[1:] == ["a b", "line1\nline2", "\\xff", "back\\\\slash", "tab\there", "caf\u00e9", ""], logged
    assert not any(c < 0x20 or c == 0x7F for c in start.raw)  # control characters are escaped


def parse_env(out: str) -> dict:
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_environment_is_clean(lab, world):
    a = world.alice
    hostile = {
        "LD_PRELOAD": "/nonexistent/evil.so", "LD_LIBRARY_PATH": "/tmp", "IFS": "x", "FOO": "bar",
        "BASH_ENV": "/tmp/evil", "PYTHONPATH": "/tmp", "PATH": "/tmp/evil:/usr/bin", "HOME": "/tmp",
        "JITLAB_KEEP": "kept value", "TERM": "xterm-256color",
    }
    res = assert_ok(lab.run_as_user(a, ["/usr/bin/env"], grant=plain(lab, world), env=hostile))
    env = parse_env(res.out)
    for bad in ("LD_PRELOAD", "LD_LIBRARY_PATH", "IFS", "FOO", "BASH_ENV", "PYTHONPATH"):
        assert bad not in env, str(res)
    assert env.get("PATH") == TEST_SECURE_PATH
    assert env.get("JITLAB_KEEP") == "kept value"  # the rule's env_keep
    assert env.get("HOME") == str(a.home)
    assert env.get("USER") == a.name and env.get("LOGNAME") == a.name
    assert env.get("SHELL") == "/bin/sh"
    assert env.get("TERM") == "xterm-256color"
    assert set(env) <= {"HOME", "USER", "LOGNAME", "SHELL", "PATH", "TERM", "JITLAB_KEEP"}, sorted(env)


def test_environment_of_named_run_as_user(lab, world):
    svc = world.svc
    token = lab.mint(world.alice, "svc-bind")
    lab.set_policy(world.policy.replace('commands = ["/usr/bin/cat /proc/self/status"]\nrun_as',
                                        'commands = ["/usr/bin/env"]\nrun_as'))
    res = assert_ok(lab.run_as_user(world.alice, ["/usr/bin/env"], grant=token))
    env = parse_env(res.out)
    assert env.get("HOME") == str(svc.home) and env.get("USER") == svc.name and env.get("LOGNAME") == svc.name


def test_insane_term_is_dropped(lab, world):
    res = assert_ok(lab.run_as_user(world.alice, ["/usr/bin/env"], grant=plain(lab, world),
                                    env={"TERM": "../../../tmp/evil%n"}))
    assert "TERM" not in parse_env(res.out)


def test_command_found_through_secure_path_not_users_path(lab, world):
    a = world.alice
    lab.user_file(a, "bin/cat", "#!/bin/sh\necho FAKE CAT\n", mode=0o755)
    res = assert_ok(lab.run_as_user(a, ["cat", "/proc/self/status"], grant=lab.mint(a, "net-debug"),
                                    env={"PATH": f"{a.home}/bin:/usr/bin"}))
    assert "FAKE CAT" not in res.out
    assert "CapEff" in res.out


def test_expiry_ends_a_long_command(lab, world):
    a = world.alice
    token = plain(lab, world, ttl="3s")
    res = lab.run_as_user(a, ["/usr/bin/sleep", "600"], grant=token, timeout=90)
    assert not res.timed_out, str(res)
    assert res.returncode in (128 + 15, 128 + 9), str(res)
    assert res.event("elevate.start")
    end = res.event("elevate.end")
    assert end.get("jitrun.end_reason") == "expired", end


def test_expiry_ends_a_setsid_grandchild_that_ignores_sigterm(lab, world):
    a = world.alice
    pidfile = a.home / "grandchild.pid"
    if pidfile.exists():
        pidfile.unlink()
    token = plain(lab, world, ttl="3s")
    res = lab.run_as_user(a, [str(world.bin / "setsid-helper"), str(pidfile)], grant=token, timeout=90)
    assert not res.timed_out, str(res)
    assert "grandchild started" in res.out, str(res)  # else this test proves nothing
    gc = int(pidfile.read_text())
    assert not pid_alive(gc), f"grandchild {gc} survived the end of the grant\n{res}"
    assert res.returncode in (128 + 15, 128 + 9), str(res)
    assert res.event("elevate.end").get("jitrun.end_reason") == "expired"


def test_cwd_is_kept(lab, world):
    a = world.alice
    res = assert_ok(lab.run_as_user(a, ["/usr/bin/sh", "-c", "pwd"], grant=plain(lab, world), cwd=a.home))
    assert res.out.strip() == str(a.home)


def test_user_cannot_kill_the_supervisor_to_escape_expiry(lab, world):
    """jitrun makes itself fully root after the fork: the user cannot signal it."""
    a = world.alice
    script = (
        # the command (running as alice) tries to kill its parent, the supervisor
        "kill -KILL $PPID 2>/dev/null && echo KILLED || echo REFUSED"
    )
    res = assert_ok(lab.run_as_user(a, ["/usr/bin/sh", "-c", script], grant=plain(lab, world)))
    assert res.out.strip() == "REFUSED", str(res)


def test_command_gets_the_callers_resource_limits(lab, world):
    """jitrun lowers RLIMIT_CORE and lifts the soft RLIMIT_FSIZE for itself; the command gets
    exactly the caller's limits back (soft and hard), with no privilege needed to restore them."""
    res = assert_ok(
        lab.run_as_user(world.alice, ["/usr/bin/sh", "-c", "cat /proc/self/limits"], grant=plain(lab, world),
                        limits={"fsize": "100000:200000", "core": "1000:3000"})
    )
    lines = {l[:26].strip(): l[26:].split() for l in res.out.splitlines()[1:]}
    assert lines["Max file size"][:2] == ["100000", "200000"], res.out
    assert lines["Max core file size"][:2] == ["1000", "3000"], res.out
