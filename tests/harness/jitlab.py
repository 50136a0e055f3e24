"""jitlab: run the real, installed-setuid jitrun as throwaway users, for tests and the demo.

Everything here acts on the real host and needs root:

* throwaway users and groups (``jt`` + random suffix), deleted with ``userdel -r`` at teardown;
* a root-owned 4755 copy of ``target/debug/jitrun`` under
  ``/usr/local/libexec/jitrun-test/<random>/`` (checked not to be on a nosuid mount), next to
  small C helper programs the tests run;
* a configuration directory (root 0755, files 0644), a state directory (root 0700) and a log
  directory (root 0755, with ``sessions/`` root 0700 for session recordings) in a private
  temporary directory; each run bind-mounts them over ``/etc/jitrun``, ``/var/lib/jitrun`` and
  ``/var/log/jitrun`` inside its own private mount namespace (``unshare --mount``), so the
  production binary reads its test configuration (and writes its recordings) at its real
  paths and the host's stay untouched;
* an :class:`AuditListener` on a unix datagram socket that the settings name as
  ``audit.socket``; it parses both framings (``@cee:`` JSON and RFC 5424);
* grants minted with ``jitctl`` or, for tokens jitctl would never make, with ``pyseto``.

Typical use::

    with Lab() as lab:
        alice = lab.add_user()
        lab.set_policy(...)
        token = lab.mint(alice, "net-debug", ttl="5m")
        res = lab.run_as_user(alice, ["/usr/bin/cat", "/proc/self/status"], grant=token)
        print(res.returncode, res.stdout, res.events)

Teardown (``Lab.close``, also run from ``atexit`` and on SIGTERM/SIGHUP) kills the throwaway users'
processes and our jitrun copies, deletes users, groups and directories, and removes the mount
points it created. ``sweep_stale()`` removes what an earlier, killed run left behind.
"""

from __future__ import annotations

import atexit
import base64
import errno
import grp
import json
import os
import pty
import pwd
import re
import secrets
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from pty import openpty as _openpty
from typing import Any, Iterable, Sequence

REPO = Path(__file__).resolve().parents[2]
HELPERS_SRC = Path(__file__).resolve().parent / "helpers"
INSTALL_BASE = Path("/usr/local/libexec/jitrun-test")
MOUNT_POINTS = (Path("/etc/jitrun"), Path("/var/lib/jitrun"), Path("/var/log/jitrun"))
GECOS_TAG = "jitlab throwaway pid="
PID_MARKER = ".jitlab-pid"
GROUPS_MARKER = ".jitlab-groups"
# Mount points that some jitlab created, shared by all labs: the last lab to close removes them.
MOUNTPOINTS_MARKER = INSTALL_BASE / ".jitlab-created-mountpoints"

DEFAULT_HOST = "jitlab-host"
DEFAULT_SD_ID = "jitrun@32473"
DEFAULT_SECURE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
GRANT_IA = b"jitrun:grant:v1"
ATTEST_IA = b"jitrun:attest:v1"
REVOCATIONS_IA = b"jitrun:revocations:v1"

# Linux capability numbers (include/uapi/linux/capability.h), for masks and decoding.
CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
    "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
]


class JitlabError(RuntimeError):
    pass


# --------------------------------------------------------------------------------------------
# small helpers


def cap_mask(*names: str) -> int:
    """Bit mask of capability names (``CAP_NET_RAW`` or ``net_raw``)."""
    mask = 0
    for n in names:
        n = n.upper()
        if not n.startswith("CAP_"):
            n = "CAP_" + n
        mask |= 1 << CAPS.index(n)
    return mask


def cap_names(mask: int) -> list[str]:
    return [name for i, name in enumerate(CAPS) if mask >> i & 1] + [
        f"cap_{i}" for i in range(len(CAPS), 64) if mask >> i & 1
    ]


def parse_proc_status(text: str) -> dict[str, str]:
    """``/proc/PID/status`` text as a dict; Cap* values stay hex strings (use ``int(v, 16)``)."""
    out = {}
    for line in text.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            out[k.strip()] = v.strip()
    return out


def _run(cmd: Sequence[str | bytes | os.PathLike], check: bool = True, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    kw.setdefault("stdin", subprocess.DEVNULL)
    p = subprocess.run([os.fspath(c) for c in cmd], **kw)
    if check and p.returncode != 0:
        raise JitlabError(
            f"command failed ({p.returncode}): {' '.join(map(str, cmd))}\n"
            f"stdout: {_txt(p.stdout)}\nstderr: {_txt(p.stderr)}"
        )
    return p


def _txt(b: bytes | str | None) -> str:
    if b is None:
        return ""
    if isinstance(b, bytes):
        return b.decode("utf-8", "backslashreplace")
    return b


def _rfc3339(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def uuid7() -> str:
    """A UUIDv7 string (time-ordered), as grant ids are."""
    ms = int(time.time() * 1000)
    rand = int.from_bytes(secrets.token_bytes(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= (rand >> 68 & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


def b64url_decode(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64url_encode(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def decode_token(token: str) -> tuple[dict, bytes, bytes]:
    """Split a v4.public token WITHOUT verifying it: (claims, signature, raw footer)."""
    parts = token.strip().split(".")
    if len(parts) not in (3, 4) or parts[0] != "v4" or parts[1] != "public":
        raise ValueError("not a v4.public token")
    body = b64url_decode(parts[2])
    footer = b64url_decode(parts[3]) if len(parts) == 4 else b""
    return json.loads(body[:-64]), body[-64:], footer


def tamper_token(token: str, mutate) -> str:
    """Change the claims of a signed token but keep its signature (a forgery).

    ``mutate(claims_dict) -> None`` edits the claims in place."""
    parts = token.strip().split(".")
    claims, sig, _ = decode_token(token)
    mutate(claims)
    parts[2] = b64url_encode(json.dumps(claims, separators=(",", ":")).encode() + sig)
    return ".".join(parts)


def pid_alive(pid: int) -> bool:
    """True if the process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return False
    except OSError:
        return False
    state = data[data.rindex(b")") + 2 : data.rindex(b")") + 3]
    return state not in (b"Z", b"X")


def _proc_table() -> dict[int, tuple[int, set[int], str]]:
    """pid -> (ppid, {real, effective, saved, fs uids}, exe or '')."""
    table = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        pid = int(d)
        try:
            with open(f"/proc/{pid}/status") as f:
                st = parse_proc_status(f.read())
            ppid = int(st.get("PPid", "0"))
            uids = {int(x) for x in st.get("Uid", "").split()}
        except (OSError, ValueError):
            continue
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            exe = ""
        table[pid] = (ppid, uids, exe)
    return table


def session_of(pid: int) -> int | None:
    """The session id of ``pid`` (/proc/PID/stat), None when it is gone."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return int(data[data.rindex(b")") + 2:].split()[3])


def supervisor_of(front: int, jitrun: str) -> int:
    """The supervisor of the run whose jitrun process (the one the caller's shell started) is
    ``front``. With cgroup v2 that process is jitrun's front: it starts the supervisor in
    jitrun's own cgroup and only waits for it (crates/jitrun/src/front.rs); without cgroup v2 it
    is the supervisor itself. The watchdog, a child of the supervisor, leads a session of its own."""
    table = _proc_table()
    kids = [p for p, (ppid, _, exe) in table.items()
            if ppid == front and exe == jitrun and session_of(p) not in (p, None)]
    return kids[0] if len(kids) == 1 else front


def descendants(root: int) -> list[int]:
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        for c in children.get(p, []):
            out.append(c)
            todo.append(c)
    return out


def _kill(pids: Iterable[int], sig: int = signal.SIGKILL) -> None:
    for pid in pids:
        if pid in (0, 1, os.getpid()):
            continue
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def kill_processes(uids: Iterable[int] = (), exes: Iterable[str] = (), extra: Iterable[int] = ()) -> int:
    """SIGKILL every process that runs as one of ``uids`` (real/effective/saved/fs) or whose
    executable is one of ``exes`` (exact paths), plus ``extra``; repeat until none is left."""
    uids, exes = set(uids), {str(e) for e in exes}
    killed = 0
    extra = list(extra)
    for _ in range(50):
        victims = [
            pid
            for pid, (_, puids, exe) in _proc_table().items()
            if (puids & uids) or (exe in exes) or (exe.endswith(" (deleted)") and exe[:-10] in exes)
        ]
        victims += [p for p in extra if pid_alive(p)]
        extra = []
        victims = [p for p in victims if p != os.getpid() and pid_alive(p)]
        if not victims:
            return killed
        _kill(victims)
        killed += len(victims)
        time.sleep(0.05)
    raise JitlabError(f"processes survive SIGKILL: {victims}")


# --------------------------------------------------------------------------------------------
# audit


@dataclass
class AuditRecord:
    """One datagram. ``framing`` is ``cee``, ``rfc5424`` or ``unparsed`` (then see ``error``)."""

    raw: bytes
    framing: str = "unparsed"
    pri: int | None = None
    timestamp: str = ""
    hostname: str = ""
    app: str = ""
    procid: str = ""
    msgid: str = ""
    sd: dict[str, dict[str, str]] = field(default_factory=dict)
    msg: str = ""
    json: dict | None = None
    error: str = ""
    sd_id: str = DEFAULT_SD_ID

    @property
    def facility(self) -> int | None:
        return None if self.pri is None else self.pri >> 3

    @property
    def severity(self) -> int | None:
        return None if self.pri is None else self.pri & 7

    @property
    def params(self) -> dict[str, str]:
        """RFC 5424: the parameters of the jitrun SD element (else the first one)."""
        if self.sd_id in self.sd:
            return self.sd[self.sd_id]
        return next(iter(self.sd.values()), {})

    def get(self, dotted: str, default: Any = None) -> Any:
        """A field by its dotted ECS name (``user.target.name``): a nested lookup in the JSON
        for cee, the SD parameter of that name for RFC 5424 (always a string there)."""
        if self.framing == "cee" and self.json is not None:
            cur: Any = self.json
            for part in dotted.split("."):
                if not isinstance(cur, dict) or part not in cur:
                    return default
                cur = cur[part]
            return cur
        if self.framing == "rfc5424":
            return self.params.get(dotted, default)
        return default

    @property
    def action(self) -> str | None:
        a = self.get("event.action")
        if a is None and self.framing == "rfc5424":
            a = self.msgid
        return a

    def pretty(self) -> str:
        if self.json is not None:
            return json.dumps(self.json, indent=2, ensure_ascii=False)
        return _txt(self.raw)

    def __repr__(self) -> str:
        return f"AuditRecord({self.framing}, {self.action!r}, {_txt(self.raw)[:2000]!r})"


CEE_RE = re.compile(
    rb"^<(\d{1,3})>([A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d) ([^\s\[\]:]+)\[(\d+)\]: @cee:(.*)$", re.S
)
RFC5424_TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]\d\d:\d\d)$")


def _parse_sd(s: str) -> tuple[dict[str, dict[str, str]], str]:
    """Parse STRUCTURED-DATA at the start of ``s``; return (elements, rest after it)."""
    if s.startswith("-"):
        return {}, s[1:]
    elements: dict[str, dict[str, str]] = {}
    i = 0
    if not s.startswith("["):
        raise ValueError("STRUCTURED-DATA must be '-' or start with '['")
    while i < len(s) and s[i] == "[":
        i += 1
        m = re.compile(r"[^ =\]\"]{1,32}").match(s, i)
        if not m:
            raise ValueError(f"bad SD-ID at {i}")
        sd_id = m.group(0)
        i = m.end()
        params: dict[str, str] = {}
        while True:
            if s[i] == "]":
                i += 1
                break
            if s[i] != " ":
                raise ValueError(f"expected space or ']' at {i}: {s[i:i+20]!r}")
            i += 1
            m = re.compile(r"[^ =\]\"]{1,32}").match(s, i)
            if not m or s[m.end() : m.end() + 2] != '="':
                raise ValueError(f"bad SD-PARAM at {i}: {s[i:i+40]!r}")
            name = m.group(0)
            i = m.end() + 2
            val = []
            while True:
                c = s[i]
                if c == "\\" and s[i + 1] in '"\\]':
                    val.append(s[i + 1])
                    i += 2
                elif c == "\\":
                    val.append(c)
                    i += 1
                elif c == '"':
                    i += 1
                    break
                elif c == "]":
                    raise ValueError(f"unescaped ']' in PARAM-VALUE of {name}")
                else:
                    val.append(c)
                    i += 1
            params[name] = "".join(val)
        if sd_id in elements:
            raise ValueError(f"duplicate SD-ID {sd_id}")
        elements[sd_id] = params
    return elements, s[i:]


def parse_datagram(data: bytes, sd_id: str = DEFAULT_SD_ID) -> AuditRecord:
    rec = AuditRecord(raw=data, sd_id=sd_id)
    try:
        if data.startswith(b"<") and re.match(rb"^<\d{1,3}>1 ", data):
            text = data.decode("utf-8")
            m = re.match(r"^<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) ", text)
            if not m:
                raise ValueError("bad RFC 5424 header")
            rec.pri = int(m.group(1))
            rec.timestamp, rec.hostname, rec.app, rec.procid, rec.msgid = m.group(2, 3, 4, 5, 6)
            if not RFC5424_TS_RE.match(rec.timestamp):
                raise ValueError(f"bad RFC 5424 TIMESTAMP {rec.timestamp!r}")
            rec.sd, rest = _parse_sd(text[m.end() :])
            if rest and not rest.startswith(" "):
                raise ValueError(f"garbage after STRUCTURED-DATA: {rest[:40]!r}")
            rec.msg = rest[1:].lstrip("\ufeff")
            rec.framing = "rfc5424"
        else:
            m = CEE_RE.match(data)
            if not m:
                raise ValueError("neither '<PRI>Mmm dd hh:mm:ss TAG[PID]: @cee:{...}' nor RFC 5424")
            rec.pri = int(m.group(1))
            rec.timestamp = m.group(2).decode()
            rec.app = m.group(3).decode()
            rec.procid = m.group(4).decode()
            payload = m.group(5).decode("utf-8")
            rec.json = json.loads(payload)
            if not isinstance(rec.json, dict):
                raise ValueError("@cee: payload is not a JSON object")
            rec.msg = payload
            rec.framing = "cee"
    except (ValueError, IndexError, UnicodeDecodeError) as e:
        rec.framing = "unparsed"
        rec.error = str(e)
    return rec


class AuditListener:
    """Binds a unix datagram socket (in a root-only directory) and collects every datagram
    in a background thread (the kernel queues only ~10 datagrams per unix socket)."""

    SYNC = b"\x00jitlab-sync:"

    def __init__(self, path: Path, sd_id: str = DEFAULT_SD_ID):
        self.path = Path(path)
        self.sd_id = sd_id
        self.records: list[AuditRecord] = []
        self._lock = threading.Condition()
        self._synced = 0
        self._stop = False
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> "AuditListener":
        if self.path.exists():
            self.path.unlink()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self._sock.bind(str(self.path))
        self._sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._loop, name="jitlab-audit", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        assert self._sock is not None
        while not self._stop:
            try:
                data = self._sock.recv(1 << 17)
            except socket.timeout:
                continue
            except OSError:
                if self._stop:
                    return
                continue
            with self._lock:
                if data.startswith(self.SYNC):
                    self._synced = max(self._synced, int(data[len(self.SYNC) :]))
                else:
                    self.records.append(parse_datagram(data, self.sd_id))
                self._lock.notify_all()

    def sync(self, timeout: float = 10.0) -> None:
        """Return once every datagram sent before this call has been collected."""
        with self._lock:
            n = self._synced + 1
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(self.SYNC + str(n).encode(), str(self.path))
        with self._lock:
            if not self._lock.wait_for(lambda: self._synced >= n, timeout):
                raise JitlabError("audit listener did not see its own sync datagram")

    def mark(self) -> int:
        with self._lock:
            return len(self.records)

    def since(self, mark: int, action: str | None = None) -> list[AuditRecord]:
        with self._lock:
            recs = self.records[mark:]
        return [r for r in recs if action is None or r.action == action]

    def unparsed(self, mark: int = 0) -> list[AuditRecord]:
        return [r for r in self.since(mark) if r.framing == "unparsed"]

    def close(self) -> None:
        self._stop = True
        if self._thread:
            self._thread.join(timeout=2)
        if self._sock:
            self._sock.close()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


# --------------------------------------------------------------------------------------------
# users and runs


@dataclass
class User:
    name: str
    uid: int
    gid: int
    home: Path
    groups: list[str]

    @property
    def group(self) -> str:
        return grp.getgrgid(self.gid).gr_name

    def gids(self) -> set[int]:
        return set(os.getgrouplist(self.name, self.gid))

    def __str__(self) -> str:
        return self.name


@dataclass
class RunResult:
    argv: list
    returncode: int
    stdout: bytes
    stderr: bytes
    events: list[AuditRecord]
    timed_out: bool = False
    tty: str = ""  # with pty=True: the terminal's name

    @property
    def out(self) -> str:
        return _txt(self.stdout)

    @property
    def err(self) -> str:
        return _txt(self.stderr)

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()

    def event(self, action: str) -> AuditRecord:
        """The one event with this action (fails loudly if there is not exactly one)."""
        found = [e for e in self.events if e.action == action]
        if len(found) != 1:
            raise AssertionError(f"expected exactly one {action} event, got {len(found)}\n{self}")
        return found[0]

    def actions(self) -> list[str | None]:
        return [e.action for e in self.events]

    def __str__(self) -> str:
        ev = "\n".join("    " + _txt(e.raw)[:3000] for e in self.events) or "    (none)"
        return (
            f"jitrun run: {self.argv!r}\n  exit: {self.returncode}{' (TIMED OUT)' if self.timed_out else ''}\n"
            f"  stdout: {self.out[:3000]!r}\n  stderr: {self.err[:3000]!r}\n  audit:\n{ev}"
        )


# The shell script that runs inside the private mount namespace. Test data never reaches the
# shell as code: everything arrives as positional parameters.
NS_SCRIPT = r"""
set -e
conf=$1 state=$2 logs=$3 uid=$4 gid=$5
shift 5
mount --bind "$conf" /etc/jitrun
mount --bind "$state" /var/lib/jitrun
mount --bind "$logs" /var/log/jitrun
exec setpriv --reuid="$uid" --regid="$gid" --init-groups --reset-env -- "$@"
"""

# The same, with extra bind mounts first: after uid and gid come N, then N (source, target) pairs.
NS_SCRIPT_BINDS = r"""
set -e
conf=$1 state=$2 logs=$3 uid=$4 gid=$5 n=$6
shift 6
mount --bind "$conf" /etc/jitrun
mount --bind "$state" /var/lib/jitrun
mount --bind "$logs" /var/log/jitrun
while [ "$n" -gt 0 ]; do
  mount --bind "$1" "$2"
  shift 2
  n=$((n - 1))
done
exec setpriv --reuid="$uid" --regid="$gid" --init-groups --reset-env -- "$@"
"""


class Lab:
    """One throwaway jitrun installation. Use as a context manager (or call setup/close)."""

    def __init__(
        self,
        jitrun: str | os.PathLike | None = None,
        jitctl: str | os.PathLike | None = None,
        host: str = DEFAULT_HOST,
        verbose: bool = False,
    ):
        target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
        self.src_jitrun = Path(jitrun or os.environ.get("JITRUN_BIN") or target / "debug" / "jitrun")
        self.jitctl_bin = Path(jitctl or os.environ.get("JITCTL_BIN") or target / "debug" / "jitctl")
        self.host = host
        self.verbose = verbose
        self.users: list[User] = []
        self.groups: list[str] = []
        self._created_dirs: list[Path] = []
        self.tmp: Path | None = None
        self.install_dir: Path | None = None
        self.jitrun: Path | None = None  # the setuid copy, once installed
        self.audit: AuditListener | None = None
        self.settings: dict[str, Any] = {}
        self._closed = True
        self._prev_handlers: dict[int, Any] = {}
        self._counter = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> "Lab":
        self.setup()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def setup(self) -> "Lab":
        if os.geteuid() != 0:
            raise JitlabError("jitlab needs root (it creates users and installs a setuid binary)")
        for tool in ("unshare", "setpriv", "mount", "useradd", "userdel", "groupadd", "groupdel", "findmnt"):
            if not shutil.which(tool):
                raise JitlabError(f"{tool} not found (make deps installs it)")
        for b in (self.src_jitrun, self.jitctl_bin):
            if not b.is_file():
                raise JitlabError(f"{b} does not exist: run `cargo build --workspace` (or `make build`) first")
        sweep_stale()
        self._closed = False
        _OPEN_LABS.add(id(self))
        atexit.register(self.close)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            try:
                self._prev_handlers[sig] = signal.signal(sig, self._on_signal)
            except ValueError:  # not the main thread
                pass
        try:
            self._setup()
        except BaseException:
            self.close()
            raise
        return self

    def _on_signal(self, signum, frame):
        # Unwind like Ctrl-C, so that pytest's and `with`'s teardown run (and call close()).
        raise KeyboardInterrupt(f"signal {signum}")

    def _setup(self) -> None:
        old_umask = os.umask(0o022)
        try:
            self.tmp = Path(tempfile.mkdtemp(prefix="jitlab-"))
            os.chmod(self.tmp, 0o700)
            (self.tmp / PID_MARKER).write_text(str(os.getpid()))
            self.conf = self.tmp / "conf"
            self.state = self.tmp / "state"
            self.keys = self.tmp / "keys"
            self.runs = self.tmp / "runs"
            self.logs = self.tmp / "log"
            self.sessions = self.logs / "sessions"
            for d, mode in ((self.conf, 0o755), (self.conf / "policy.d", 0o755), (self.conf / "keys.d", 0o755),
                            (self.state, 0o700), (self.keys, 0o700), (self.tmp / "audit", 0o700), (self.runs, 0o700),
                            (self.logs, 0o755), (self.sessions, 0o700)):
                d.mkdir()
                os.chown(d, 0, 0)
                os.chmod(d, mode)

            # the setuid copy and the helpers, on a mount that honours setuid
            if not INSTALL_BASE.exists():
                for p in reversed([INSTALL_BASE, *INSTALL_BASE.parents]):
                    if not p.exists():
                        p.mkdir(mode=0o755)
                        self._created_dirs.append(p)
            self.install_dir = INSTALL_BASE / secrets.token_hex(6)
            self.install_dir.mkdir(mode=0o755)
            (self.install_dir / PID_MARKER).write_text(str(os.getpid()))
            opts = _run(["findmnt", "-n", "-o", "OPTIONS", "-T", self.install_dir]).stdout.decode().strip()
            if "nosuid" in opts.split(","):
                raise JitlabError(f"{self.install_dir} is on a nosuid mount ({opts}); setuid tests cannot work there")
            self.bin_dir = self.install_dir
            self.jitrun = self.install_dir / "jitrun"
            shutil.copyfile(self.src_jitrun, self.jitrun)
            os.chown(self.jitrun, 0, 0)
            os.chmod(self.jitrun, 0o4755)
            st = os.stat(self.jitrun)
            assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o4755

            # mount points for the bind mounts (the bind mounts themselves live only in each run's namespace)
            _ensure_mountpoints()

            self.audit = AuditListener(self.tmp / "audit" / "audit.sock").start()

            # the trusted key pair
            self.secret_key, self.public_key = self.keygen("trusted")
            self.trust_key(self.public_key, "test")

            self.write_settings()
            self.set_policy("")
        finally:
            os.umask(old_umask)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        _OPEN_LABS.discard(id(self))
        errors = []
        try:
            kill_processes(uids=[u.uid for u in self.users], exes=[str(self.jitrun)] if self.jitrun else [])
        except Exception as e:  # noqa: BLE001 - teardown goes on
            errors.append(f"killing processes: {e}")
        for u in reversed(self.users):
            p = _run(["userdel", "-r", u.name], check=False)
            if _user_exists(u.name):
                p = _run(["userdel", "-r", "-f", u.name], check=False)
            if _user_exists(u.name):
                errors.append(f"userdel {u.name}: {_txt(p.stderr)}")
            if u.home.name == u.name and u.home.exists():  # never anything but the throwaway home
                shutil.rmtree(u.home, ignore_errors=True)
            try:
                grp.getgrnam(u.name)
                _run(["groupdel", u.name], check=False)
            except KeyError:
                pass
        self.users.clear()
        for g in reversed(self.groups):
            try:
                grp.getgrnam(g)
            except KeyError:
                continue
            p = _run(["groupdel", g], check=False)
            if p.returncode != 0:
                errors.append(f"groupdel {g}: {_txt(p.stderr)}")
        self.groups.clear()
        if self.audit:
            self.audit.close()
        if self.install_dir and self.install_dir.exists():
            shutil.rmtree(self.install_dir, ignore_errors=True)
        if self.tmp and self.tmp.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)
        if not _live_labs() and not _OPEN_LABS:
            errors += _remove_created_mountpoints()
        if INSTALL_BASE.exists() and not any(INSTALL_BASE.iterdir()):
            try:
                INSTALL_BASE.rmdir()
            except OSError:
                pass
        for d in reversed(self._created_dirs):
            try:
                d.rmdir()
            except OSError:
                pass
        for sig, h in self._prev_handlers.items():
            try:
                signal.signal(sig, h)
            except (ValueError, TypeError):
                pass
        try:
            atexit.unregister(self.close)
        except Exception:  # noqa: BLE001
            pass
        if errors:
            print("jitlab teardown problems:\n  " + "\n  ".join(errors), file=sys.stderr)

    # -- users -------------------------------------------------------------------------------

    def _name(self, prefix: str) -> str:
        alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
        for _ in range(100):
            name = prefix + "".join(secrets.choice(alphabet) for _ in range(6))
            if not _user_exists(name) and not _group_exists(name):
                return name
        raise JitlabError("could not find a free name")

    def add_group(self, label: str = "") -> str:
        """A throwaway group ``jtg`` + ``label`` + a random suffix."""
        name = self._name("jtg" + label)
        _run(["groupadd", name])
        self.groups.append(name)
        with open(self.install_dir / GROUPS_MARKER, "a") as f:
            f.write(name + "\n")
        return name

    def add_user(self, groups: Sequence[str] = (), shell: str = "/bin/sh", label: str = "") -> User:
        """A throwaway user ``jt`` + ``label`` + a random suffix (``label``: lower-case letters, for
        names a reader can follow, e.g. in the demo), with its own group and home."""
        name = self._name("jt" + label)
        cmd = ["useradd", "-m", "-U", "-s", shell, "-c", f"{GECOS_TAG}{os.getpid()}"]
        if groups:
            cmd += ["-G", ",".join(groups)]
        _run(cmd + [name])
        pw = pwd.getpwnam(name)
        u = User(name=name, uid=pw.pw_uid, gid=pw.pw_gid, home=Path(pw.pw_dir), groups=list(groups))
        self.users.append(u)
        return u

    def user_file(self, user: User, relpath: str, content: bytes | str, mode: int = 0o600) -> Path:
        """Write a file under the user's home, owned by the user (parents too)."""
        path = user.home / relpath
        self._user_dirs(user, path.parent)
        data = content.encode() if isinstance(content, str) else content
        tmp = path.with_name(path.name + ".jitlab-tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        os.chown(tmp, user.uid, user.gid)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        return path

    def _user_dirs(self, user: User, d: Path) -> None:
        d = Path(d)
        rel = d.relative_to(user.home)
        cur = user.home
        for part in rel.parts:
            cur = cur / part
            if not cur.exists():
                cur.mkdir(mode=0o700)
                os.chown(cur, user.uid, user.gid)

    # -- configuration ------------------------------------------------------------------------

    def _write_conf(self, path: Path, text: str) -> None:
        """Write a trusted file: root-owned 0644, atomically."""
        tmp = path.with_name("." + path.name + ".tmp")
        tmp.write_text(text)
        os.chown(tmp, 0, 0)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)

    def write_settings(self, text: str | None = None, **overrides) -> None:
        """(Re)write jitrun.toml. Without ``text``: host, secure_path, kill_grace and the audit
        socket of this lab, with keyword overrides (``framing=``, ``fail_closed=``, ``secure_path=``,
        ``kill_grace=``, ``use_pty=``, ``clock_skew=``, ``host=``, ``sd_id=``, ``pam_service=``, ``auth_cache=``;
        None removes a key)."""
        if text is None:
            s = {
                "host": self.host,
                "secure_path": DEFAULT_SECURE_PATH,
                "kill_grace": "1s",
                "clock_skew": "60s",
                "framing": "cee",
                "socket": str(self.audit.path) if self.audit else "/dev/log",
                "fail_closed": True,
                "sd_id": DEFAULT_SD_ID,
            }
            s.update(overrides)
            self.settings = s
            if self.audit:
                self.audit.sd_id = s.get("sd_id") or DEFAULT_SD_ID
            top = [k for k in ("host", "clock_skew", "secure_path", "kill_grace", "use_pty") if s.get(k) is not None]
            aud = [k for k in ("framing", "socket", "fail_closed", "sd_id") if s.get(k) is not None]
            lines = [f"{k} = {toml_value(s[k])}" for k in top] + ["", "[audit]"]
            lines += [f"{k} = {toml_value(s[k])}" for k in aud]
            pam = [(k, s[f]) for k, f in (("service", "pam_service"), ("auth_cache", "auth_cache"))
                   if s.get(f) is not None]
            if pam:
                lines += ["", "[pam]"] + [f"{k} = {toml_value(v)}" for k, v in pam]
            text = "\n".join(lines) + "\n"
        self._write_conf(self.conf / "jitrun.toml", text)

    def set_policy(self, text: str, dropins: dict[str, str] | None = None) -> None:
        """Replace policy.toml; with ``dropins``, also replace every file in policy.d/."""
        self._write_conf(self.conf / "policy.toml", text)
        if dropins is not None:
            for f in (self.conf / "policy.d").iterdir():
                f.unlink()
            for name, t in dropins.items():
                self._write_conf(self.conf / "policy.d" / name, t)

    @property
    def conf_files(self) -> Path:
        return self.conf

    # -- binaries and helpers ----------------------------------------------------------------

    def compile_helper(self, name: str, source: str | Path | None = None, setuid: bool = False) -> Path:
        """Compile a C helper (default: helpers/<name>.c, with - as _) into the lab's bin dir,
        root-owned, 0755 (or 4755 with ``setuid``)."""
        src = Path(source) if source else HELPERS_SRC / (name.replace("-", "_") + ".c")
        out = self.bin_dir / name
        _run(["gcc", "-Wall", "-O2", "-o", out, src])
        os.chown(out, 0, 0)
        os.chmod(out, 0o4755 if setuid else 0o755)
        return out

    def install_file(self, name: str, content: bytes, mode: int) -> Path:
        out = self.bin_dir / name
        out.write_bytes(content)
        os.chown(out, 0, 0)
        os.chmod(out, mode)
        return out

    # -- keys and grants -----------------------------------------------------------------------

    def jitctl(self, *args: str | os.PathLike, check: bool = True, input: bytes | None = None) -> subprocess.CompletedProcess:
        kw = {"input": input} if input is not None else {}
        if input is not None:
            kw["stdin"] = None
        return _run([self.jitctl_bin, *args], check=check, **kw)

    def jitctl_as_root(self, *args: str | os.PathLike, timeout: float = 60) -> subprocess.CompletedProcess:
        """``jitctl ARGS`` as root in a private mount namespace that has the lab's configuration
        state and logs at their real paths (/etc/jitrun, /var/lib/jitrun, /var/log/jitrun): what an administrator's
        jitctl sees on a host (``jitctl policy compile``). Not checked: the caller looks."""
        cmd = ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", NS_SCRIPT, "jitlab-ns",
               str(self.conf), str(self.state), str(self.logs), "0", "0", str(self.jitctl_bin), *map(str, args)]
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)

    def keygen(self, name: str) -> tuple[Path, Path]:
        """A new key pair via ``jitctl keygen`` (secret stays in the lab's root-only key dir)."""
        sec, pub = self.keys / f"{name}.secret.paserk", self.keys / f"{name}.public.paserk"
        self.jitctl("keygen", "--secret", sec, "--public", pub)
        for p, prefix in ((sec, "k4.secret."), (pub, "k4.public.")):
            if not p.read_text().strip().startswith(prefix):
                raise JitlabError(f"jitctl keygen wrote {p} without a {prefix} PASERK")
        return sec, pub

    def trust_key(self, public: Path, name: str) -> Path:
        dest = self.conf / "keys.d" / f"{name}.paserk"
        self._write_conf(dest, Path(public).read_text())
        return dest

    def mint(
        self,
        user: User | str,
        rule: str,
        ttl: str = "5m",
        hosts: Sequence[str] | None = None,
        key: Path | None = None,
        not_before: str | None = None,
        caps: Sequence[str] | None = None,
        cmd: str | None = None,
        run_as: str | None = None,
        approvers: Sequence[str] = (),
        ticket: str | None = None,
        reason: str | None = None,
        max_uses: int | None = None,
        break_glass: bool = False,
        uid: int | None = None,
        sealed: bool = False,
    ) -> str:
        """A grant from ``jitctl grant mint`` (signed with the trusted key unless ``key``)."""
        args: list[str | os.PathLike] = ["grant", "mint", "--key", key or self.secret_key,
                                         "--user", str(user), "--rule", rule, "--ttl", ttl]
        for h in hosts or [self.host]:
            args += ["--host", h]
        if not_before is not None:
            args += ["--not-before", not_before]
        if caps is not None:
            args += ["--caps", ",".join(caps)]
        if cmd is not None:
            args += ["--cmd", cmd]
        if run_as is not None:
            args += ["--run-as", run_as]
        for a in approvers:
            args += ["--approver", a]
        if ticket is not None:
            args += ["--ticket", ticket]
        if reason is not None:
            args += ["--reason", reason]
        if max_uses is not None:
            args += ["--max-uses", str(max_uses)]
        if break_glass:
            args.append("--break-glass")
        if sealed:
            args.append("--sealed")
        if uid is not None:
            args += ["--uid", str(uid)]
        token = self.jitctl(*args).stdout.decode().strip()
        if not token.startswith("v4.public."):
            raise JitlabError(f"jitctl grant mint printed no v4.public token: {token[:200]!r}")
        return token

    def claims(self, user: User | str, rule: str, ttl: float = 300, start: float = 0, **extra) -> dict:
        """A claims dict as the broker would issue it: iat = nbf = now + start, exp = nbf + ttl
        (seconds). ``extra`` adds or replaces claims (None removes one)."""
        now = datetime.now(timezone.utc).replace(microsecond=0)
        nbf = now + timedelta(seconds=start)
        c: dict[str, Any] = {
            "iss": "jitlab",
            "sub": str(user),
            "hosts": [self.host],
            "jti": uuid7(),
            "iat": _rfc3339(nbf if start < 0 else now),
            "nbf": _rfc3339(nbf),
            "exp": _rfc3339(nbf + timedelta(seconds=ttl)),
            "rule": rule,
        }
        for k, v in extra.items():
            if v is None:
                c.pop(k, None)
            else:
                c[k] = v
        return c

    def mint_with_pyseto(
        self,
        claims: dict | bytes,
        implicit_assertion: bytes = GRANT_IA,
        footer: bytes | str | dict | None = None,
        secret: Path | None = None,
        public: Path | None = None,
    ) -> str:
        """Sign with pyseto, an independent PASETO implementation. ``footer`` None means
        ``{"kid": "<k4.pid of the key>"}`` (spaced the way Python's json does by default);
        bytes/str are used verbatim; a dict is json-dumped."""
        import pyseto  # installed by `make deps`

        secret = Path(secret or self.secret_key)
        public = Path(public or (self.public_key if secret == Path(self.secret_key) else
                                 Path(str(secret).replace(".secret.", ".public."))))
        sk = pyseto.Key.from_paserk(secret.read_text().strip())
        pk = pyseto.Key.from_paserk(public.read_text().strip())
        if footer is None:
            footer = json.dumps({"kid": pk.to_paserk_id()})
        elif isinstance(footer, dict):
            footer = json.dumps(footer)
        if isinstance(footer, str):
            footer = footer.encode()
        payload = claims if isinstance(claims, bytes) else json.dumps(claims).encode()
        token = pyseto.encode(sk, payload, footer=footer, implicit_assertion=implicit_assertion)
        return token.decode()

    def kid(self, public: Path | None = None) -> str:
        import pyseto

        return pyseto.Key.from_paserk(Path(public or self.public_key).read_text().strip()).to_paserk_id()

    # -- host key and revocation list (docs/broker.md) ----------------------------------------

    def install_host_key(self, mode: int = 0o600) -> tuple[Path, Path]:
        """A new host attestation key pair; the secret goes to /etc/jitrun/host.key (root,
        ``mode``). Returns (secret, public) in the lab's key dir."""
        sec, pub = self.keygen(f"host-{secrets.token_hex(3)}")
        dest = self.conf / "host.key"
        tmp = dest.with_name(".host.key.tmp")
        tmp.write_bytes(sec.read_bytes())
        os.chown(tmp, 0, 0)
        os.chmod(tmp, mode)
        os.replace(tmp, dest)
        return sec, pub

    def revocation_entry(self, token: str, reason: str = "revoked by a test", at: datetime | None = None) -> dict:
        """The list entry revoking ``token`` (its jti and exp)."""
        claims = decode_token(token)[0]
        return {"jti": claims["jti"], "exp": claims["exp"],
                "at": _rfc3339(at or datetime.now(timezone.utc)), "reason": reason}

    def write_revocations(self, revoked: Sequence[dict] = (), seq: int = 1, iat: datetime | None = None,
                          iss: str = "jitlab", secret: Path | None = None, raw: bytes | None = None) -> Path:
        """Sign a revocation list (pyseto, the revocation list's implicit assertion) and write it,
        root 0644 and atomically (like ``jitctl revocations sync``), to /var/lib/jitrun/revocations.
        ``raw`` writes those bytes instead."""
        if raw is None:
            payload = {"iss": iss, "iat": _rfc3339(iat or datetime.now(timezone.utc)), "seq": seq,
                       "revoked": list(revoked)}
            raw = (self.mint_with_pyseto(payload, implicit_assertion=REVOCATIONS_IA, secret=secret) + "\n").encode()
        dest = self.state / "revocations"
        tmp = self.state / ".revocations.jitlab-tmp"
        tmp.write_bytes(raw)
        os.chown(tmp, 0, 0)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
        return dest

    def clear_revocations(self) -> None:
        (self.state / "revocations").unlink(missing_ok=True)

    def grant_dir(self, user: User) -> Path:
        return user.home / ".local" / "state" / "jitrun" / "grants"

    def store_grant(self, user: User, token: str, name: str | None = None) -> Path:
        """Put a token into the user's grant store (owned by the user, 0600)."""
        d = self.grant_dir(user)
        self._user_dirs(user, d)
        self._counter += 1
        return self.user_file(user, str((d / (name or f"grant-{self._counter}")).relative_to(user.home)), token + "\n")

    def clear_grants(self, user: User) -> None:
        d = self.grant_dir(user)
        if d.exists():
            for f in d.iterdir():
                if f.is_dir() and not f.is_symlink():
                    shutil.rmtree(f)
                else:
                    f.unlink()

    # -- running jitrun ------------------------------------------------------------------------

    def run_as_user(
        self,
        user: User,
        argv: Sequence[str | bytes] | None,
        *,
        options: Sequence[str | bytes] = (),
        grant: str | Path | None = None,
        stdin: bytes | str | None = None,
        env: dict[str, str] | None = None,
        pty: bool = False,
        timeout: float = 60,
        cwd: str | Path | None = None,
        limits: dict[str, str] | None = None,
        prefix: Sequence[str | bytes] = (),
        binds: Sequence[tuple[str | os.PathLike, str | os.PathLike]] = (),
    ) -> RunResult:
        """Run ``jitrun [--grant G] OPTIONS -- ARGV`` as ``user`` in a private mount namespace.

        ``grant``: None (no --grant: the store is used), ``"-"`` (``--grant -``; give the token as
        ``stdin``), a token string (written to a user-owned file, passed as ``--grant FILE``), or a
        Path (passed as is). ``argv`` None leaves out ``--`` (for ``-l``, ``--version``...).
        ``env`` adds variables to the user's clean environment right before jitrun starts.
        ``limits`` sets resource limits as the user right before jitrun starts, with prlimit(1):
        ``{"fsize": "1:1", "core": "1000:3000"}`` (soft:hard).
        ``prefix``: a wrapper run as the user right before jitrun (after ``limits``), which must
        exec its arguments (``[jitrun, ARGS...]``); e.g. one that burns CPU time first.
        ``binds``: further bind mounts in the run's namespace (see :meth:`ns_command`), e.g. a
        private ``/etc/pam.d``.
        """
        args: list[str | bytes] = []
        if grant is not None:
            if isinstance(grant, Path):
                args += ["--grant", str(grant)]
            elif grant == "-":
                args += ["--grant", "-"]
            else:
                self._counter += 1
                path = self.user_file(user, f".jitlab/grant-{self._counter}", grant + "\n")
                args += ["--grant", str(path)]
        args += list(options)
        if argv is not None:
            args += ["--", *argv]
        return self.run_jitrun(user, args, stdin=stdin, env=env, pty=pty, timeout=timeout, cwd=cwd, limits=limits,
                               prefix=prefix, binds=binds)

    def run_jitrun(
        self,
        user: User,
        args: Sequence[str | bytes],
        *,
        stdin: bytes | str | None = None,
        env: dict[str, str] | None = None,
        pty: bool = False,
        timeout: float = 60,
        cwd: str | Path | None = None,
        limits: dict[str, str] | None = None,
        prefix: Sequence[str | bytes] = (),
        binds: Sequence[tuple[str | os.PathLike, str | os.PathLike]] = (),
    ) -> RunResult:
        """Run jitrun with exactly ``args`` (after argv[0]) as ``user``; collect its audit events."""
        cmd = self.ns_command(user, [], binds=binds)
        if env:
            cmd += ["/usr/bin/env", "--", *[f"{k}={v}" for k, v in env.items()]]
        if limits:
            cmd += ["/usr/bin/prlimit", *[f"--{k}={v}" for k, v in limits.items()], "--"]
        cmd += [*prefix, str(self.jitrun), *args]
        if isinstance(stdin, str):
            stdin = stdin.encode()
        mark = self.audit.mark() if self.audit else 0
        base_env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
        if os.environ.get("TERM"):
            base_env["TERM"] = os.environ["TERM"]
        cwd = cwd or user.home
        tty = ""
        if pty:
            rc, out, timed_out, tty = self._run_pty(cmd, stdin, timeout, base_env, cwd, user)
            err = b""
        else:
            p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 env=base_env, cwd=cwd, start_new_session=True)
            timed_out = False
            try:
                out, err = p.communicate(stdin or b"", timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                self._kill_run(p.pid, user)
                out, err = p.communicate()
            rc = p.returncode
        events = []
        if self.audit:
            self.audit.sync()
            events = self.audit.since(mark)
        res = RunResult(argv=list(args), returncode=rc, stdout=out, stderr=err, events=events,
                        timed_out=timed_out, tty=tty)
        if self.verbose:
            print(res, file=sys.stderr)
        return res

    def ns_command(self, user: User, argv: Sequence[str | bytes],
                   binds: Sequence[tuple[str | os.PathLike, str | os.PathLike]] = ()) -> list[str | bytes]:
        """The command line that runs ``argv`` as ``user`` inside a private mount namespace with
        the lab's configuration and state bound over /etc/jitrun and /var/lib/jitrun.

        ``binds``: further ``(source, target)`` bind mounts made in that namespace before
        ``argv`` starts (each target must exist on the host: a file or directory to cover)."""
        _ensure_mountpoints()  # another process (a package purge) may have removed them since
        if not binds:
            return ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", NS_SCRIPT, "jitlab-ns",
                    str(self.conf), str(self.state), str(self.logs), str(user.uid), str(user.gid), *argv]
        pairs = [os.fspath(x) for b in binds for x in b]
        return ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", NS_SCRIPT_BINDS, "jitlab-ns",
                str(self.conf), str(self.state), str(self.logs), str(user.uid), str(user.gid), str(len(binds)),
                *pairs, *argv]

    def spawn_as_user(
        self,
        user: User,
        argv: Sequence[str | bytes],
        *,
        pty: bool = False,
        stdin: Any = subprocess.DEVNULL,
        stdout: Any = None,
        stderr: Any = None,
        cwd: str | Path | None = None,
        binds: Sequence[tuple[str | os.PathLike, str | os.PathLike]] = (),
    ) -> "Spawned":
        """Start ``argv`` (e.g. ``[str(lab.jitrun), ...]`` or a shell that runs it) as ``user`` in
        the lab's mount namespace and return at once, so the test can act while it runs.

        With ``pty``: in a new session whose controlling terminal is a fresh pty (``Spawned.send``
        writes to its master, e.g. ``b"\\x1a"`` for Ctrl-Z); everything written to the terminal
        is collected in ``Spawned.output``. Without: in a new session; ``stdout``/``stderr``
        default to one pipe collected in ``Spawned.output`` (pass a file or fd to override).
        Use as a context manager: leaving it kills what is left of the run.
        ``binds``: further bind mounts in the run's namespace (see :meth:`ns_command`)."""
        cmd = self.ns_command(user, argv, binds=binds)
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
        if os.environ.get("TERM"):
            env["TERM"] = os.environ["TERM"]
        mark = self.audit.mark() if self.audit else 0
        cwd = cwd or user.home
        if pty:
            master, slave = _openpty()
            try:
                p = subprocess.Popen(["setsid", "-c", "-w", "--", *cmd], stdin=slave, stdout=slave, stderr=slave,
                                     env=env, cwd=cwd, close_fds=True)
            finally:
                os.close(slave)
            return Spawned(self, user, p, master, mark, master)
        collect = stdout is None
        p = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE if collect else stdout,
                             stderr=(subprocess.STDOUT if stderr is None else stderr) if collect else
                             (subprocess.DEVNULL if stderr is None else stderr),
                             env=env, cwd=cwd, start_new_session=True)
        return Spawned(self, user, p, None, mark, p.stdout.fileno() if collect else None)

    def run_without_jitrun(self, user: User, argv: Sequence[str | bytes], timeout: float = 60) -> RunResult:
        """Run a command as ``user`` directly (no jitrun), for comparison."""
        cmd = ["setpriv", f"--reuid={user.uid}", f"--regid={user.gid}", "--init-groups", "--reset-env", "--", *argv]
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, cwd=user.home)
        return RunResult(argv=list(argv), returncode=p.returncode, stdout=p.stdout, stderr=p.stderr, events=[])

    def _kill_run(self, pid: int, user: User) -> None:
        """End a run that is still going. The command first (the user's processes and every
        process of the tree that is not jitrun itself), so that jitrun's supervisor does what it
        does when a command ends (removes the run's cgroup, logs elevate.end, tells its watchdog)
        and exits; only what is left after a few seconds is killed outright. Killing supervisor and
        watchdog together at once (which only root can) would leave the run's empty cgroup behind."""
        table = _proc_table()
        jitrun_exes = {str(self.jitrun), f"{self.jitrun} (deleted)"}
        commands = [p for p in descendants(pid) if p in table and table[p][2] not in jitrun_exes]
        kill_processes(uids=[user.uid], extra=commands)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(pid_alive(p) for p in [pid, *descendants(pid)]):
            time.sleep(0.05)
        kill_processes(uids=[user.uid], extra=[pid, *descendants(pid)])

    def _run_pty(self, cmd, stdin, timeout, env, cwd, user) -> tuple[int, bytes, bool, str]:
        master, slave = pty.openpty()
        tty = os.ttyname(slave)
        # the slave becomes the controlling terminal of a new session (setsid -c)
        p = subprocess.Popen(["setsid", "-c", "-w", "--", *cmd], stdin=slave, stdout=slave, stderr=slave,
                             env=env, cwd=cwd, close_fds=True)
        os.close(slave)
        if stdin:
            os.write(master, stdin)
        out = bytearray()
        deadline = time.monotonic() + timeout
        timed_out = False
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                self._kill_run(p.pid, user)
                break
            r, _, _ = select.select([master], [], [], min(left, 0.2))
            if r:
                try:
                    chunk = os.read(master, 4096)
                except OSError as e:
                    if e.errno == errno.EIO:  # every slave fd closed
                        break
                    raise
                if not chunk:
                    break
                out += chunk
            elif p.poll() is not None:
                break  # the process is gone and nothing more is pending
        rc = p.wait(timeout=30)
        os.close(master)
        return rc, bytes(out), timed_out, tty

    def kill_user_processes(self) -> int:
        return kill_processes(uids=[u.uid for u in self.users], exes=[str(self.jitrun)])


class Spawned:
    """A run started by :meth:`Lab.spawn_as_user`."""

    def __init__(self, lab: Lab, user: User, popen: subprocess.Popen, master: int | None, mark: int,
                 read_fd: int | None):
        self.lab, self.user, self.popen, self.master, self.mark = lab, user, popen, master, mark
        self.pid = popen.pid
        self._out = bytearray()
        self._cond = threading.Condition()
        self._reader = None
        if read_fd is not None:
            self._reader = threading.Thread(target=self._read, args=(read_fd,), daemon=True)
            self._reader.start()

    def _read(self, fd: int) -> None:
        while True:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: every slave fd closed; EBADF: closed by close()
                chunk = b""
            with self._cond:
                if not chunk:
                    self._cond.notify_all()
                    return
                self._out += chunk
                self._cond.notify_all()

    @property
    def output(self) -> bytes:
        with self._cond:
            return bytes(self._out)

    def wait_output(self, needle: bytes, timeout: float = 30) -> bool:
        """Wait until ``needle`` appears in the collected output."""
        with self._cond:
            return self._cond.wait_for(lambda: needle in self._out, timeout)

    def send(self, data: bytes) -> None:
        """Type ``data`` on the terminal (pty runs only)."""
        if self.master is None:
            raise JitlabError("send() needs a run started with pty=True")
        os.write(self.master, data)

    def wait(self, timeout: float = 60) -> int | None:
        """The exit status (Popen style: -N for signal N), or None if still running after ``timeout``."""
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def events(self) -> list[AuditRecord]:
        """Audit records received since the start."""
        if not self.lab.audit:
            return []
        self.lab.audit.sync()
        return self.lab.audit.since(self.mark)

    def processes(self) -> list[int]:
        """The spawned process and its live descendants."""
        return [p for p in [self.pid, *descendants(self.pid)] if pid_alive(p)]

    def jitrun_pids(self) -> list[int]:
        """The lab's jitrun processes in this run's tree (the front, the supervisor, the
        watchdog; see :func:`supervisor_of`)."""
        table = _proc_table()
        return [p for p in self.processes() if table.get(p, (0, set(), ""))[2] == str(self.lab.jitrun)]

    def front_pid(self) -> int | None:
        """The jitrun process the run's shell (or ``self.pid`` itself) started: the one whose
        parent is not jitrun. None before jitrun runs (or after it ended)."""
        table = _proc_table()
        jitrun = str(self.lab.jitrun)
        fronts = [p for p in self.jitrun_pids() if p in table and table.get(table[p][0], (0, set(), ""))[2] != jitrun]
        if len(fronts) > 1:
            raise JitlabError(f"more than one jitrun front in the run's tree: {fronts}")
        return fronts[0] if fronts else None

    def supervisor_pid(self) -> int:
        """The run's supervisor (:func:`supervisor_of`; ``self.pid`` before jitrun runs)."""
        front = self.front_pid()
        return supervisor_of(front, str(self.lab.jitrun)) if front else self.pid

    def watchdog_pids(self) -> list[int]:
        """The run's watchdog (a list: none before it starts)."""
        front = self.front_pid()
        return [p for p in self.jitrun_pids() if p != front and session_of(p) == p] if front else []

    def close(self) -> None:
        """Kill what is left of the run (the tree, and the user's processes) and stop collecting."""
        if self.popen.poll() is None or descendants(self.pid):
            self.lab._kill_run(self.pid, self.user)
        try:
            self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        if self._reader is not None:
            self._reader.join(timeout=5)
        if self.master is not None:
            os.close(self.master)
            self.master = None
        if self.popen.stdout:
            self.popen.stdout.close()

    def __enter__(self) -> "Spawned":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __str__(self) -> str:
        ev = "\n".join("    " + _txt(e.raw)[:3000] for e in self.events()) or "    (none)"
        return (f"spawned run pid {self.pid}, exit {self.popen.poll()}\n  output: {_txt(self.output)[:3000]!r}\n"
                f"  audit:\n{ev}")


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(f"no TOML for {v!r}")


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def _marker_pid(d: Path) -> int | None:
    try:
        return int((d / PID_MARKER).read_text().strip())
    except (OSError, ValueError):
        return None


def _read_lines(p: Path) -> list[str]:
    try:
        return [x for x in p.read_text().splitlines() if x]
    except OSError:
        return []


def _ensure_mountpoints() -> None:
    """Create the mount points the runs bind over (recorded, so that the last lab removes them)."""
    for mp in MOUNT_POINTS:
        if not mp.exists():
            with open(MOUNTPOINTS_MARKER, "a") as f:
                f.write(f"{mp}\n")
            mp.mkdir(mode=0o755, exist_ok=True)


def _remove_created_mountpoints() -> list[str]:
    """rmdir the mount points jitlab created (when empty); returns problems."""
    problems = []
    for mp in _read_lines(MOUNTPOINTS_MARKER):
        try:
            Path(mp).rmdir()
        except FileNotFoundError:
            pass
        except OSError as e:
            problems.append(f"rmdir {mp}: {e}")
    try:
        MOUNTPOINTS_MARKER.unlink()
    except FileNotFoundError:
        pass
    return problems


# Labs of this process that are set up and not closed yet (the mount points they share are
# removed by the last one to close).
_OPEN_LABS: set[int] = set()


def _live_labs() -> bool:
    """Whether another live process owns a jitlab install dir."""
    if not INSTALL_BASE.exists():
        return False
    for d in INSTALL_BASE.iterdir():
        pid = _marker_pid(d) if d.is_dir() else None
        if pid and pid != os.getpid() and pid_alive(pid):
            return True
    return False


def sweep_stale() -> list[str]:
    """Remove what killed jitlab runs left behind: users tagged by us whose creating process is
    gone (their processes killed first), install dirs and temp dirs of dead owners."""
    removed = []
    for pw in pwd.getpwall():
        if not pw.pw_gecos.startswith(GECOS_TAG) or not pw.pw_name.startswith("jt"):
            continue
        try:
            owner = int(pw.pw_gecos[len(GECOS_TAG):])
        except ValueError:
            continue
        if owner == os.getpid() or pid_alive(owner):
            continue
        kill_processes(uids=[pw.pw_uid])
        _run(["userdel", "-r", "-f", pw.pw_name], check=False)
        removed.append(f"user {pw.pw_name}")
    if INSTALL_BASE.exists():
        for d in INSTALL_BASE.iterdir():
            pid = _marker_pid(d) if d.is_dir() else None
            if pid is not None and pid != os.getpid() and not pid_alive(pid):
                kill_processes(exes=[str(d / "jitrun")])
                for g in _read_lines(d / GROUPS_MARKER):
                    if _group_exists(g):
                        _run(["groupdel", g], check=False)
                        removed.append(f"group {g}")
                shutil.rmtree(d, ignore_errors=True)
                removed.append(str(d))
        if not _live_labs():
            left = _read_lines(MOUNTPOINTS_MARKER)
            if not _remove_created_mountpoints():
                removed += left
        if not any(INSTALL_BASE.iterdir()):
            try:
                INSTALL_BASE.rmdir()
            except OSError:
                pass
    tmp = Path(tempfile.gettempdir())
    for d in tmp.glob("jitlab-*"):
        pid = _marker_pid(d)
        if pid is not None and pid != os.getpid() and not pid_alive(pid):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(str(d))
    return removed


if __name__ == "__main__":
    # `python3 tests/harness/jitlab.py sweep` removes leftovers of killed runs.
    if sys.argv[1:] == ["sweep"]:
        for r in sweep_stale():
            print("removed", r)
    else:
        print(__doc__)
