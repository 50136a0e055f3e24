"""A private systemd-journald, for tests of what happens on hosts where journald owns /dev/log.

systemd is not PID 1 here, so :class:`Journald` starts ``systemd-journald`` itself (Debian
package ``systemd``), in a new user and mount namespace:

* the user namespace maps uids and gids 0-65535 to themselves, so the credentials of senders
  outside it (SCM_CREDENTIALS) keep their values, while the kernel refuses journald's call to
  turn kernel auditing on (audit only listens to the initial user namespace): a test must not
  change a host-wide setting;
* in the mount namespace, ``/run`` is a fresh tmpfs (the journal is volatile and private; the
  host's /run is not needed and need not have a /run/systemd), ``/run/systemd/journal`` is a
  directory of the host (``run_dir``, 0755) so that every process reaches its sockets by path,
  and ``/etc/systemd/journald.conf`` is this harness's: ``ForwardToSyslog=yes`` (Debian's
  default), no kernel messages, no rate limit.

journald's syslog socket (what /dev/log links to on a systemd host) is ``dev_log``; it forwards
every message to ``run_dir/syslog`` (journald's ``/run/systemd/journal/syslog``), where an
rsyslogd of tests/harness/rsyslog.py can listen, as Debian's rsyslog does through syslog.socket.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

JOURNALD = Path("/lib/systemd/systemd-journald")
PID_MARKER = ".jitlab-pid"  # as jitlab: sweep_stale() removes the directory of a dead owner
ID_MAP = "0 0 65536\n"
CONF = """[Journal]
Storage=volatile
ForwardToSyslog=yes
ReadKMsg=no
ForwardToWall=no
RateLimitIntervalSec=0
"""
NS_SCRIPT = r"""
set -e
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/systemd/journal /run/log
mount --bind "$1" /run/systemd/journal
mount --bind "$2" /etc/systemd/journald.conf
exec "$3"
"""


class JournaldError(RuntimeError):
    pass


def available() -> bool:
    return JOURNALD.is_file() and Path("/etc/systemd/journald.conf").is_file()


class Journald:
    """A private journald; see the module documentation. Use as a context manager."""

    def __init__(self) -> None:
        if not available():
            raise JournaldError(f"{JOURNALD} or /etc/systemd/journald.conf is missing (make deps: Debian package systemd)")
        self.dir = Path(tempfile.mkdtemp(prefix="jitlab-journald-"))
        os.chmod(self.dir, 0o755)  # every user reaches dev_log, as /dev/log
        (self.dir / PID_MARKER).write_text(str(os.getpid()))
        self.run_dir = self.dir / "journal"
        self.run_dir.mkdir(mode=0o755)
        self.conf = self.dir / "journald.conf"
        self.conf.write_text(CONF)
        self.log = self.dir / "journald.log"
        self.dev_log = self.run_dir / "dev-log"
        self.forward_socket = self.run_dir / "syslog"
        self.proc: subprocess.Popen | None = None
        atexit.register(self.close)

    def start(self, timeout: float = 20) -> "Journald":
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                # waits for the id maps (a line on stdin), then runs NS_SCRIPT
                ["unshare", "--user", "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
                 'read ready && exec /bin/sh -c "$0" journald-ns "$1" "$2" "$3"',
                 NS_SCRIPT, str(self.run_dir), str(self.conf), str(JOURNALD)],
                stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        mine = os.readlink("/proc/self/ns/user")
        while True:  # the map can be written once unshare(2) has made the namespace
            try:
                if os.readlink(f"/proc/{self.proc.pid}/ns/user") != mine:
                    break
            except FileNotFoundError:
                pass
            self._check_alive(deadline, "its user namespace")
        for name in ("uid_map", "gid_map"):
            with open(f"/proc/{self.proc.pid}/{name}", "w") as f:
                f.write(ID_MAP)
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.close()
        while not self.dev_log.exists():
            self._check_alive(deadline, str(self.dev_log))
        return self

    def _check_alive(self, deadline: float, what: str) -> None:
        if self.proc.poll() is not None:
            raise JournaldError(f"journald exited ({self.proc.returncode}): {self.log.read_text(errors='replace')}")
        if time.monotonic() > deadline:
            self.close()
            raise JournaldError(f"journald did not make {what}: {self.log.read_text(errors='replace')}")
        time.sleep(0.02)

    def close(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)
        try:
            atexit.unregister(self.close)
        except Exception:  # noqa: BLE001
            pass

    def __enter__(self) -> "Journald":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
