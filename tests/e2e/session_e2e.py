"""What the session tests share (test_session_terminal.py, test_session_recording.py): the
rules they run under, reading the recordings jitrun writes into the lab's
/var/log/jitrun/sessions, small tmpfs mounts for a full disk, and waiting for processes."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from jitlab import Lab, _proc_table, descendants, pid_alive, supervisor_of

REPO = Path(__file__).resolve().parents[2]


def session_rules(world, extra: str = "") -> str:
    """Rules for the session tests. `rec-root`: standing, as root (without capabilities: it
    cannot write into alice's home), recorded. `rec-grant`: the same with a grant (expiry,
    revocation). `rec-me`: standing, as alice herself, recorded (`dash -c`).
    `as-svc`: standing, as the service account, not recorded (a pty only because it is
    another user)."""
    a, b = world.alice, world.bin
    commands = ('["/usr/bin/bash --norc", "/usr/bin/sleep *", "/usr/bin/less *", "/usr/bin/cat **", '
                '"/usr/bin/sh -c *", "/usr/bin/tty", "/usr/bin/stty **", "/usr/bin/true **"]')
    return f"""
[[rule]]
name = "rec-root"
users = ["{a}"]
commands = {commands}
run_as = "root"
grant = "none"
record = true
{extra}

[[rule]]
name = "rec-grant"
users = ["{a}"]
commands = {commands}
run_as = "root"
max_duration = "30m"
record = true
{extra}

[[rule]]
name = "rec-me"
users = ["{a}"]
commands = ["/usr/bin/dash -c *"]
grant = "none"
record = true
{extra}

[[rule]]
name = "as-svc"
users = ["{a}"]
commands = ["{b}/tty-attack *", "/usr/bin/tty", "/usr/bin/sleep *"]
run_as = "{world.svc}"
grant = "none"
"""


def use_session_rules(lab: Lab, world, extra: str = "") -> None:
    lab.set_policy(world.policy, dropins={"40-sessions.toml": session_rules(world, extra)})


def recordings(lab: Lab) -> list[Path]:
    return sorted(lab.sessions.glob("*.cast"), key=lambda p: p.stat().st_mtime)


def recording_of(lab: Lab, events) -> Path:
    """The recording elevate.start named (in the lab's directory behind /var/log/jitrun)."""
    start = [e for e in events if e.action == "elevate.start"]
    assert len(start) == 1, events
    path = start[0].get("jitrun.recording.file")
    assert path and path.startswith("/var/log/jitrun/sessions/"), start[0]
    return lab.logs / path[len("/var/log/jitrun/"):]


def cast(path: Path) -> tuple[dict, list[list]]:
    """A recording: its header and its events, each line parsed as JSON."""
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "", "a recording ends with a newline"
    return json.loads(lines[0]), [json.loads(line) for line in lines[1:-1]]


def output_text(events: list[list], code: str = "o") -> str:
    return "".join(e[2] for e in events if e[1] == code)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_end_names_the_file(end, path: Path) -> None:
    """elevate.end carries the recording's size and SHA-256, and they are the file's."""
    assert end.get("jitrun.recording.file") == "/var/log/jitrun/sessions/" + path.name, end
    assert int(end.get("jitrun.recording.size")) == path.stat().st_size, end
    assert end.get("jitrun.recording.hash.sha256") == sha256(path), end


def datagram_lines(events, path: Path) -> Path:
    """The raw datagrams of `events` (as the lab's listener got them), one per line, as a
    syslog file would hold them: `jitctl sessions fetch --from` reads it."""
    path.write_bytes(b"".join(e.raw.rstrip(b"\n") + b"\n" for e in events))
    return path


@contextlib.contextmanager
def small_tmpfs(size: str):
    """A tmpfs of `size` (root, 0700) in a fresh directory: a disk that fills up. Bind it over
    /var/log/jitrun/sessions with `binds=[(dir, "/var/log/jitrun/sessions")]`."""
    d = Path(tempfile.mkdtemp(prefix="jitlab-full-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700,uid=0,gid=0", "tmpfs", str(d)],
                   check=True)
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)
        d.rmdir()


def fill(directory: Path) -> None:
    """Fill a filesystem to the last byte."""
    with open(directory / "filler", "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass


def wait_until(pred, timeout: float = 30, step: float = 0.05) -> bool:
    """Poll until `pred()`; the timeout only catches a hang."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


def proc_state(pid: int) -> str | None:
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return data[data.rindex(b")") + 2: data.rindex(b")") + 3].decode()


def jitrun_under(lab: Lab, root_pid: int) -> list[int]:
    """The lab's jitrun processes below `root_pid`, oldest first (the front when there is one,
    the supervisor, then its monitor and watchdog)."""
    table = _proc_table()
    return sorted(p for p in descendants(root_pid) if table.get(p, (0, set(), ""))[2] == str(lab.jitrun))


def supervisor_under(lab: Lab, root_pid: int) -> int | None:
    """The supervisor of the one run below `root_pid`, once it is there: the child of jitrun's
    front (the process the shell started, which with cgroup v2 starts the supervisor in
    jitrun's own cgroup: crates/jitrun/src/front.rs), else that process itself."""
    pids = jitrun_under(lab, root_pid)
    if not pids:
        return None
    supervisor = supervisor_of(pids[0], str(lab.jitrun))
    return supervisor if supervisor != pids[0] or len(pids) > 1 else None


def command_under(lab: Lab, root_pid: int, exe: str) -> int:
    """The one live process below `root_pid` running `exe`."""
    found = []

    def one():
        table = _proc_table()
        found[:] = [p for p in descendants(root_pid) if table.get(p, (0, set(), ""))[2] == exe and pid_alive(p)]
        return len(found) == 1
    assert wait_until(one, 30), f"no single {exe} under {root_pid}: {found}"
    return found[0]


def status_field(pid: int, name: str) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    raise KeyError(name)
