"""A private rsyslogd for the audit tests, configured as docs/audit.md documents (or with one of
the drop-ins of packaging/siem/rsyslog/), plus the helpers that turn what it writes back into
audit events checked against docs/audit.schema.json.

:class:`Rsyslog` runs ``rsyslogd -n -f CONF -i PIDFILE`` (Debian package ``rsyslog``; ``make deps``
installs it) with its own work directory, listening on a private imuxsock socket
(``UseSpecialParser="off"``, and ``Annotate``/``ParseTrusted`` on so that rsyslog knows each
sender's uid), never on /dev/log. Its configuration is the block of docs/audit.md ("rsyslog:
each framing to JSON"), taken from the document itself with only these changes: the private
socket instead of the system socket, the output files in the work directory, a second file with
each message exactly as received (``%rawmsg%``), the broker's uid (``broker_uid``), and a sync
marker (a ``jitrun`` message sent by root) routed through the same actions, so that
:meth:`sync` knows when everything sent before it has been written.

``Rsyslog(snippet=PATH)`` runs a packaging drop-in instead, as its comments tell an admin to
install it (the system socket's settings on a private input; the drop-in included unchanged
but for its paths and the broker's uid), followed by a catch-all action standing in for the
host's other rules (``rest_file``). Typical use::

    with Rsyslog() as rs:
        lab.write_settings(socket=str(rs.socket), framing="rfc5424")
        lab.run_as_user(...)
        for obj in rs.read_events(): ...        # what rsyslog wrote, in arrival order
        rs.stop()                               # the socket is gone: jitrun cannot log
        rs.start()                              # same socket path again; files are appended to

Needs root only to be reachable by the setuid jitrun (the directory is root-only, 0700, unless
``open_to_users``: then anyone may send to the socket, as to /dev/log).
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
AUDIT_DOC = REPO / "docs" / "audit.md"
SCHEMA_FILE = REPO / "docs" / "audit.schema.json"
DEFAULT_SD_ID = "jitrun@32473"
SYNC_TAG = "jitrun"  # the sync marker is a jitrun message from root: it passes the sender check
SYNC_ACTION = "jitlab.sync"  # the rfc5424 drop-in converts only events: the marker is one
BROKER_UID_LINE = "set $.jitrun_broker_uid = -1;"
# imuxsock settings every configuration asks for, on the private socket
INPUT_SETTINGS = 'UseSpecialParser="off" Annotate="on" ParseTrusted="on" RateLimit.Interval="0"'
PID_MARKER = ".jitlab-pid"  # as jitlab: sweep_stale() removes the directory of a dead owner


def find_rsyslogd() -> str | None:
    found = shutil.which("rsyslogd")
    if found:
        return found
    return "/usr/sbin/rsyslogd" if os.path.exists("/usr/sbin/rsyslogd") else None


class RsyslogError(RuntimeError):
    pass


def documented_config() -> str:
    """The rsyslog configuration block of docs/audit.md."""
    doc = AUDIT_DOC.read_text()
    m = re.search(r"```\n(# /etc/rsyslog.d/30-jitrun.conf\n.*?)```", doc, re.S)
    if not m:
        raise RsyslogError("docs/audit.md has no rsyslog configuration block")
    return m.group(1)


def _replace_once(text: str, old: str, new: str) -> str:
    if text.count(old) != 1:
        raise RsyslogError(f"docs/audit.md's rsyslog block no longer has exactly one {old!r}")
    return text.replace(old, new)


class Rsyslog:
    """A private rsyslogd; see the module documentation."""

    def __init__(self, directory: str | os.PathLike | None = None, sd_id: str = DEFAULT_SD_ID,
                 snippet: str | os.PathLike | None = None, broker_uid: int = -1, open_to_users: bool = False,
                 socket_path: str | os.PathLike | None = None):
        self.rsyslogd = find_rsyslogd()
        if self.rsyslogd is None:
            raise RsyslogError("rsyslogd is not installed (make deps; Debian package rsyslog)")
        self._own_dir = directory is None
        self.dir = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="jitlab-rsyslog-"))
        # open_to_users: everyone may reach the socket, as everyone may reach /dev/log (0711:
        # traverse, not list); else root only
        os.chmod(self.dir, 0o711 if open_to_users else 0o700)
        (self.dir / PID_MARKER).write_text(str(os.getpid()))
        self.sd_id = sd_id
        self.snippet = Path(snippet) if snippet else None
        self.broker_uid = broker_uid
        # socket_path: listen there instead (e.g. where a private journald forwards to)
        self.socket = Path(socket_path) if socket_path else self.dir / "log.sock"
        self.events_file = self.dir / "audit.json"  # one JSON object per line ($!all-json)
        self.forged_file = self.dir / "forged.json"  # messages that only claim to be jitrun's
        self.raw_file = self.dir / "raw.log"  # each message as received (%rawmsg%); docs config only
        self.rest_file = self.dir / "rest.log"  # what a drop-in left to the host's other rules
        self.conf_file = self.dir / "rsyslog.conf"
        self.pid_file = self.dir / "rsyslogd.pid"
        self.log_file = self.dir / "rsyslogd.log"  # rsyslogd's own stdout/stderr
        self.proc: subprocess.Popen | None = None
        self._sync = 0
        self.conf_file.write_text(self.config())
        check = subprocess.run([self.rsyslogd, "-N1", "-f", str(self.conf_file)], capture_output=True, text=True)
        if check.returncode != 0:
            raise RsyslogError(f"rsyslogd rejects the configuration:\n{check.stdout}{check.stderr}")
        atexit.register(self.close)

    def config(self) -> str:
        return self._snippet_config() if self.snippet else self._documented_config()

    def _head(self) -> str:
        return (
            f'global(workDirectory="{self.dir}")\n'
            # one worker: messages are written in arrival order (the default, made explicit);
            # everything queued is written before rsyslogd exits (stop() then read is exact)
            'main_queue(queue.workerThreads="1" queue.timeoutShutdown="60000")\n'
        )

    def _documented_config(self) -> str:
        conf = documented_config()
        conf = _replace_once(
            conf,
            'module(load="imuxsock" SysSock.UseSpecialParser="off" SysSock.Annotate="on" SysSock.ParseTrusted="on")',
            # the same settings, on a private socket instead of the system's /dev/log
            f'module(load="imuxsock" SysSock.Use="off")\ninput(type="imuxsock" Socket="{self.socket}" {INPUT_SETTINGS})',
        )
        conf = _replace_once(conf, BROKER_UID_LINE, f"set $.jitrun_broker_uid = {self.broker_uid};")
        conf = _replace_once(conf, "/var/log/jitrun/forged.json", str(self.forged_file))
        omfile = 'action(type="omfile" file="/var/log/jitrun/audit.json" template="jitrun_json")'
        conf = _replace_once(
            conf,
            omfile,
            f'action(type="omfile" file="{self.raw_file}" template="jitlab_raw")\n    '
            + omfile.replace("/var/log/jitrun/audit.json", str(self.events_file)),
        )
        return self._head() + 'template(name="jitlab_raw" type="string" string="%rawmsg%\\n")\n' + conf

    def _snippet_config(self) -> str:
        text = self.snippet.read_text()
        for old, new in ((BROKER_UID_LINE, f"set $.jitrun_broker_uid = {self.broker_uid};"),
                         ('file="/var/log/jitrun/events.json"', f'file="{self.events_file}"'),
                         ('file="/var/log/jitrun/forged.json"', f'file="{self.forged_file}"')):
            if text.count(old) != 1:
                raise RsyslogError(f"{self.snippet} no longer has exactly one {old!r}")
            text = text.replace(old, new)
        included = self.dir / "snippet.conf"
        included.write_text(text)
        return (
            self._head()
            + 'module(load="imuxsock" SysSock.Use="off")\n'
            + f'input(type="imuxsock" Socket="{self.socket}" {INPUT_SETTINGS})\n'
            + f'include(file="{included}")\n'
            + 'template(name="jitlab_rest" type="string" string="%programname% %rawmsg%\\n")\n'
            + f'action(type="omfile" file="{self.rest_file}" template="jitlab_rest")\n'
        )

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 20) -> "Rsyslog":
        """Start rsyslogd (again) on the same socket path; returns once it accepts and writes."""
        if self.running:
            return self
        try:
            self.socket.unlink()
        except FileNotFoundError:
            pass
        log = open(self.log_file, "ab")
        try:
            self.proc = subprocess.Popen(
                [self.rsyslogd, "-n", "-f", str(self.conf_file), "-i", str(self.pid_file)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while not self.socket.exists():
            if self.proc.poll() is not None:
                raise RsyslogError(f"rsyslogd exited ({self.proc.returncode}): {self._log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RsyslogError(f"rsyslogd did not create {self.socket}: {self._log_tail()}")
            time.sleep(0.02)
        self.sync(timeout)
        return self

    def stop(self, timeout: float = 20) -> None:
        """Stop rsyslogd (everything it received is written first); afterwards the socket is gone."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None
        try:
            self.socket.unlink()  # rsyslogd removes it; make sure even after a kill
        except FileNotFoundError:
            pass

    def restart(self) -> "Rsyslog":
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop rsyslogd and remove the work directory (if this object created it)."""
        self.stop()
        if self._own_dir and self.dir.exists():
            shutil.rmtree(self.dir, ignore_errors=True)
        try:
            atexit.unregister(self.close)
        except Exception:  # noqa: BLE001
            pass

    def __enter__(self) -> "Rsyslog":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def _log_tail(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    # -- reading ------------------------------------------------------------------------------

    def _rfc5424_snippet(self) -> bool:
        return self.snippet is not None and "mmpstrucdata" in self.snippet.read_text()

    def _marker(self, n: int) -> bytes:
        if self._rfc5424_snippet():
            return (f'<13>1 2026-01-01T00:00:00Z jitlab {SYNC_TAG} 1 {SYNC_ACTION} [{DEFAULT_SD_ID} '
                    f'event.action="{SYNC_ACTION}" jitrun.session_id="{n}"] sync').encode()
        return f'<13>Jan  1 00:00:00 {SYNC_TAG}[1]: @cee:{{"jitlab_sync":{n}}}'.encode()

    @staticmethod
    def _sync_number(obj: dict) -> int | None:
        if "jitlab_sync" in obj:
            return obj["jitlab_sync"]
        if obj.get("event", {}).get("action") == SYNC_ACTION:
            return int(obj["jitrun"]["session_id"])
        return None

    def sync(self, timeout: float = 20, via: str | os.PathLike | None = None) -> None:
        """Return once everything sent to the socket before this call is in the events file (and,
        for the docs configuration, the raw file). A drop-in's other outputs (forged.json, the
        rest) are complete only after :meth:`stop`. ``via``: send the marker (as root) to that
        socket instead, e.g. a journald that forwards to this rsyslogd: then everything sent
        there before the call is in the events file."""
        if not self.running:
            raise RsyslogError("rsyslogd is not running")
        self._sync += 1
        n = self._sync
        needle_raw = f'"jitlab_sync":{n}}}'
        deadline = time.monotonic() + timeout
        # The marker is sent again every half second: a datagram that reaches a freshly started
        # rsyslogd before imuxsock has turned on SO_PASSCRED carries no sender credentials, and the
        # sender check rightly files it with the forgeries (docs/audit.md, "Trusting the sender").
        resend = 0.0
        while True:
            if time.monotonic() >= resend:
                with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                    s.sendto(self._marker(n), str(via or self.socket))
                resend = time.monotonic() + 0.5
            if any(self._sync_number(o) == n for o in self._objects()) and (
                self.snippet is not None or any(needle_raw in line for line in self._raw_lines())
            ):
                return
            if not self.running:
                raise RsyslogError(f"rsyslogd died: {self._log_tail()}")
            if time.monotonic() > deadline:
                raise RsyslogError(f"rsyslogd did not write sync marker {n}: {self._log_tail()}")
            time.sleep(0.02)

    def _objects(self, path: Path | None = None) -> list[dict]:
        try:
            text = (path or self.events_file).read_text(encoding="utf-8", errors="strict")
        except FileNotFoundError:
            return []
        out = []
        for line in text.split("\n"):
            if line:
                out.append(json.loads(line))
        return out

    def _raw_lines(self) -> list[str]:
        try:
            text = self.raw_file.read_text(encoding="utf-8", errors="surrogateescape")
        except FileNotFoundError:
            return []
        return [line for line in text.split("\n") if line]

    def read_events(self) -> list[dict]:
        """Every object rsyslog wrote for jitrun/jitbroker (one per message), in arrival order,
        across restarts. Syncs first when rsyslogd is running."""
        if self.running:
            self.sync()
        return [o for o in self._objects() if self._sync_number(o) is None]

    def read_forged(self) -> list[dict]:
        """What the configuration wrote to forged.json (messages that claimed to be jitrun's or
        jitbroker's from another sender), one object per message. Complete once stopped. The
        harness's own sync markers are left out: one that reached rsyslogd before imuxsock turned on
        SO_PASSCRED came without credentials and was filed here (see :meth:`sync`)."""
        return [o for o in self._objects(self.forged_file) if "jitlab_sync" not in json.dumps(o)]

    def read_rest(self) -> list[str]:
        """``PROGRAMNAME RAWMSG`` of each message a drop-in left to the host's other rules
        (``snippet`` mode only). Complete once stopped."""
        try:
            return [line for line in self.rest_file.read_text(errors="replace").split("\n") if line]
        except FileNotFoundError:
            return []

    def read_raw(self) -> list[str]:
        """Every jitrun/jitbroker message exactly as rsyslog received it (``%rawmsg%``)."""
        if self.running:
            self.sync()
        return [line for line in self._raw_lines() if '"jitlab_sync":' not in line]

    def events(self, framing: str) -> list[dict]:
        """:meth:`read_events` as audit event objects: as written for ``cee``; rebuilt from the
        structured data (see :func:`event_from_sd`) for ``rfc5424``."""
        objs = self.read_events()
        if framing == "cee":
            return objs
        return [event_from_sd(o["rfc5424-sd"][self.sd_id]) for o in objs]


# ------------------------------------------------------------------------------------------
# the schema and the RFC 5424 structured data


def load_schema() -> dict:
    return json.loads(SCHEMA_FILE.read_text())


def _resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/$defs/"), ref
        node = schema["$defs"][ref[len("#/$defs/"):]]
    return node


def _leaf_type(schema: dict, node: dict) -> str:
    node = _resolve(schema, node)
    if "type" in node:
        return node["type"]
    if "const" in node:
        return {bool: "boolean", int: "integer", str: "string"}[type(node["const"])]
    if "enum" in node:
        return "string"
    for sub in node.get("allOf", []):
        t = _leaf_type(schema, sub)
        if t:
            return t
    raise ValueError(f"no type in {node}")


def schema_fields(schema: dict | None = None) -> dict[str, str]:
    """Every field of the JSON Schema as dotted name -> JSON type (string/integer/boolean/array)."""
    schema = schema or load_schema()
    out: dict[str, str] = {}

    def walk(node: dict, prefix: str) -> None:
        for key, sub in node["properties"].items():
            sub = _resolve(schema, sub)
            if sub.get("type") == "object" and "properties" in sub:
                walk(sub, f"{prefix}{key}.")
            else:
                out[f"{prefix}{key}"] = _leaf_type(schema, sub)

    walk(schema, "")
    return out


def sd_aliases() -> dict[str, str]:
    """docs/audit.md's SD-PARAM alias table: field -> SD-PARAM name."""
    doc = AUDIT_DOC.read_text()
    sec = doc.split("### SD-PARAM alias table", 1)[1].split("\n#", 1)[0]
    return dict(re.findall(r"^\| `([^`]+)` \| `([^`]+)` \|$", sec, re.M))


def flatten(obj: dict, prefix: str = "") -> dict[str, Any]:
    """A nested event as {dotted name: value}."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def nest(flat: dict[str, Any]) -> dict:
    out: dict = {}
    for name, value in flat.items():
        cur = out
        *parents, leaf = name.split(".")
        for p in parents:
            cur = cur.setdefault(p, {})
        cur[leaf] = value
    return out


def event_from_sd(params: dict[str, str], types: dict[str, str] | None = None,
                  aliases: dict[str, str] | None = None) -> dict:
    """Rebuild the nested event from the SD-PARAMs of an RFC 5424 message, as docs/audit.md
    says a receiver does (after undoing the SD escapes, which rsyslog and RFC 5424 parsers
    already did): aliases back to field names, integers from decimal, booleans from
    ``true``/``false``, lists from their JSON array. A value that does not decode as its
    documented type is kept as the string it was, and an unknown name is kept as is, so that
    schema validation reports it."""
    types = types if types is not None else schema_fields()
    aliases = aliases if aliases is not None else sd_aliases()
    back = {alias: field for field, alias in aliases.items()}
    flat: dict[str, Any] = {}
    for name, text in params.items():
        field = back.get(name, name)
        kind = types.get(field, "string")
        value: Any = text
        if kind == "integer" and re.fullmatch(r"-?[0-9]+", text):
            value = int(text)
        elif kind == "boolean" and text in ("true", "false"):
            value = text == "true"
        elif kind == "array":
            try:
                value = json.loads(text)
            except ValueError:
                pass
        flat[field] = value
    return nest(flat)
