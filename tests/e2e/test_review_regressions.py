"""Regressions from the security review: job control, the caller's resource limits and a broken
stderr cannot defeat expiry, containment or the audit trail; no path probing through jitrun's
answers; `jitrun -l` creates no state; duplicate options are usage errors."""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path

import pytest
from e2e_support import TEST_SECURE_PATH, assert_ok
from jitlab import _proc_table, decode_token, pid_alive, supervisor_of

EXPIRED = "expired"


# ---- small helpers


def wait_until(pred, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)


def proc_state(pid: int) -> str | None:
    """The state letter of /proc/PID/stat (R, S, T...), None when gone."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return data[data.rindex(b")") + 2 : data.rindex(b")") + 3].decode()


def children(pid: int) -> list[int]:
    return [p for p, (ppid, _, _) in _proc_table().items() if ppid == pid]


def seconds_left(token: str) -> float:
    exp = datetime.fromisoformat(decode_token(token)[0]["exp"].replace("Z", "+00:00"))
    return exp.timestamp() - time.time()


def kill_if_alive(*pids: int) -> None:
    for p in pids:
        if p and pid_alive(p):
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass


def lab_jitruns(lab) -> list[int]:
    """Every live process of this lab's jitrun (supervisors, watchdogs)."""
    return [p for p, (_, _, exe) in _proc_table().items() if exe == str(lab.jitrun) and pid_alive(p)]


def the_command(lab, jitrun_pid: int, not_pids: set[int]) -> int:
    """The command: the child of the supervisor (that of the jitrun process ``jitrun_pid`` the
    shell started) that is neither jitrun (a watchdog) nor a re-parented orphan."""
    found: list[int] = []

    def one():
        table = _proc_table()
        found[:] = [c for c in children(supervisor_of(jitrun_pid, str(lab.jitrun)))
                    if c not in not_pids and proc_state(c) not in (None, "Z")
                    and table.get(c, (0, set(), ""))[2] != str(lab.jitrun)]
        return len(found) == 1

    assert wait_until(one, 20), f"cannot tell the command among the children of {jitrun_pid}: {found}"
    return found[0]


def end_events(events, reason=EXPIRED):
    ends = [e for e in events if e.action == "elevate.end"]
    assert len(ends) == 1, f"expected one elevate.end, got {[e.raw for e in ends]}"
    assert ends[0].get("jitrun.end_reason") == reason, ends[0].raw
    return ends[0]


@pytest.fixture
def root_dir():
    """A root-owned 0700 scratch directory (a place a run_as=root command without
    CAP_DAC_OVERRIDE can still write to: uid 0 owns it)."""
    d = Path(tempfile.mkdtemp(prefix="jitreg-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def grant_file(lab, user, token: str, name: str) -> Path:
    return lab.user_file(user, f".jitlab/{name}", token + "\n")


# ---- A. job control cannot defeat expiry

JOBCTL_RULE = """
[[rule]]
name = "jobctl-root"
users = ["{user}"]
commands = ["{b}/setsid-helper *"]
run_as = "root"
capabilities = ["CAP_DAC_READ_SEARCH"]
max_duration = "30m"
"""

# Runs as the user on the pty, in the same session as jitrun and the command: starts jitrun
# (in the terminal's foreground process group), then, once the test names the stopped command
# in $trigger, sends SIGCONT to the command only (allowed within a session, even to root).
JOBCTL_WRAPPER = r"""
j=$1 trigger=$2
shift 2
"$j" "$@" &
jp=$!
echo "JITRUN_PID=$jp"
while [ ! -s "$trigger" ]; do sleep 0.05; done
if kill -CONT "$(cat "$trigger")"; then echo SENT_CONT; else echo CONT_REFUSED; fi
wait "$jp"
echo "JITRUN_EXIT=$?"
"""


def test_ctrl_z_then_sigcont_to_the_command_only_cannot_outlive_expiry(lab, world, root_dir):
    """Ctrl-Z stops the command and the supervisor stops itself (for the shell's job control);
    the user then continues the command alone. The grant's expiry must still end the command
    and its setsid'd grandchild, and elevate.end must say `expired` when jitrun exits.
    The command shares the caller's terminal (use_pty = false): on a pty of jitrun's, the
    root command is in another session and she cannot continue it at all
    (test_session_terminal.py covers Ctrl-Z there)."""
    a = world.alice
    lab.write_settings(secure_path=TEST_SECURE_PATH, use_pty=False)
    lab.set_policy(world.policy + JOBCTL_RULE.format(user=a, b=world.bin))
    token = lab.mint(a, "jobctl-root", ttl="6s")
    grant = grant_file(lab, a, token, "jobctl-grant")
    trigger = a.home / ".jitlab" / "cont-pid"
    trigger.unlink(missing_ok=True)
    pidfile = root_dir / "grandchild.pid"
    argv = ["/bin/sh", "-c", JOBCTL_WRAPPER, "wrapper", str(lab.jitrun), str(trigger),
            "--grant", str(grant), "--", str(world.bin / "setsid-helper"), str(pidfile)]
    cmd = gc = 0
    with lab.spawn_as_user(a, argv, pty=True) as run:
        try:
            assert run.wait_output(b"grandchild started", 30), str(run)
            jp = int(re.search(rb"JITRUN_PID=(\d+)", run.output).group(1))
            gc = int(pidfile.read_text())
            cmd = the_command(lab, jp, {gc})

            run.send(b"\x1a")  # Ctrl-Z
            assert wait_until(lambda: proc_state(cmd) == "T", 20), f"Ctrl-Z did not stop the command\n{run}"
            lab.user_file(a, ".jitlab/cont-pid", f"{cmd}\n", mode=0o644)
            assert run.wait_output(b"SENT_CONT", 20), f"the user could not SIGCONT the command\n{run}"
            assert wait_until(lambda: proc_state(cmd) not in ("T", "t"), 20), str(run)
            # the scenario really happened before the grant ended (else this proves nothing)
            assert seconds_left(token) > 0, "test too slow: the grant expired before the user's SIGCONT"
            assert pid_alive(cmd), str(run)

            # expiry (+ kill_grace 1s) must end the tree while the supervisor may still be stopped
            gone = wait_until(lambda: not pid_alive(cmd) and not pid_alive(gc), seconds_left(token) + 20)
            survivors = [p for p in (cmd, gc) if pid_alive(p)]

            # let jitrun finish: continue it (and the wrapper's group) as root
            for p in run.jitrun_pids():
                try:
                    os.killpg(os.getpgid(p), signal.SIGCONT)
                except ProcessLookupError:
                    pass
            rc = run.wait(30)
            assert gone, f"processes {survivors} outlived the grant (command {cmd}, grandchild {gc})\n{run}"
            assert rc is not None and wait_until(lambda: not lab_jitruns(lab), 20), f"jitrun did not exit\n{run}"
            end_events(run.events())
        finally:
            kill_if_alive(cmd, gc)  # root-owned: the fixture's per-user cleanup would miss them


def test_user_sigstop_then_sigcont_cannot_outlive_expiry(lab, world):
    """Without a terminal: the user stops the command with SIGSTOP and continues it later;
    expiry still ends the command and its setsid'd grandchild."""
    a = world.alice
    token = lab.mint(a, "plain", ttl="5s")
    grant = grant_file(lab, a, token, "stop-grant")
    pidfile = a.home / "stop-grandchild.pid"
    pidfile.unlink(missing_ok=True)
    with lab.spawn_as_user(a, [str(lab.jitrun), "--grant", str(grant), "--",
                               str(world.bin / "setsid-helper"), str(pidfile)]) as run:
        assert run.wait_output(b"grandchild started", 30), str(run)
        jp = run.pid  # the spawned process execs jitrun
        gc = int(pidfile.read_text())
        cmd = the_command(lab, jp, {gc})
        assert lab.run_without_jitrun(a, ["/usr/bin/kill", "-STOP", str(cmd)]).returncode == 0
        assert wait_until(lambda: proc_state(cmd) == "T", 20), str(run)
        assert lab.run_without_jitrun(a, ["/usr/bin/kill", "-CONT", str(cmd)]).returncode == 0
        assert wait_until(lambda: proc_state(cmd) not in ("T", "t"), 20), str(run)
        assert seconds_left(token) > 0, "test too slow: the grant expired before the user's SIGCONT"
        rc = run.wait(seconds_left(token) + 30)
        assert rc is not None, f"jitrun still runs long after the grant's end\n{run}"
        assert not pid_alive(cmd) and not pid_alive(gc), f"the tree outlived the grant\n{run}"
        assert rc in (128 + 15, 128 + 9), str(run)
        end_events(run.events())


# ---- B. RLIMIT_CPU cannot kill the supervisor

# Runs as the user: burns 1.5 s of CPU, sets a soft RLIMIT_CPU of 2 s (hard unlimited) and execs
# jitrun, which inherits the CPU time it already used.
BURN = r"""
import os, resource, sys
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
while cpu() < 1.5:
    pass
resource.setrlimit(resource.RLIMIT_CPU, (2, resource.RLIM_INFINITY))
os.execv(sys.argv[1], sys.argv[1:])
"""

# The command: shows its limits, then keeps waking the supervisor with SIGCONT (allowed within a
# session) from short-lived shells, so that the supervisor burns CPU time.
CPU_SPAM = (
    "cat /proc/self/limits; "
    "( while :; do sh -c 'i=0; while [ $i -lt 20000 ]; do kill -CONT '$PPID' 2>/dev/null; i=$((i+1)); done'; done ) & "
    "exec /usr/bin/sleep 1000"
)


def limits_of(out: str) -> dict[str, list[str]]:
    return {l[:26].strip(): l[26:].split() for l in out.splitlines()[1:] if l.startswith("Max ")}


def test_caller_cpu_limit_cannot_kill_the_supervisor(lab, world):
    a = world.alice
    token = lab.mint(a, "plain", ttl="8s")
    res = lab.run_as_user(a, ["/usr/bin/sh", "-c", CPU_SPAM], grant=token, timeout=40,
                          prefix=["/usr/bin/python3", "-c", BURN])
    assert res.returncode not in (-signal.SIGXCPU, 128 + signal.SIGXCPU), f"jitrun died of SIGXCPU\n{res}"
    assert not res.timed_out, str(res)
    assert res.returncode in (128 + 15, 128 + 9), str(res)
    assert res.event("elevate.start")
    end = res.event("elevate.end")
    assert end.get("jitrun.end_reason") == EXPIRED, str(res)
    # the command gets the caller's CPU limit back
    assert limits_of(res.out).get("Max cpu time", [])[:2] == ["2", "unlimited"], res.out


# ---- C. RLIMIT_NOFILE cannot disable containment


def cgroup_line(out: str) -> str:
    lines = [l for l in out.splitlines() if l.startswith("0::")]
    assert len(lines) == 1, out
    return lines[0]


def test_normal_run_is_contained_in_its_cgroup(lab, world):
    res = assert_ok(lab.run_as_user(world.alice, ["/usr/bin/sh", "-c", "cat /proc/self/cgroup"],
                                    grant=lab.mint(world.alice, "plain")))
    start = res.event("elevate.start")
    assert start.get("jitrun.containment") == "cgroup", start.raw
    session = start.get("jitrun.session_id")
    assert session and cgroup_line(res.out) == f"0::/jitrun/{session}/command", str(res)


# A setsid'd shell whose child (sleep 1001) still has its parent (sleep 1002) when a process-group
# kill plus an orphan sweep run: only the cgroup catches it. No redirections: dash fails every
# redirection when the soft RLIMIT_NOFILE is below 10.
NOFILE_CMD = (
    "cat /proc/self/cgroup /proc/self/limits; "
    "setsid sh -c 'sleep 1001 & echo GRANDCHILD=$!; exec sleep 1002' & "
    "exec sleep 600"
)


@pytest.mark.parametrize("nofile", ["9:1024", "9:9"])
def test_tiny_nofile_limit_cannot_disable_containment(lab, world, nofile):
    a = world.alice
    token = lab.mint(a, "plain", ttl="4s")
    # a survivor would keep stdout open: the run would then time out
    res = lab.run_as_user(a, ["/usr/bin/sh", "-c", NOFILE_CMD], grant=token, limits={"nofile": nofile}, timeout=30)
    assert not res.timed_out, f"something outlived the grant and kept stdout open\n{res}"
    if res.returncode == 1 and "elevate.start" not in res.actions():
        # a clean refusal is acceptable
        assert len(res.err_lines) == 1 and res.err_lines[0].startswith("jitrun: "), str(res)
        return
    start = res.event("elevate.start")
    assert start.get("jitrun.containment") == "cgroup", str(res)
    assert cgroup_line(res.out) == f"0::/jitrun/{start.get('jitrun.session_id')}/command", str(res)
    assert limits_of(res.out).get("Max open files", [])[:2] == nofile.split(":"), res.out
    m = re.search(r"GRANDCHILD=(\d+)", res.out)
    assert m, str(res)
    assert not pid_alive(int(m.group(1))), f"setsid'd grandchild {m.group(1)} outlived the run\n{res}"
    assert res.event("elevate.end").get("jitrun.end_reason") == EXPIRED, str(res)


# ---- D. a broken stderr cannot lose elevate.end


def broken_stderr(kind: str):
    """(fd to hand over as stderr, cleanup after the spawn)."""
    if kind == "closed-pipe":
        r, w = os.pipe()
        os.close(r)
        return w, lambda: os.close(w)
    f = open("/dev/full", "wb")
    return f.fileno(), f.close


@pytest.mark.parametrize("kind", ["closed-pipe", "/dev/full"])
def test_broken_stderr_still_logs_the_end_of_an_expired_run(lab, world, kind):
    a = world.alice
    grant = grant_file(lab, a, lab.mint(a, "plain", ttl="3s"), "stderr-grant")
    fd, done = broken_stderr(kind)
    try:
        run = lab.spawn_as_user(a, [str(lab.jitrun), "--grant", str(grant), "--", "/usr/bin/sleep", "30"],
                                stdout=subprocess.DEVNULL, stderr=fd)
    finally:
        done()
    with run:
        rc = run.wait(40)
        assert rc == 128 + 15, f"expected 143 (not 101: panic, 134: abort, -13: SIGPIPE)\n{run}"
        events = run.events()
        assert "elevate.start" in [e.action for e in events], str(run)
        end_events(events)


@pytest.mark.parametrize("kind", ["closed-pipe", "/dev/full"])
def test_broken_stderr_refusal_is_still_exit_1_and_logged(lab, world, kind):
    fd, done = broken_stderr(kind)
    try:
        run = lab.spawn_as_user(world.bob, [str(lab.jitrun), "--", "/usr/bin/true"],
                                stdout=subprocess.DEVNULL, stderr=fd)
    finally:
        done()
    with run:
        assert run.wait(40) == 1, str(run)
        assert [e.action for e in run.events()] == ["elevate.deny"], str(run)


# ---- E. no path probing as root


def test_no_probing_of_root_only_directories(lab, world):
    """A user without rules learns nothing through jitrun about what is inside a directory
    only root may search: every path in it gets the same exit status and the same message.
    The directory itself, which the user can stat(2), is refused by the policy (no rule) before
    jitrun opens anything (docs/SECURITY.md I30)."""
    d = Path(tempfile.mkdtemp(prefix="jitreg-", dir="/opt"))
    try:
        os.chmod(d, 0o700)
        (d / "exists-exec").write_bytes(Path("/usr/bin/true").read_bytes())
        os.chmod(d / "exists-exec", 0o755)
        (d / "exists-text").write_text("just text\n")
        os.chmod(d / "exists-text", 0o644)
        (d / "subdir").mkdir(mode=0o755)
        os.symlink("/usr/bin/true", d / "symlink")
        inside = [d / "exists-exec", d / "exists-text", d / "missing", d / "subdir", d / "symlink"]
        answers = {}
        for p in [*inside, d]:
            res = lab.run_as_user(world.bob, [str(p)])
            assert not res.timed_out and "elevate.start" not in res.actions(), str(res)
            answers[p] = (res.returncode, res.err.replace(str(p), "<CMD>"))
        shown = "\n".join(f"  {p}: exit {rc}: {msg!r}" for p, (rc, msg) in answers.items())
        for p, (rc, msg) in answers.items():
            for leak in ("/usr/bin/true", "not executable", "exists-"):
                assert leak not in msg, f"{p}: {leak!r} in the message\n{shown}"
        for p in inside:
            assert "not a regular file" not in answers[p][1], f"{p}\n{shown}"
        assert len({answers[p] for p in inside}) == 1, f"jitrun's answers differ by path:\n{shown}"
        assert answers[d][0] == 1 and "no rule" in answers[d][1], f"the directory itself:\n{shown}"
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---- F. jitrun -l creates no state


def test_list_creates_no_state(lab, world, monkeypatch):
    a = world.alice
    state = lab.tmp / f"state-empty-{os.getpid()}"
    state.mkdir(mode=0o700)
    try:
        monkeypatch.setattr(lab, "state", state)
        token = lab.mint(a, "plain", max_uses=3)
        lab.store_grant(a, token)
        res = lab.run_as_user(a, None, options=["-l"])
        assert res.returncode == 0, str(res)
        assert decode_token(token)[0]["jti"] in res.out + res.err, str(res)  # the grant was looked at
        assert not (state / "uses").exists(), f"jitrun -l created {state / 'uses'}"
        assert sorted(os.listdir(state)) == [], f"jitrun -l left state behind: {os.listdir(state)}"
    finally:
        shutil.rmtree(state, ignore_errors=True)


# ---- G. an option given twice, in any spelling, is a usage error


@pytest.mark.parametrize("dup", [
    ["--grant", "{g}", "--grant={g}"],
    ["--grant={g}", "--grant", "{g}"],
    ["--grant={g}", "--grant={g}"],
    ["--grant", "{g}", "--grant", "-"],
    ["-u", "{u}", "-u{u}"],
    ["-u{u}", "-u", "{u}"],
    ["-u{u}", "-u{u}"],
    ["--user={u}", "-u", "{u}"],
    ["--rule", "plain", "--rule=plain"],
])
def test_option_given_twice_is_a_usage_error(lab, world, dup):
    a = world.alice
    g = grant_file(lab, a, lab.mint(a, "plain"), "dup-grant")
    args = [x.format(g=g, u=a.name) for x in dup]
    res = lab.run_jitrun(a, [*args, "--", "/usr/bin/true"])
    assert res.returncode == 2, str(res)
    assert "elevate.start" not in res.actions(), str(res)
    assert res.err.startswith("jitrun: "), str(res)
