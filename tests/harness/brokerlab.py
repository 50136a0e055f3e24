"""The one harness for a real jitbroker in tests, benchmarks and the demo.

- :class:`Broker`: a `jitbroker serve` on loopback with its own directory (broker.toml,
  signing key, an audit socket collecting its syslog events), a random free port, its store
  (:class:`SqliteStore`, or :class:`PostgresStore`: a database of its own in a throwaway
  cluster, tests/harness/pgcluster.py), and a client that signs attestations (docs/broker.md)
  with pyseto using host keys enrolled through `jitbroker host add`. Several Brokers may share
  one store (replicas): ``Broker(root, store=other.store)``.
- :class:`BrokerWorld` / :func:`start_world`: a Broker next to a jitlab Lab, with throwaway
  users and the real setuid jitrun and jitctl (tests/e2e_broker).
- :func:`serve` / :func:`stop_process`: start and stop `jitbroker serve` (what Broker uses).
- :func:`wait_for`: the one polling helper.

Uses the built binary at $JITBROKER (or $JITBROKER_BIN), else jitbroker in
$CARGO_TARGET_DIR/debug (default target/ under the repository root).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import secrets
import re
import sqlite3
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
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
from jitlab import AuditListener, Lab, User  # noqa: E402
from jitlab import toml_value as _toml_scalar  # noqa: E402
from pgcluster import PgCluster  # noqa: E402
from polling import free_port, wait_for  # noqa: E402,F401


def toml_value(v: Any) -> str:
    """TOML for scalars, lists and inline tables."""
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return _toml_scalar(v)

TARGET = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
JITBROKER = os.environ.get("JITBROKER") or os.environ.get("JITBROKER_BIN") or str(TARGET / "debug" / "jitbroker")
ROOT = User(name="root", uid=0, gid=0, home=Path("/root"), groups=[])
ULID_RE = re.compile(r"\b[0-9A-HJKMNP-TV-Z]{26}\b")
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


def ids_in(text: str) -> list[str]:
    return ULID_RE.findall(text)


# ---- stores ---------------------------------------------------------------------------------

class StoreDb:
    """A DB-API connection to a broker's store with SQLite's `?` placeholders on both backends
    (``with b.db() as c: c.execute("SELECT … WHERE id = ?", (x,)).fetchone()``)."""

    def __init__(self, conn, postgres: bool):
        self.conn = conn
        self.postgres = postgres

    def execute(self, sql: str, params: tuple = ()):
        if self.postgres:
            return self.conn.execute(sql.replace("?", "%s"), params)
        return self.conn.execute(sql, params)

    def commit(self) -> None:
        if not self.postgres:
            self.conn.commit()

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "StoreDb":
        return self

    def __exit__(self, exc, *_):
        if not self.postgres and exc is None:
            self.conn.commit()
        self.conn.close()


class SqliteStore:
    """A SQLite file in the broker's directory (or `directory`)."""

    kind = "sqlite"

    def __init__(self, path: Path):
        self.path = Path(path)

    def setting(self) -> str:
        return str(self.path)

    def toml(self) -> str:
        return ""

    def db(self) -> StoreDb:
        return StoreDb(sqlite3.connect(self.path), postgres=False)


class PostgresStore:
    """A database of its own in `cluster`, reached over TCP with the role's password from a
    file (as a deployment would)."""

    kind = "postgres"

    def __init__(self, cluster: PgCluster):
        self.cluster = cluster
        self.url = cluster.create_database()
        self.name = self.url.rsplit("/", 1)[1]

    def setting(self) -> str:
        return self.url

    def toml(self) -> str:
        return f"[postgres]\npassword_file = {toml_value(str(self.cluster.password_file))}\n"

    def db(self) -> StoreDb:
        return StoreDb(self.cluster.connect(self.name), postgres=True)


# The store new Brokers get when none is given: set per test by tests/broker/conftest.py
# (None = a SQLite file in the broker's directory).
default_store = None


def make_store(root: Path, store_dir: Path | None = None):
    if default_store is not None and store_dir is None:
        return default_store(root)
    return SqliteStore(Path(store_dir or root) / "broker.db")


# ---- processes --------------------------------------------------------------------------------

def serve(config: Path, url: str, log: Path, prefix: list[str] | None = None, preexec_fn=None,
          timeout: float = 60, ca: Path | None = None) -> subprocess.Popen:
    """Start ``jitbroker --config CONFIG serve`` (through `prefix`, e.g. unshare; its output
    appended to LOG) and wait until URL/healthz answers 200 (an https URL: verified with the
    CA certificate `ca`); the process."""
    with open(log, "ab") as out:
        proc = subprocess.Popen([*(prefix or []), JITBROKER, "--config", str(config), "serve"],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=preexec_fn)
    port = int(url.rsplit(":", 1)[1].split("/")[0])

    def healthy() -> bool:
        if not url.startswith("https://"):
            return raw_http(port, "GET", "/healthz", timeout=2).status == 200
        import ssl

        context = ssl.create_default_context(cafile=str(ca))
        with urllib.request.urlopen(url + "/healthz", context=context, timeout=2) as r:
            return r.status == 200

    def up():
        if proc.poll() is not None:
            raise AssertionError(f"jitbroker serve exited {proc.returncode}:\n{log.read_text(errors='replace')}")
        try:
            return healthy()
        except OSError:
            return False

    try:
        wait_for(up, timeout, f"jitbroker to answer {url}/healthz", interval=0.05)
    except AssertionError:
        stop_process(proc)
        raise
    return proc


def stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 20 s; reaped."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


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
                 audit_socket: Path | None = None, store_dir: Path | None = None, store=None,
                 signing_key: Path | None = None, replica: str | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.config = self.root / "broker.toml"
        # The store object (SqliteStore or PostgresStore); replicas pass the first one's.
        self.store = store or make_store(self.root, store_dir)
        self.key = Path(signing_key or self.root / "signing.key")
        self.port = free_port()
        # "https" when broker.toml gets a [tls] section (through `extra`): then start() is the
        # caller's to do (it waits for /healthz in plain HTTP).
        self.scheme = "http"
        self.id = broker_id
        # The broker's syslog socket: a listener collecting events, unless the test brings its own.
        self.audit = None if audit_socket else AuditListener(self.root / "audit.sock").start()
        audit_path = audit_socket or self.audit.path
        self.proc: subprocess.Popen | None = None
        self.log = self.root / "broker.log"
        lines = [
            f"id = {toml_value(broker_id)}",
            f"listen = \"127.0.0.1:{self.port}\"",
            f"store = {toml_value(self.store.setting())}",
            f"signing_key = {toml_value(str(self.key))}",
            f"admin_groups = {toml_value(admin_groups or ['jitadmin'])}",
            f"pending_expiry = {toml_value(pending_expiry)}",
            *([f"replica = {toml_value(replica)}"] if replica else []),
            extra,
            self.store.toml(),
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

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self, prefix: list[str] | None = None, nofile: tuple[int, int] | None = None) -> "Broker":
        """`jitbroker serve`, run through `prefix` (e.g. unshare) if given, with RLIMIT_NOFILE
        `nofile` (soft, hard) if given."""
        assert self.proc is None

        def limits():
            if nofile:
                import resource
                resource.setrlimit(resource.RLIMIT_NOFILE, nofile)

        self.proc = serve(self.config, self.url, self.log, prefix=prefix, preexec_fn=limits)
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        stop_process(self.proc)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: no graceful anything."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()
        self.proc = None

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

    def db(self) -> StoreDb:
        return self.store.db()

    def snapshot(self) -> dict[str, list]:
        """Every table that holds state (not the replay cache)."""
        with self.db() as c:
            return {t: c.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()
                    for t in ("requests", "approvals", "grants", "hosts", "enrollment_tokens", "audit",
                              "outbox", "revocation_list", "sealed_grants", "sealed_uses")}


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


# ---- the full flow: a Broker next to a jitlab Lab (tests/e2e_broker, the demo) -----------------

@dataclass
class BrokerWorld:
    lab: Lab
    dir: Path
    config: Path
    url: str
    jitctl_bin: Path
    host_public: Path
    broker_public: Path
    broker_secret: Path
    devs: str
    dba: str
    oncall: str
    alice: User  # devs: requests
    bob: User  # dba: approves
    carol: User  # dba: approves
    dave: User  # devs + oncall: auto-approved
    erin: User  # devs + dba: may not approve her own requests
    frank: User  # devs: only the first flow test uses him (his grant store holds one grant)
    admins: str = ""  # the broker's admin group
    policy: str = ""
    server: "Broker | None" = None
    log: Path | None = None
    _stopped: bool = field(default=False)

    def users(self) -> list[User]:
        return [self.alice, self.bob, self.carol, self.dave, self.erin, self.frank]

    # -- processes ------------------------------------------------------------------------

    def broker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        p = subprocess.run([JITBROKER, *args], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                           timeout=60)
        if check and p.returncode != 0:
            raise AssertionError(f"jitbroker {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p

    def jitctl(self, user: User, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """jitctl ARGS as ``user`` in the lab's namespace (stdin closed, no terminal)."""
        cmd = self.lab.ns_command(user, [str(self.jitctl_bin), *args])
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
        return subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, env=env,
                              cwd=user.home, timeout=timeout)

    def ok(self, user: User, *args: str) -> str:
        p = self.jitctl(user, *args)
        assert p.returncode == 0, f"jitctl {' '.join(args)} as {user.name} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
        return p.stdout

    def request(self, user: User, rule: str, *extra: str) -> dict:
        """``jitctl request RULE --reason ... --json`` → the request object."""
        out = self.ok(user, "request", rule, "--reason", f"test of {rule}", "--json", *extra)
        return json.loads(out[: out.rindex("}") + 1])

    def http(self, method: str, path: str, body: bytes = b"", headers: dict | None = None) -> tuple[int, dict]:
        req = urllib.request.Request(self.url + path, data=body if method != "GET" else None, method=method,
                                     headers=headers or {})
        if method != "GET":
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, {"raw": raw.decode("utf-8", "replace")}

    def attest(self, user: User, method: str, path: str, body: bytes = b"") -> str:
        import hashlib

        res = self.lab.run_jitrun(user, ["attest", "--method", method, "--path", path, "--body-sha256",
                                         hashlib.sha256(body).hexdigest()])
        assert res.returncode == 0, str(res)
        return res.out.strip()

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self.server:
            self.server.stop()

    def broker_log(self) -> str:
        return self.log.read_text(errors="replace") if self.log and self.log.exists() else ""

    def syslog_sent(self, timeout: float = 30) -> None:
        """Wait until the broker has sent every committed syslog event (a thread of its own
        sends them after the answer: jitbroker_syslog_backlog is 0), then until the lab's
        listener has them."""
        wait_for(lambda: self.server.metrics()["jitbroker_syslog_backlog"] == 0, timeout,
                 "the broker's syslog backlog to drain")
        self.lab.audit.sync()


def jitrun_policy(w: BrokerWorld) -> str:
    return f"""
[[rule]]
name = "db-restart"
groups = ["{w.devs}"]
commands = ["/usr/bin/true **", "/usr/bin/sleep *"]
min_approvals = 2

[[rule]]
name = "oncall-debug"
groups = ["{w.devs}"]
commands = ["/usr/bin/true **", "/usr/bin/sleep *"]

[[rule]]
name = "bg-fix"
groups = ["{w.devs}"]
commands = ["/usr/bin/true **"]
min_approvals = 1

[[rule]]
name = "fresh-db"
groups = ["{w.devs}"]
commands = ["/usr/bin/true **"]
min_approvals = 1
require_fresh_revocations = true
"""


def world_workflows(w: BrokerWorld) -> list[dict]:
    auto = {"groups": [w.oncall]}
    return [
        {"rules": ["db-*"], "requesters": [w.devs], "approvers": [w.dba], "min_approvals": 2, "max_ttl": "1h"},
        {"rules": ["oncall-*"], "requesters": [w.devs], "approvers": [w.dba], "min_approvals": 1,
         "max_ttl": "30m", "auto_approve": auto},
        {"rules": ["bg-*"], "requesters": [w.devs], "approvers": [w.dba], "min_approvals": 1, "max_ttl": "30m",
         "break_glass": True},
        {"rules": ["fresh-*"], "requesters": [w.devs], "approvers": [w.dba], "min_approvals": 1, "max_ttl": "1h"},
    ]


def start_world(lab: Lab, store=None, extra=None) -> BrokerWorld:
    """Users and groups, a Broker (its store: `store`, else a SQLite file) whose public key the
    lab's keys.d trusts, this host's attestation key enrolled, client.toml naming the broker.
    ``extra(world)``, when given, returns more broker.toml (appended; e.g. ``[web]``)."""
    if not Path(JITBROKER).is_file():
        raise AssertionError(f"{JITBROKER} does not exist: run `cargo build --workspace` (make build) first")
    devs, dba, oncall, admins = lab.add_group(), lab.add_group(), lab.add_group(), lab.add_group()
    alice = lab.add_user(groups=[devs])
    bob = lab.add_user(groups=[dba])
    carol = lab.add_user(groups=[dba])
    dave = lab.add_user(groups=[devs, oncall])
    erin = lab.add_user(groups=[devs, dba])
    frank = lab.add_user(groups=[devs])
    d = lab.tmp / f"broker-{secrets.token_hex(3)}"
    d.mkdir(mode=0o700)
    jitctl = lab.install_file("jitctl", lab.jitctl_bin.read_bytes(), 0o755)
    w = BrokerWorld(lab=lab, dir=d, config=d / "broker.toml", url="", jitctl_bin=jitctl,
                    host_public=Path(), broker_public=d / "signing.pub", broker_secret=d / "signing.key",
                    devs=devs, dba=dba, oncall=oncall, alice=alice, bob=bob, carol=carol, dave=dave, erin=erin, frank=frank,
                    admins=admins)
    b = Broker(d, workflows=world_workflows(w), admin_groups=[admins], pending_expiry="1h",
               audit_socket=lab.audit.path, store=store(d) if store else None)
    w.server, w.url, w.log = b, b.url, b.log
    if extra:
        with open(b.config, "a") as f:
            f.write(extra(w))
    os.chmod(b.config, 0o600)
    # The broker's public key: jitrun trusts it in keys.d (grants and revocation lists).
    w.broker_public = d / "broker-public.paserk"
    w.broker_public.write_text(b.public_key.to_paserk() + "\n")
    lab.trust_key(w.broker_public, "broker")
    # This host's attestation key, enrolled.
    _, w.host_public = lab.install_host_key()
    b.cli("host", "add", lab.host, w.host_public.read_text().strip())
    lab._write_conf(lab.conf / "client.toml",
                    f"broker = {toml_value(w.url)}\njitrun = {toml_value(str(lab.jitrun))}\n")
    w.policy = jitrun_policy(w)
    lab.set_policy(w.policy)
    b.start()
    return w


@contextlib.contextmanager
def world_on(lab: Lab, backend: str, extra=None):
    """:func:`start_world` with its store in `backend`: "sqlite" (a file in the broker's
    directory) or "postgres" (a database in a throwaway cluster); stopped afterwards."""
    if backend == "postgres":
        with PgCluster() as cluster:
            w = start_world(lab, store=lambda _root: PostgresStore(cluster), extra=extra)
            try:
                yield w
            finally:
                w.stop()
    else:
        w = start_world(lab, extra=extra)
        try:
            yield w
        finally:
            w.stop()
