"""What the session-recording tests share: the real producer (`cargo run -p jit-session
--example record`: a command's output through the real Recorder, session.io events through
jit-audit's real syslog sink), jitctl, a datagram collector, Debian's asciinema on a real
pty, and private rsyslogd instances running the shipped configurations."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import shutil
import signal
import socket
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "harness"))

from rsyslog import INPUT_SETTINGS, Rsyslog, find_rsyslogd  # noqa: E402,F401  (re-exported)

TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
RECORD = TARGET / "debug" / "examples" / "record"
JITCTL = Path(os.environ.get("JITCTL_BIN") or TARGET / "debug" / "jitctl")
SIEM_RSYSLOG = ROOT / "packaging" / "siem" / "rsyslog"
SIEM_EVENTS = "/var/log/jitrun/events.json"
SIEM_FORGED = "/var/log/jitrun/forged.json"

_built = False


def build() -> None:
    """The producer and jitctl, built once per test session."""
    global _built
    if not _built:
        subprocess.run(["cargo", "build", "-q", "-p", "jitctl", "-p", "jit-session", "--example", "record"],
                       cwd=ROOT, check=True)
        _built = True


def record(out: Path, socket_path: Path, command: list[str], *, framing: str = "cee", session: str,
           user: str = "tester", max_bytes: int | None = None, on_limit: str | None = None,
           read_size: int = 4096, timeout: float = 600) -> dict:
    """Record `command`'s standard output into `out`, sending session.io to `socket_path`."""
    args = [str(RECORD), "--out", str(out), "--socket", str(socket_path), "--framing", framing,
            "--session-id", session, "--user", user, "--read-size", str(read_size)]
    if max_bytes is not None:
        args += ["--max-bytes", str(max_bytes)]
    if on_limit is not None:
        args += ["--on-limit", on_limit]
    p = subprocess.run(args + ["--", *command], capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"record failed: {p.stderr}"
    return json.loads(p.stdout)


def jitctl(*args, check: bool = True, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    p = subprocess.run([str(JITCTL), *map(str, args)], capture_output=True, timeout=timeout, **kw)
    if check:
        assert p.returncode == 0, f"jitctl {args}: {p.returncode}\n{p.stdout!r}\n{p.stderr!r}"
    return p


class Collector:
    """A unix datagram socket that keeps every datagram it receives (a stand-in for the
    syslog socket when the test wants the raw datagrams)."""

    def __init__(self, path: Path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.datagrams: list[bytes] = []
        self._stop = False
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop:
            try:
                self.datagrams.append(self.sock.recv(1 << 17))
            except socket.timeout:
                continue
            except OSError:
                return

    def close(self) -> list[bytes]:
        """Stop (after draining what is queued) and return the datagrams."""
        time.sleep(0.3)
        self._stop = True
        self._thread.join(timeout=10)
        self.sock.close()
        return self.datagrams


def asciinema_cat(path: Path, timeout: float = 600) -> bytes:
    """`asciinema cat FILE` as a person runs it: on a terminal (it opens /dev/tty and sets raw
    mode), with its standard output captured byte for byte."""
    master, slave = pty.openpty()
    try:
        p = subprocess.run(
            ["asciinema", "cat", str(path)], stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True, preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(path.parent),
                 "LANG": "C.UTF-8", "PYTHONIOENCODING": "utf-8", "TERM": "xterm"},
            timeout=timeout,
        )
    finally:
        os.close(slave)
        os.close(master)
    assert p.returncode == 0, p.stderr
    return p.stdout


# ---- rsyslogd running packaging/siem/rsyslog/60-jitrun-{cee,rfc5424}.conf


class SiemRsyslog:
    """A private rsyslogd with one of the shipped drop-ins, as packaging/siem/README.md says to
    install it (imuxsock's special parser off, the sender's credentials on), on a private
    socket; events.json and forged.json in `dir`."""

    def __init__(self, directory: Path, framing: str):
        self.dir = directory
        self.socket = directory / "log.sock"
        self.events_file = directory / "events.json"
        snippet = directory / "snippet.conf"
        self.forged_file = directory / "forged.json"
        text = (SIEM_RSYSLOG / f"60-jitrun-{framing}.conf").read_text()
        assert SIEM_EVENTS in text and SIEM_FORGED in text
        snippet.write_text(text.replace(SIEM_EVENTS, str(self.events_file)).replace(SIEM_FORGED, str(self.forged_file)))
        self.conf = directory / "rsyslog.conf"
        self.conf.write_text(
            f'global(workDirectory="{directory}")\n'
            'main_queue(queue.workerThreads="1")\n'
            'module(load="imuxsock" SysSock.Use="off")\n'
            # as docs/audit.md says: the sender's credentials, which the drop-in checks
            f'input(type="imuxsock" Socket="{self.socket}" {INPUT_SETTINGS})\n'
            f'include(file="{snippet}")\n'
        )
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "SiemRsyslog":
        rsyslogd = find_rsyslogd()
        assert rsyslogd, "rsyslogd is not installed (make deps)"
        self.log = open(self.dir / "rsyslogd.log", "wb")
        self.proc = subprocess.Popen([rsyslogd, "-n", "-f", str(self.conf), "-i", str(self.dir / "pid")],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(self.socket.exists, "rsyslogd's socket")
        return self

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def wait_for_lines(self, n: int) -> None:
        wait_for(lambda: line_count(self.events_file) >= n, f"{n} lines in {self.events_file}")


def wait_for(check, what: str, timeout: float = 120) -> None:
    """Poll until `check()`; the timeout only catches a hang."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def line_count(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


def have(tool: str) -> bool:
    return shutil.which(tool) is not None
