"""The pty relay on a real terminal (issue 18): tmux runs an interactive bash as a throwaway
user in the lab's mount namespace; the tests type into it, read its screen and resize it, as a
person would (tests/harness/tmuxlab.py).

A command that records, or runs as another user, runs on a pty of jitrun's: an interactive
root shell is recorded and plays back; a full-screen program follows a window resize; Ctrl-C
and Ctrl-Z/fg behave as without jitrun; the caller's terminal is as it was (`stty -a`) after
a normal exit, expiry, revocation and a supervisor killed outright; a command running as
another user can neither push keystrokes into the caller's shell nor change her terminal; the
session's terminal is root's alone."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from e2e_support import TEST_SECURE_PATH  # noqa: E402
from session_e2e import (  # noqa: E402
    cast, check_end_names_the_file, command_under, jitrun_under, output_text, proc_state, recording_of,
    supervisor_under, use_session_rules, wait_until,
)
from tmuxlab import PROMPT, Tmux, have_tmux  # noqa: E402

pytestmark = pytest.mark.skipif(not have_tmux() and not os.environ.get("CI"), reason="tmux is not installed (make deps)")


@pytest.fixture
def term(lab, world):
    use_session_rules(lab, world)
    with Tmux(lab, world.alice) as t:
        yield t


def stty_lines(text: str) -> list[str]:
    """`stty -a` without its first line's window size (a resize changes that on purpose)."""
    first, rest = text.split("\n", 1)
    return [re.sub(r"rows \d+; columns \d+; ", "", first)] + rest.splitlines()


def raw_now(tty: str) -> bool:
    out = subprocess.run(["stty", "-a", "-F", tty], capture_output=True, text=True, check=True).stdout
    return "-icanon" in out and "-echo " in out


def jitrun_events(lab, mark: int) -> list:
    lab.audit.sync()
    return lab.audit.since(mark)


def ends(events) -> list:
    return [e for e in events if e.action == "elevate.end"]


# ---- recorded, replayed


def test_an_interactive_root_shell_is_recorded_and_plays_back(lab, world, term):
    mark = lab.audit.mark()
    term.run(f"{lab.jitrun} -- /usr/bin/bash --norc")
    term.wait_for("bash-5")
    term.run("echo SECRET-$((6*7)); id -u")
    term.wait_for(re.compile(r"SECRET-42\s+0\b"))
    term.run("exit")
    term.wait_prompt(2)
    term.command("echo rc=$?")
    term.wait_for("rc=0")
    events = jitrun_events(lab, mark)
    path = recording_of(lab, events)
    header, rec = cast(path)
    assert header["width"] == 100 and header["height"] == 30, header
    assert header["jitrun"]["user"] == world.alice.name and header["jitrun"]["run_as"] == "root", header
    assert header["jitrun"]["rule"] == "rec-root" and header["jitrun"]["input"] is False, header
    shown = output_text(rec)
    assert "SECRET-42\r\n0\r\n" in shown, shown
    assert "echo SECRET-$((6*7))" in shown, "the shell's echo of the typed line is output"
    assert not [e for e in rec if e[1] == "i"], "input is not recorded unless record_input"
    assert rec[-1][1:] == ["x", "0"], rec[-1]
    times = [e[0] for e in rec]
    assert times == sorted(times)
    check_end_names_the_file(ends(events)[0], path)
    # It plays in Debian's asciinema, and in jitctl (as root) from the list.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "session"))
    from session_support import asciinema_cat  # noqa: E402
    assert asciinema_cat(path) == shown.encode()
    listed = subprocess.run([str(lab.jitctl_bin), "sessions", "list", "--dir", str(lab.sessions), "--json"],
                            capture_output=True, check=True).stdout.decode()
    assert path.stem in listed and world.alice.name in listed, listed


def test_record_input_records_what_is_typed(lab, world, term):
    use_session_rules(lab, world, extra="record_input = true\nallow_risks = [\"records-input\"]")
    mark = lab.audit.mark()
    term.run(f"{lab.jitrun} -- /usr/bin/cat")
    # (typed before jitrun makes the terminal raw, Enter would arrive as the shell's \n)
    assert wait_until(lambda: raw_now(term.pane_tty())), "the terminal never went raw"
    term.run("typed-words")
    term.wait_for(re.compile(r"typed-words\s+typed-words"))
    term.type("C-d", literal=False)
    term.wait_prompt(2)
    _, rec = cast(recording_of(lab, jitrun_events(lab, mark)))
    typed = output_text(rec, "i")
    assert typed == "typed-words\r\x04", typed
    assert "typed-words\r\ntyped-words\r\n" in output_text(rec)


def test_a_full_screen_program_follows_a_window_resize(lab, world, term):
    lines = world.alice.home / "numbered.txt"
    lines.write_text("".join(f"line {i:05d}\n" for i in range(1, 200)))
    mark = lab.audit.mark()
    term.run(f"{lab.jitrun} -- /usr/bin/less {lines}")
    term.wait_for("line 00029", whole=False)
    assert "line 00031" not in term.screen()
    term.resize(120, 45)
    # less asks the pty for its size on SIGWINCH and redraws 44 lines.
    term.wait_for("line 00044", whole=False)
    term.type("q")
    term.wait_prompt(2)
    path = recording_of(lab, jitrun_events(lab, mark))
    header, rec = cast(path)
    assert (header["width"], header["height"]) == (100, 30)
    resizes = [e[2] for e in rec if e[1] == "r"]
    assert resizes == ["120x45"], resizes
    assert "line 00044" in output_text(rec)
    assert rec[-1][1:] == ["x", "0"]


# ---- keys and job control


def test_ctrl_c_ends_the_command_as_it_would_without_jitrun(lab, world, term):
    term.run("/usr/bin/sleep 100")
    command_under(lab, term.shell_pid(), "/usr/bin/sleep")
    term.type("C-c", literal=False)
    term.wait_prompt(2)
    term.command("echo plain=$?")
    mark = lab.audit.mark()
    term.run(f"{lab.jitrun} -- /usr/bin/sleep 100")
    sleeper = command_under(lab, term.shell_pid(), "/usr/bin/sleep")
    assert wait_until(lambda: raw_now(term.pane_tty())), "the terminal never went raw"
    term.type("C-c", literal=False)
    term.wait_prompt(4)
    term.command("echo jitrun=$?")
    term.wait_for("plain=130")
    term.wait_for("jitrun=130")
    assert proc_state(sleeper) is None, "the command outlived jitrun"
    end = ends(jitrun_events(lab, mark))[0]
    assert end.get("jitrun.end_reason") == "signal" and end.get("jitrun.signal") == "SIGINT", end


def test_ctrl_z_stops_the_job_and_fg_continues_it(lab, world, term):
    # Without jitrun, for comparison: what the shell says. (Keys go in once the program runs
    # in the foreground: typed earlier, the shell itself would get them.)
    term.run("/usr/bin/sleep 100")
    plain_sleeper = command_under(lab, term.shell_pid(), "/usr/bin/sleep")
    term.type("C-z", literal=False)
    plain = term.wait_for(re.compile(r"\[1\]\+\s+(Stopped)\s+/usr/bin/sleep 100"))
    term.command("kill -9 %1")
    # Once the shell has reaped it, `jobs` reports the killed job: the next one is %1 again.
    assert wait_until(lambda: proc_state(plain_sleeper) is None), proc_state(plain_sleeper)
    term.command("jobs")
    term.wait_for(re.compile(r"\[1\]\+?\s+Killed"))
    mark = lab.audit.mark()
    term.run(f"{lab.jitrun} -- /usr/bin/sleep 100")
    sleeper = command_under(lab, term.shell_pid(), "/usr/bin/sleep")
    supervisor = jitrun_under(lab, term.shell_pid())[0]
    assert wait_until(lambda: raw_now(term.pane_tty())), "the terminal never went raw"
    term.type("C-z", literal=False)
    stopped = term.wait_for(re.compile(r"\[1\]\+\s+(Stopped)\s+\S+jitrun -- /usr/bin/sleep 100"))
    assert stopped.group(1) == plain.group(1)
    assert wait_until(lambda: proc_state(sleeper) == "T" and proc_state(supervisor) == "T"), \
        (proc_state(sleeper), proc_state(supervisor))
    # The root command is in its own session now: she cannot continue it alone.
    term.command(f"kill -CONT {sleeper}; echo cont=$?")
    term.wait_for("Operation not permitted")
    assert proc_state(sleeper) == "T"
    term.command("jobs")
    n = term.count(PROMPT)
    term.run("fg")
    assert wait_until(lambda: proc_state(sleeper) == "S" and proc_state(supervisor) == "S"), \
        (proc_state(sleeper), proc_state(supervisor))
    term.type("C-c", literal=False)
    term.wait_prompt(n + 1)
    term.command("echo rc=$?")
    term.wait_for("rc=130")
    events = jitrun_events(lab, mark)
    assert ends(events)[0].get("jitrun.end_reason") == "signal"
    _, rec = cast(recording_of(lab, events))
    assert "^Z" in output_text(rec) and "^C" in output_text(rec)


def test_end_of_input_and_the_exit_status_pass_through(lab, world, term):
    term.run(f"{lab.jitrun} -- /usr/bin/cat")
    term.wait_for("-- /usr/bin/cat")
    term.run("one line")
    term.wait_for(re.compile(r"one line\s+one line"))
    term.type("C-d", literal=False)
    term.wait_prompt(2)
    term.command("echo cat=$?")
    term.command(f"{lab.jitrun} -- /usr/bin/sh -c 'exit 7'; echo sh=$?")
    term.wait_for("cat=0")
    term.wait_for("sh=7")


def test_a_command_started_in_the_background_leaves_the_terminal_to_the_shell(lab, world, term):
    before = term.stty("bg-before")
    term.command(f"{lab.jitrun} -- /usr/bin/sleep 3 &")
    during = term.stty("bg-during")
    assert stty_lines(during) == stty_lines(before), "a background jitrun must not make the terminal raw"
    term.command("wait; echo bg=$?")
    term.wait_for("bg=0")


# ---- the terminal as it was, however the run ends


@pytest.mark.parametrize("how", ["exit", "expiry", "revocation", "supervisor-killed"])
def test_the_terminal_is_restored_however_the_run_ends(lab, world, term, how):
    """`stty -a` is the same before and after, whatever ends the run. jitrun runs under dash,
    which (unlike bash) never puts a terminal back itself after a job that died of a signal,
    and which reads the settings only once every jitrun process is gone (the watchdog puts
    them back when the supervisor was killed)."""
    a = world.alice
    lab.write_settings(secure_path=TEST_SECURE_PATH, kill_grace="1s")
    token = lab.mint(a, "rec-grant", ttl="4s" if how == "expiry" else "5m")
    grant = lab.user_file(a, f".jitlab/term-{how}", token + "\n")
    before, after, go = (term.dir / f"stty-{how}-{w}" for w in ("before", "after", "go"))
    mark = lab.audit.mark()
    n = term.count(PROMPT)
    duration = "1" if how == "exit" else "100"
    term.run(f"/usr/bin/dash -c 'stty -a > {before}; {lab.jitrun} --grant {grant} -- /usr/bin/sleep {duration}; "
             f"while [ ! -e {go} ]; do sleep 0.1; done; stty -a > {after}'")
    # While it runs, the caller's terminal is raw (the control: a restore is needed).
    assert wait_until(lambda: raw_now(term.pane_tty())), "the terminal never went raw"
    if how == "revocation":
        lab.write_revocations([lab.revocation_entry(token, reason="terminal test")])
    elif how == "supervisor-killed":
        # The supervisor, not the front her shell started (killing that ends only her view of
        # the job: the supervisor and the watchdog go on).
        assert wait_until(lambda: supervisor_under(lab, term.shell_pid())), "no jitrun supervisor under the shell"
        os.kill(supervisor_under(lab, term.shell_pid()), signal.SIGKILL)
    assert wait_until(lambda: not jitrun_under(lab, term.shell_pid()), 60), "jitrun did not end"
    go.touch()
    term.wait_prompt(n + 1, timeout=60)
    assert stty_lines(after.read_text()) == stty_lines(before.read_text()), f"{how}: the terminal was left changed"
    lab.clear_revocations()
    reason = {"exit": "exit", "expiry": "expired", "revocation": "revoked",
              "supervisor-killed": "supervisor_killed"}[how]
    assert wait_until(lambda: ends(jitrun_events(lab, mark))), "no elevate.end"
    assert ends(jitrun_events(lab, mark))[0].get("jitrun.end_reason") == reason


# ---- another user cannot reach the caller's terminal


def test_a_command_run_as_another_user_cannot_reach_the_callers_terminal(lab, world, term):
    """The command (as the service account) tries TIOCSTI and TIOCLINUX into its terminal and
    /dev/tty, and to change the terminal's settings and size. On jitrun's pty none of it
    reaches the caller: nothing typed into her shell, her terminal as it was. Control: the
    same program run by her directly injects a command her shell then runs."""
    legacy = Path("/proc/sys/dev/tty/legacy_tiocsti")
    if legacy.exists() and legacy.read_text().strip() == "0":
        pytest.skip("this kernel refuses TIOCSTI to everyone (dev.tty.legacy_tiocsti = 0): no control")
    a = world.alice
    attack = world.bin / "tty-attack"
    control = a.home / "injected-control"
    marker = a.home / "injected-through-jitrun"
    for m in (control, marker):
        m.unlink(missing_ok=True)
    term.command("saved=$(stty -g)")
    # Control: run directly, the pushed `touch` line runs in her shell after the program, and
    # her terminal is left changed.
    term.command(f"{attack} {control}")
    assert wait_until(control.exists, 20), f"control: TIOCSTI did not inject\n{term.history()}"
    changed = term.stty("inject-control")
    assert "-icanon" in changed and "rows 5; columns 20" in changed, changed
    term.command('stty "$saved"; stty cols 100 rows 30')
    before = term.stty("inject-before")
    mark = lab.audit.mark()
    term.command(f"{lab.jitrun} -- {attack} {marker}")
    term.command("true")  # whatever was pushed would have run by now
    term.wait_for("TIOCSTI on fd 0: Operation not permitted")
    assert not marker.exists(), "a keystroke pushed by the other user's command ran in the caller's shell"
    after = term.stty("inject-after")
    assert stty_lines(after) == stty_lines(before) and "rows 30; columns 100" in after, \
        "the other user's command changed the caller's terminal"
    start = [e for e in jitrun_events(lab, mark) if e.action == "elevate.start"][0]
    assert start.get("user.target.name") == world.svc.name
    mine = term.pane_tty()
    shown = re.findall(r"my terminal: (\S+)", term.history())[-1]
    assert shown != mine and shown.startswith("/dev/pts/"), (shown, mine)


def test_without_use_pty_the_command_shares_the_callers_terminal(lab, world, term):
    """`use_pty = false`: the other user's command gets her terminal itself (the TIOCSTI filter
    still holds); its settings change stays. This is what the pty prevents."""
    lab.write_settings(secure_path=TEST_SECURE_PATH, use_pty=False)
    before = term.stty("shared-before")
    marker = world.alice.home / "injected-shared"
    marker.unlink(missing_ok=True)
    term.command(f"{lab.jitrun} -- {world.bin / 'tty-attack'} {marker}")
    term.wait_for("TIOCSTI on fd 0: Operation not permitted")
    term.wait_for(f"my terminal: {term.pane_tty()}")
    after = term.stty("shared-after")
    assert stty_lines(after) != stty_lines(before), "the shared terminal was expected to change"
    assert not marker.exists()
    term.command("stty sane")


def test_the_session_terminal_is_roots_alone(lab, world, term):
    """Nobody but root can open the pty a session runs on: not the run-as user's other
    processes, not a process of the `tty` group (what `write` and `wall` run as), so nobody
    reads what is typed into the session or writes into its recording. Control: a pty of
    mode 0620, group tty, as devpts makes them on Debian, is open to that process."""
    svc = world.svc
    term.run(f"{lab.jitrun} -- /usr/bin/sleep 100")
    sleeper = command_under(lab, term.shell_pid(), "/usr/bin/sleep")
    pts = os.readlink(f"/proc/{sleeper}/fd/0")
    assert pts.startswith("/dev/pts/") and pts != term.pane_tty(), pts
    st = os.stat(pts)
    assert (st.st_uid, st.st_mode & 0o777) == (0, 0o600), (st.st_uid, oct(st.st_mode))
    probe = ("import os, sys\n"
             "try:\n    os.close(os.open(sys.argv[1], os.O_WRONLY | os.O_NOCTTY)); print('opened')\n"
             "except OSError as e:\n    print(e.strerror)\n")
    as_tty_group = ["setpriv", f"--reuid={svc.uid}", f"--regid={svc.gid}", "--groups=tty", "--",
                    sys.executable, "-c", probe]
    out = subprocess.run(as_tty_group + [pts], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "Permission denied", out
    # Control: the same process opens a pty that is the tty group's (0620).
    master, slave = os.openpty()
    try:
        name = os.ttyname(slave)
        os.chown(name, 0, 5)
        os.chmod(name, 0o620)
        out = subprocess.run(as_tty_group + [name], capture_output=True, text=True, check=True).stdout.strip()
        assert out == "opened", out
    finally:
        os.close(master)
        os.close(slave)
    term.type("C-c", literal=False)
    term.wait_prompt(2)


# ---- the monitor: a root command cannot turn it against the caller


def test_a_root_command_that_stops_its_monitor_does_not_stop_the_callers_job(lab, world, term):
    """A command that runs as root (uid 0, no capability) may signal the pty monitor, which is
    root too. Stopping it must neither stop jitrun (the caller's job would stop with her
    terminal left raw) nor the command: jitrun continues the monitor."""
    before = term.stty("monitor-before")
    n = term.count(PROMPT)
    term.run(f"{lab.jitrun} --rule rec-root -- /usr/bin/sh -c "
             "'id -u; kill -STOP $PPID; echo stop-rc=$?; sleep 1; echo survived-$((1+1))'")
    term.wait_prompt(n + 1)
    term.command("echo rc=$?")
    term.wait_for(re.compile(r"\b0\s+stop-rc=0\s+survived-2"))  # (root, and the stop was sent)
    term.wait_for("rc=0")
    assert "Stopped" not in term.history()
    assert stty_lines(term.stty("monitor-after")) == stty_lines(before)


def test_a_pty_run_whose_supervisor_and_watchdog_died_is_ended_by_the_next_jitrun(lab, world, term):
    """Both root processes of a run on a pty killed at once (root can; so can a command that
    runs as root): the monitor dies with the supervisor (PR_SET_PDEATHSIG), so the run's
    `supervisor` cgroup leaf is empty and the next jitrun ends the command and logs the end."""
    mark = lab.audit.mark()
    term.run(f"{lab.jitrun} -- /usr/bin/sleep 600")
    sleeper = command_under(lab, term.shell_pid(), "/usr/bin/sleep")
    monitor = int(Path(f"/proc/{sleeper}/stat").read_text().rsplit(")", 1)[1].split()[1])
    # The supervisor, its monitor and its watchdog (besides the front, when there is one).
    def root_processes():
        supervisor = supervisor_under(lab, term.shell_pid())
        return supervisor, (jitrun_under(lab, supervisor) if supervisor else [])

    assert wait_until(lambda: len(root_processes()[1]) == 2), root_processes()
    supervisor, others = root_processes()
    watchdog = next(p for p in others if p != monitor)
    assert monitor in others, (monitor, others)
    os.kill(watchdog, signal.SIGSTOP)
    os.kill(supervisor, signal.SIGKILL)
    os.kill(watchdog, signal.SIGKILL)
    assert wait_until(lambda: proc_state(monitor) in (None, "Z")), "the monitor outlived its supervisor"
    # (the next jitrun looks for runs whose jitrun processes are all gone)
    assert wait_until(lambda: all(proc_state(p) in (None, "Z") for p in (supervisor, watchdog)))
    session = [e for e in jitrun_events(lab, mark) if e.action == "elevate.start"][0].get("jitrun.session_id")
    res = lab.run_as_user(world.bob, ["/usr/bin/true"])
    assert res.returncode == 1, res
    assert wait_until(lambda: proc_state(sleeper) in (None, "Z")), "the next jitrun left the command running"
    end = [e for e in jitrun_events(lab, mark) if e.action == "elevate.end" and e.get("jitrun.session_id") == session]
    assert len(end) == 1 and end[0].get("jitrun.end_reason") == "supervisor_killed", end
    assert end[0].get("jitrun.recording.file", "").endswith(f"{session}.cast"), end[0]
    term.run("stty sane")
