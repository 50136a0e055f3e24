"""A real jitbroker on loopback for tests: its own directory (broker.toml, signing key,
SQLite store, an audit socket collecting its syslog events), a random free port, and a
client that signs attestations (docs/broker.md) with pyseto using host keys enrolled through
`jitbroker host add`.

Uses the built binary at $JITBROKER, else target/debug/jitbroker under the repository root.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import secrets
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyseto
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pyseto import Key

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "harness"))
from jitlab import AuditListener  # noqa: E402
from jitlab import toml_value as _toml_scalar  # noqa: E402


def toml_value(v: Any) -> str:
    """TOML for scalars, lists and inline tables."""
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return _toml_scalar(v)

JITBROKER = os.environ.get("JITBROKER") or str(REPO / "target" / "debug" / "jitbroker")
ATTEST = b"jitrun:attest:v1"
GRANT = b"jitrun:grant:v1"
REVOCATIONS = b"jitrun:revocations:v1"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

# Workflows most tests use: two approvals for net-*, on-call auto-approval and break-glass for db-*.
NET = {"rules": ["net-*"], "requesters": ["netops"], "approvers": ["netleads"], "min_approvals": 2,
       "max_ttl": "1h", "hosts": ["web-*"]}
ONCALL = {"rules": ["db-*"], "requesters": ["dba"], "approvers": ["dbleads"], "min_approvals": 1,
          "max_ttl": "30m", "auto_approve": {"groups": ["oncall"]}, "break_glass": True}


def rfc3339(t: datetime) -> str:
    return t.astimezone(timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def decode_grant(broker: "Broker", token: str) -> dict:
    """The claims of a grant token, verified with the broker's public key."""
    return json.loads(pyseto.decode(broker.public_key, token, implicit_assertion=GRANT).payload)


def revocation_list(broker: "Broker", token: str) -> dict:
    """The payload of a revocation list token, verified with the broker's public key."""
    return json.loads(pyseto.decode(broker.public_key, token, implicit_assertion=REVOCATIONS).payload)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout: float = 30.0, what: str = "condition", interval: float = 0.05):
    """Poll `pred` until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class HostKey:
    """An Ed25519 host key, as /etc/jitrun/host.key would hold it."""

    def __init__(self, name: str):
        self.name = name
        raw = Ed25519PrivateKey.generate()
        pem = raw.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        pub = raw.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
        self.secret = Key.new(4, "public", pem)
        self.public = Key.new(4, "public", pub)
        self.public_paserk = self.public.to_paserk()
        self.kid = self.public.to_paserk_id()

    def attest(self, *, user: str, uid: int, groups: list[str], method: str, path: str, body: bytes,
               host: str | None = None, iat: datetime | None = None, lifetime: int = 60,
               jti: str | None = None, **overrides: Any) -> str:
        iat = iat or datetime.now(timezone.utc)
        payload = {
            "v": 1,
            "sub": user,
            "uid": uid,
            "groups": sorted(set(groups)),
            "host": host or self.name,
            "iat": rfc3339(iat),
            "exp": rfc3339(iat + timedelta(seconds=lifetime)),
            "jti": jti or secrets.token_hex(16),
            "method": method,
            "path": path,
            "body_sha256": hashlib.sha256(body).hexdigest(),
        }
        payload.update(overrides)
        footer = json.dumps({"kid": self.kid}, separators=(",", ":")).encode()
        return pyseto.encode(self.secret, json.dumps(payload).encode(), footer=footer,
                             implicit_assertion=ATTEST).decode()


@dataclass
class Person:
    name: str
    uid: int
    groups: list[str]
    host: HostKey


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str]

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def error_code(self) -> str | None:
        try:
            return self.json["error"]["code"]
        except (ValueError, KeyError, TypeError):
            return None


def raw_http(port: int, method: str, path: str, body: bytes = b"", headers: dict | None = None,
             timeout: float = 30.0) -> Response:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body if (body or method not in ("GET", "HEAD")) else None,
                     headers=headers or {})
        r = conn.getresponse()
        return Response(r.status, r.read(), {k.lower(): v for k, v in r.getheaders()})
    finally:
        conn.close()


class Broker:
    """A jitbroker process with its own directory; start()/stop()/restart() keep the store."""

    def __init__(self, root: Path, workflows: list[dict] | None = None, webhooks: list[dict] | None = None,
                 broker_id: str = "broker-test", admin_groups: list[str] | None = None,
                 pending_expiry: str = "24h", extra: str = "", audit_framing: str = "cee",
                 audit_socket: Path | None = None, store_dir: Path | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.config = self.root / "broker.toml"
        self.store = Path(store_dir or self.root) / "broker.db"
        self.key = self.root / "signing.key"
        self.port = free_port()
        self.id = broker_id
        # The broker's syslog socket: a listener collecting events, unless the test brings its own.
        self.audit = None if audit_socket else AuditListener(self.root / "audit.sock").start()
        audit_path = audit_socket or self.audit.path
        self.proc: subprocess.Popen | None = None
        self.log = self.root / "broker.log"
        lines = [
            f"id = {toml_value(broker_id)}",
            f"listen = \"127.0.0.1:{self.port}\"",
            f"store = {toml_value(str(self.store))}",
            f"signing_key = {toml_value(str(self.key))}",
            f"admin_groups = {toml_value(admin_groups or ['jitadmin'])}",
            f"pending_expiry = {toml_value(pending_expiry)}",
            extra,
            "[audit]",
            f"socket = {toml_value(str(audit_path))}",
            f"framing = {toml_value(audit_framing)}",
        ]
        for wf in workflows or []:
            lines.append("[[workflow]]")
            lines += [f"{k} = {toml_value(v)}" for k, v in wf.items()]
        for hook in webhooks or []:
            lines.append("[[webhook]]")
            lines += [f"{k} = {toml_value(v)}" for k, v in hook.items()]
        self.config.write_text("\n".join(lines) + "\n")
        self.cli("init")
        self.public_key = Key.from_paserk(self.cli("pubkey").stdout.strip())
        self.hosts: dict[str, HostKey] = {}

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([JITBROKER, "--config", str(self.config), *args], capture_output=True,
                              text=True, timeout=60)
        if check and proc.returncode != 0:
            raise AssertionError(f"jitbroker {' '.join(args)} exited {proc.returncode}: {proc.stderr}{proc.stdout}")
        return proc

    def start(self, prefix: list[str] | None = None, nofile: tuple[int, int] | None = None) -> "Broker":
        """`jitbroker serve`, run through `prefix` (e.g. unshare) if given, with RLIMIT_NOFILE
        `nofile` (soft, hard) if given."""
        assert self.proc is None
        self._logf = open(self.log, "ab")

        def limits():
            if nofile:
                import resource
                resource.setrlimit(resource.RLIMIT_NOFILE, nofile)

        self.proc = subprocess.Popen([*(prefix or []), JITBROKER, "--config", str(self.config), "serve"],
                                     stdout=self._logf, stderr=subprocess.STDOUT, preexec_fn=limits)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"jitbroker serve exited {self.proc.returncode}: {self.log.read_text()}")
            try:
                return raw_http(self.port, "GET", "/healthz", timeout=2).status == 200
            except OSError:
                return False

        wait_for(up, 30, "jitbroker to answer /healthz")
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        self._logf.close()

    def kill(self) -> None:
        """SIGKILL: no graceful anything."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()
        self.proc = None
        self._logf.close()

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        if self.audit:
            self.audit.close()

    # ---- metrics and syslog

    def metrics(self) -> dict[str, float]:
        """/metrics as {"name{labels}": value}."""
        text = raw_http(self.port, "GET", "/metrics").body.decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def syslog_sent(self, timeout: float = 30) -> None:
        """Wait until the broker has sent every committed syslog event (they go out from a
        thread of their own, after the answer), then until the listener has them."""
        wait_for(lambda: self.metrics()["jitbroker_syslog_backlog"] == 0, timeout,
                 "the broker's syslog backlog to drain", interval=0.02)
        self.audit.sync()

    # ---- hosts and people

    def enroll(self, name: str) -> HostKey:
        key = HostKey(name)
        self.cli("host", "add", name, key.public_paserk)
        self.hosts[name] = key
        return key

    def person(self, name: str, uid: int, groups: list[str], host: str = "web-1") -> Person:
        if host not in self.hosts:
            self.enroll(host)
        return Person(name, uid, [name, *groups], self.hosts[host])

    # ---- calls

    def call(self, who: Person, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
             attest_path: str | None = None, attest_body: bytes | None = None, token: str | None = None,
             **attest: Any) -> Response:
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        if token is None:
            token = who.host.attest(user=who.name, uid=who.uid, groups=who.groups, method=method,
                                    path=attest_path or path.split("?", 1)[0],
                                    body=data if attest_body is None else attest_body, **attest)
        headers = {"Authorization": f"JitAttest {token}"}
        if data:
            headers["Content-Type"] = "application/json"
        return raw_http(self.port, method, path, data, headers)

    def ok(self, who: Person, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        r = self.call(who, method, path, body)
        assert r.status == status, f"{method} {path}: {r.status} {r.body[:500]!r}"
        return r.json

    # ---- store

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.store)

    def snapshot(self) -> dict[str, list]:
        """Every table that holds state (not the replay cache)."""
        with self.db() as c:
            return {t: c.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
                    for t in ("requests", "approvals", "grants", "hosts", "enrollment_tokens", "audit",
                              "outbox", "revocation_list")}


class HookReceiver:
    """A local HTTP server collecting webhook POSTs; answers 500 to the first `fail_first`."""

    def __init__(self, fail_first: int = 0, port: int = 0):
        self.fail_first = fail_first
        self.received: list[dict] = []
        self.attempts = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                with outer.lock:
                    outer.attempts += 1
                    fail = outer.attempts <= outer.fail_first
                    if not fail:
                        outer.received.append({"headers": {k.lower(): v for k, v in self.headers.items()},
                                               "body": json.loads(body)})
                self.send_response(500 if fail else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def by_delivery(self) -> dict[str, dict]:
        with self.lock:
            return {r["headers"]["x-jitbroker-delivery"]: r for r in self.received}

    def close(self):
        self.server.shutdown()
        self.server.server_close()
