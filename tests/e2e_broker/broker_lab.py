"""A real jitbroker next to a jitlab Lab, for the full-flow tests.

``start_world(lab)`` creates the users and groups, writes broker.toml (random loopback port,
SQLite file and signing key in a root-only directory of the lab), runs ``jitbroker init``,
trusts the broker's public key in the lab's keys.d, creates this host's attestation key in
the lab's /etc/jitrun/host.key and enrolls it with ``jitbroker host add``, starts ``jitbroker
serve`` and waits for /healthz. ``BrokerWorld.jitctl(user, ...)`` runs a root-owned copy of
jitctl as that user in the lab's mount namespace (client.toml there names the broker and the
lab's setuid jitrun)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from jitlab import REPO, Lab, User, toml_value

TARGET = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
JITBROKER = Path(os.environ.get("JITBROKER_BIN") or TARGET / "debug" / "jitbroker")
ROOT = User(name="root", uid=0, gid=0, home=Path("/root"), groups=[])
ULID_RE = re.compile(r"\b[0-9A-HJKMNP-TV-Z]{26}\b")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    policy: str = ""
    admins: str = ""
    proc: subprocess.Popen | None = None
    log: Path | None = None
    _stopped: bool = field(default=False)

    def users(self) -> list[User]:
        return [self.alice, self.bob, self.carol, self.dave, self.erin, self.frank]

    # -- processes ------------------------------------------------------------------------

    def broker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        p = subprocess.run([str(JITBROKER), *args], capture_output=True, text=True, stdin=subprocess.DEVNULL,
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
        if self.proc:
            stop_process(self.proc)

    def broker_log(self) -> str:
        return self.log.read_text(errors="replace") if self.log and self.log.exists() else ""

    def syslog_sent(self, timeout: float = 30) -> None:
        """Wait until the broker has sent every committed syslog event (a thread of its own
        sends them after the answer: jitbroker_syslog_backlog is 0), then until the lab's
        listener has them."""
        deadline = time.monotonic() + timeout
        while True:
            with urllib.request.urlopen(self.url + "/metrics", timeout=10) as r:
                text = r.read().decode()
            if re.search(r"^jitbroker_syslog_backlog 0$", text, re.M):
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"the broker's syslog backlog did not drain in {timeout}s")
            time.sleep(0.05)
        self.lab.audit.sync()


def broker_toml(w: BrokerWorld, port: int, admins: str) -> str:
    lines = [
        'id = "broker-test"',
        f'listen = "127.0.0.1:{port}"',
        f"store = {toml_value(str(w.dir / 'broker.db'))}",
        f"signing_key = {toml_value(str(w.dir / 'signing.key'))}",
        f"admin_groups = [{toml_value(admins)}]",
        'pending_expiry = "1h"',
        "",
        "[audit]",
        f"socket = {toml_value(str(w.lab.audit.path))}",
    ]
    flows = [
        {"rules": ["db-*"], "requesters": [w.devs], "approvers": [w.dba], "min_approvals": 2, "max_ttl": "1h"},
        {"rules": ["oncall-*"], "requesters": [w.devs], "approvers": [w.dba], "min_approvals": 1,
         "max_ttl": "30m", "auto": True},
        {"rules": ["bg-*"], "requesters": [w.devs], "approvers": [w.dba], "min_approvals": 1, "max_ttl": "30m",
         "break_glass": True},
        {"rules": ["fresh-*"], "requesters": [w.devs], "approvers": [w.dba], "min_approvals": 1, "max_ttl": "1h"},
    ]
    for f in flows:
        lines += ["", "[[workflow]]"]
        for k in ("rules", "requesters", "approvers", "min_approvals", "max_ttl", "break_glass"):
            if k in f:
                lines.append(f"{k} = {toml_value(f[k])}")
        if f.get("auto"):
            lines.append(f"auto_approve = {{ groups = [{toml_value(w.oncall)}] }}")
    return "\n".join(lines) + "\n"


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


def start_world(lab: Lab, extra=None) -> BrokerWorld:
    """``extra(world)``, when given, returns more broker.toml (appended; e.g. ``[web]``)."""
    if not JITBROKER.is_file():
        raise AssertionError(f"{JITBROKER} does not exist: run `cargo build --workspace` (make build) first")
    devs, dba, oncall, admins = lab.add_group(), lab.add_group(), lab.add_group(), lab.add_group()
    alice = lab.add_user(groups=[devs])
    bob = lab.add_user(groups=[dba])
    carol = lab.add_user(groups=[dba])
    dave = lab.add_user(groups=[devs, oncall])
    erin = lab.add_user(groups=[devs, dba])
    frank = lab.add_user(groups=[devs])
    d = lab.tmp / "broker"
    d.mkdir(mode=0o700)
    jitctl = lab.install_file("jitctl", lab.jitctl_bin.read_bytes(), 0o755)
    w = BrokerWorld(lab=lab, dir=d, config=d / "broker.toml", url="", jitctl_bin=jitctl,
                    host_public=Path(), broker_public=d / "signing.pub", broker_secret=d / "signing.key",
                    devs=devs, dba=dba, oncall=oncall, alice=alice, bob=bob, carol=carol, dave=dave, erin=erin, frank=frank)
    port = free_port()
    w.url = f"http://127.0.0.1:{port}"
    w.admins = admins
    w.config.write_text(broker_toml(w, port, admins) + (extra(w) if extra else ""))
    os.chmod(w.config, 0o600)
    w.broker("--config", str(w.config), "init")
    # The broker's public key: jitrun trusts it in keys.d (grants and revocation lists).
    public = w.broker("--config", str(w.config), "pubkey").stdout.strip()
    assert public.startswith("k4.public."), public
    w.broker_public = d / "broker-public.paserk"
    w.broker_public.write_text(public + "\n")
    lab.trust_key(w.broker_public, "broker")
    # This host's attestation key, enrolled.
    _, w.host_public = lab.install_host_key()
    w.broker("--config", str(w.config), "host", "add", lab.host, w.host_public.read_text().strip())
    lab._write_conf(lab.conf / "client.toml",
                    f"broker = {toml_value(w.url)}\njitrun = {toml_value(str(lab.jitrun))}\n")
    w.policy = jitrun_policy(w)
    lab.set_policy(w.policy)
    w.log = d / "serve.log"
    w.proc = serve(w.config, w.url, w.log)
    return w


def serve(config: Path, url: str, log: Path, timeout: float = 60) -> subprocess.Popen:
    """Start ``jitbroker --config CONFIG serve`` (its output into LOG) and wait until URL/healthz
    answers 200; the process, for :func:`stop_process`."""
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(JITBROKER), "--config", str(config), "serve"], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_process(proc)
            raise AssertionError(f"jitbroker serve did not come up on {url}:\n{log.read_text(errors='replace')}")
        time.sleep(0.1)


def stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 10 s; reaped."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def ids_in(text: str) -> list[str]:
    return ULID_RE.findall(text)


__all__ = ["BrokerWorld", "start_world", "serve", "stop_process", "free_port", "JITBROKER", "ROOT", "ids_in"]
