#!/usr/bin/env python3
"""`make demo`: the whole just-in-time flow in about a minute, on this very machine.

Three throwaway people (alice asks, bob and carol approve), a real broker (`jitbroker serve` on
127.0.0.1 with a fresh SQLite store), this machine enrolled with it, and the real setuid `jitrun`
and `jitctl` run as those people. The story: alice is refused and told to ask; she asks with a
reason and a ticket; bob approves, alice cannot approve her own request, carol approves; alice
syncs the grant and her command runs with exactly the rule's capability (read from /proc); the
audit events name the approvers, the reason and the ticket; a command outside the rule is
refused; bob revokes the grant and the command running on it ends; and a short grant expires
while its command is still running.

Everything happens in throwaway places (temporary users and group, a private mount namespace per
run in which a scratch configuration covers /etc/jitrun and /var/lib/jitrun, a temporary
directory for the broker) and is removed at the end: the host is left as it was found.
Needs root. Runs unattended (CI=true, no standard input).

Environment: DEMO_FAST=1 leaves out the pauses between steps (there are none when stdout is not
a terminal anyway); DEMO_RECORD=FILE writes what happened (outputs, exit codes, the audit events,
the names of everything created) as JSON, for tests/e2e/test_demo.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "harness"))
sys.path.insert(0, str(REPO / "tests" / "e2e_broker"))

import brokerlab as broker_lab  # noqa: E402
import jitlab  # noqa: E402
from jitlab import toml_value  # noqa: E402

WIDTH = 92
RULE = "net-debug"
TICKET = "NET-4711"
REASON = "packet loss on eth0, need tcpdump"
EXPIRY_TTL = "8s"  # the grant that runs out in the last step
PAUSE = 0.0 if os.environ.get("DEMO_FAST") == "1" or not sys.stdout.isatty() else 1.5


# ---- narration --------------------------------------------------------------------------------


def say(text: str = "") -> None:
    """Narration: plain sentences, wrapped."""
    for para in textwrap.dedent(text).strip("\n").split("\n\n"):
        print(textwrap.fill(" ".join(para.split()), WIDTH))
        print()
    sys.stdout.flush()


def step(n: int, title: str) -> None:
    if PAUSE:
        time.sleep(PAUSE)
    print("=" * WIDTH)
    print(f"Step {n}: {title}")
    print("=" * WIDTH)
    print()
    sys.stdout.flush()


def show(label: str, text: str, indent: str = "    ") -> None:
    if label:
        print(label)
    body = text.rstrip("\n") or "(nothing)"
    print(textwrap.indent(body, indent))
    print()
    sys.stdout.flush()


def prompt(who: str, command: str) -> None:
    print(f"{who}$ {command}")
    sys.stdout.flush()


def cap_lines(status_text: str) -> str:
    keep = [line for line in status_text.splitlines() if line.startswith(("Uid:", "Cap", "NoNewPrivs"))]
    return "\n".join(keep)


def decode_caps(hexmask: str) -> str:
    if shutil.which("capsh"):
        out = subprocess.run(["capsh", f"--decode=0x{hexmask}"], capture_output=True, text=True).stdout.strip()
        if out:
            return out
    names = jitlab.cap_names(int(hexmask, 16))
    return f"0x{hexmask}=" + (",".join(n.lower() for n in names) or "(none)")


def event_json(rec: jitlab.AuditRecord) -> str:
    if rec.json is not None:
        return json.dumps(rec.json, indent=2, ensure_ascii=False)
    return rec.raw.decode("utf-8", "backslashreplace")


END_FIELDS = ("event.action", "event.outcome", "user.name", "process.args", "jitrun.grant.id", "jitrun.end_reason",
              "jitrun.signal", "jitrun.duration_ms")


def event_fields(rec: jitlab.AuditRecord, names: tuple[str, ...]) -> str:
    """Some fields of an event, one per line (dotted names, JSON values)."""
    return "\n".join(f"{n}: {json.dumps(rec.get(n), ensure_ascii=False)}" for n in names if rec.get(n) is not None)


def check(cond: bool, what: str) -> None:
    if not cond:
        print(f"\n*** demo: unexpected result: {what}", file=sys.stderr)
        raise SystemExit(1)


# ---- the world ------------------------------------------------------------------------------------


@dataclass
class World:
    lab: jitlab.Lab
    netops: str
    alice: jitlab.User
    bob: jitlab.User
    carol: jitlab.User
    raw_socket: Path
    jitctl_bin: Path
    broker_dir: Path
    url: str = ""
    broker: subprocess.Popen | None = None
    record: dict = field(default_factory=dict)

    def jitctl(self, user: jitlab.User, *args: str, who: str | None = None, echo: bool = True,
               timeout: float = 60) -> subprocess.CompletedProcess:
        """`jitctl ARGS` as USER in the lab's namespace (its /etc/jitrun/client.toml names the
        broker); the prompt and the output are shown."""
        if echo:
            prompt(who or user.name, "jitctl " + " ".join(_quote(a) for a in args))
        cmd = self.lab.ns_command(user, [str(self.jitctl_bin), *args])
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
        p = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, env=env,
                           cwd=user.home, timeout=timeout)
        if echo:
            show("", p.stdout + p.stderr + ("" if p.returncode == 0 else f"(exit status {p.returncode})"))
        return p

    def broker_cmd(self, *args: str, echo: bool = True) -> subprocess.CompletedProcess:
        config = self.broker_dir / "broker.toml"
        if echo:
            prompt("root@broker", "jitbroker " + " ".join(_quote(a) for a in args))
        p = subprocess.run([str(broker_lab.JITBROKER), "--config", str(config), *args], capture_output=True,
                           text=True, stdin=subprocess.DEVNULL, timeout=60)
        if echo:
            show("", p.stdout + p.stderr)
        check(p.returncode == 0, f"jitbroker {' '.join(args)} failed ({p.returncode}): {p.stderr}")
        return p


def _quote(a: str) -> str:
    return f'"{a}"' if (" " in a or not a) else a


def note(w: World, key: str, value) -> None:
    """Keep a fact for DEMO_RECORD."""
    w.record[key] = value


def proc_result(p: subprocess.CompletedProcess) -> dict:
    return {"returncode": p.returncode, "stdout": p.stdout, "stderr": p.stderr}


def run_result(res: jitlab.RunResult) -> dict:
    return {"returncode": res.returncode, "stdout": res.out, "stderr": res.err,
            "events": [e.json for e in res.events if e.json is not None]}


# ---- the steps ----------------------------------------------------------------------------------


def people(lab: jitlab.Lab) -> World:
    step(1, "three people, and a private jitrun installation")
    netops = lab.add_group(label="netops")
    alice = lab.add_user(groups=[netops], label="alice")
    bob = lab.add_user(groups=[netops], label="bob")
    carol = lab.add_user(groups=[netops], label="carol")
    raw_socket = lab.compile_helper("raw-socket")
    jitctl_bin = lab.install_file("jitctl", lab.jitctl_bin.read_bytes(), 0o755)
    broker_dir = lab.tmp / "broker"
    broker_dir.mkdir(mode=0o700)
    say(f"""
        Three throwaway accounts, all in the group {netops} (the network team): {alice.name} (alice,
        who will need privilege), {bob.name} (bob) and {carol.name} (carol). They are ordinary
        accounts with no special rights, deleted at the end.

        jitrun is a setuid-root program, so we installed a root-owned copy with mode 4755 at
        {lab.jitrun}, next to jitctl. Every time they run here, they run in a private mount
        namespace where a scratch configuration is bind-mounted over /etc/jitrun and a scratch state
        directory over /var/lib/jitrun. This machine's own /etc/jitrun is never touched.

        For comparison we also compiled a tiny program, {raw_socket.name}, that tries to open a raw
        network socket, which the kernel only allows with the capability CAP_NET_RAW.
        """)
    return World(lab=lab, netops=netops, alice=alice, bob=bob, carol=carol, raw_socket=raw_socket,
                 jitctl_bin=jitctl_bin, broker_dir=broker_dir)


def start_broker(w: World) -> None:
    step(2, "the broker")
    port = broker_lab.free_port()
    w.url = f"http://127.0.0.1:{port}"
    d = w.broker_dir
    config = textwrap.dedent(f"""\
        id = "demo-broker"
        listen = "127.0.0.1:{port}"
        store = {toml_value(str(d / 'broker.db'))}
        signing_key = {toml_value(str(d / 'signing.key'))}
        admin_groups = []
        pending_expiry = "1h"

        [audit]
        socket = {toml_value(str(w.lab.audit.path))}

        [[workflow]]
        rules = ["{RULE}"]
        requesters = ["{w.netops}"]
        approvers = ["{w.netops}"]
        min_approvals = 2
        max_ttl = "1h"
        """)
    (d / "broker.toml").write_text(config)
    os.chmod(d / "broker.toml", 0o600)
    say(f"""
        The broker, jitbroker, turns "I need access" into a signed grant. Its configuration says who
        may ask for which rule and who must approve: for {RULE}, anyone in {w.netops} may ask, and
        two other members of {w.netops} must approve. It listens on 127.0.0.1 (port {port}) and
        sends its own audit events to syslog (here: the demo's socket).
        """)
    show(f"  {d}/broker.toml:", config)
    w.broker_cmd("init")
    prompt("root@broker", "jitbroker serve &")
    w.broker = broker_lab.serve(d / "broker.toml", w.url, d / "serve.log")
    note(w, "broker_pid", w.broker.pid)
    say(f"""
        `jitbroker init` made the broker's Ed25519 signing key and a fresh SQLite store;
        `jitbroker serve` (process {w.broker.pid}) now answers on {w.url}.
        """)


def enroll_host(w: World) -> None:
    step(3, "this machine trusts the broker, and the broker knows this machine")
    lab = w.lab
    public = w.broker_cmd("pubkey", echo=False).stdout.strip()
    pub_file = w.broker_dir / "broker-public.paserk"
    pub_file.write_text(public + "\n")
    (lab.conf / "keys.d" / "test.paserk").unlink()  # the lab's own key: here, only the broker signs
    lab.trust_key(pub_file, "demo-broker")
    prompt("root", "jitbroker pubkey > /etc/jitrun/keys.d/demo-broker.paserk")
    show("", public)
    say("""
        jitrun believes only grants signed by a key in /etc/jitrun/keys.d/: now that is the broker's
        public key, and nothing else.

        The broker, in turn, believes only enrolled hosts. Every jitctl call carries an attestation
        signed by this host's key through the setuid `jitrun attest`, saying which user asks, from
        which host; so the host makes a key pair and an admin enrolls its public half:
        """)
    p = w.jitctl(broker_lab.ROOT, "host-key", "init", who="root")
    check(p.returncode == 0, f"jitctl host-key init: {p.stderr}")
    add = [line.split() for line in p.stdout.splitlines() if line.strip().startswith("jitbroker host add")]
    check(len(add) == 1 and len(add[0]) == 5, f"jitctl host-key init printed no enrollment line: {p.stdout}")
    w.broker_cmd(*add[0][1:])
    client = f"broker = {toml_value(w.url)}\njitrun = {toml_value(str(lab.jitrun))}\n"
    lab._write_conf(lab.conf / "client.toml", client)
    show("  and /etc/jitrun/client.toml tells jitctl where the broker is (and which jitrun signs):", client)


def set_policy(w: World) -> str:
    step(4, "the local policy")
    policy = textwrap.dedent(f"""\
        [[rule]]
        name = "{RULE}"
        groups = ["{w.netops}"]
        hosts = ["demo-*"]
        commands = ["/usr/bin/cat /proc/self/status", "{w.raw_socket}", "/usr/bin/sleep *"]
        capabilities = ["CAP_NET_RAW"]
        max_duration = "1h"
        min_approvals = 2
        """)
    w.lab.set_policy(policy)
    say(f"""
        The host has the last word: its policy (/etc/jitrun/policy.toml) says who (the group
        {w.netops}), where (hosts named demo-*; this one is {w.lab.host}), what (three exact
        commands) and how (with CAP_NET_RAW only, never full root). Like every rule by default it
        needs a signed grant, here one with at least two approvals: nobody holds this right
        permanently.
        """)
    show("  /etc/jitrun/policy.toml:", policy)
    return policy


def without_grant(w: World) -> None:
    step(5, "alice, without a grant")
    alice = w.alice
    prompt(alice.name, str(w.raw_socket))
    res = w.lab.run_without_jitrun(alice, [str(w.raw_socket)])
    show("", res.out + res.err)
    prompt(alice.name, "jitrun cat /proc/self/status")
    res = w.lab.run_as_user(alice, ["/usr/bin/cat", "/proc/self/status"])
    show("", res.err + f"(exit status {res.returncode})")
    check(res.returncode == 1, "jitrun without a grant should refuse")
    check(f"jitctl request {RULE}" in res.err, f"the refusal should say how to ask: {res.err}")
    note(w, "refused_without_grant", run_result(res))
    say("""
        On her own alice cannot open a raw socket. jitrun refuses too, and says what to do: the rule
        exists, but it needs a grant, so ask for one.
        """)


def request_and_approve(w: World) -> str:
    step(6, "alice asks; bob approves; alice cannot approve herself; carol approves")
    p = w.jitctl(w.alice, "request", RULE, "--reason", REASON, "--ticket", TICKET, "--ttl", "15m")
    check(p.returncode == 0 and "waiting for 2 approvals" in p.stdout, f"jitctl request: {p}")
    rid = p.stdout.split()[1]
    check(broker_lab.ids_in(rid) == [rid], f"no request id in: {p.stdout}")
    note(w, "request", proc_result(p) | {"id": rid})
    say(f"""
        The broker recorded request {rid} and waits for two approvals. bob sees it in his queue:
        """)
    w.jitctl(w.bob, "requests", "--pending")
    p = w.jitctl(w.bob, "approve", rid, "--comment", "go ahead")
    check(p.returncode == 0, f"bob's approval: {p}")
    note(w, "approve_bob", proc_result(p))
    say("""
        alice is in the approving group too; may she give the second approval herself?
        """)
    p = w.jitctl(w.alice, "approve", rid)
    check(p.returncode == 1 and "own request" in p.stderr, f"alice approving her own request: {p}")
    note(w, "approve_self", proc_result(p))
    say("No: nobody approves their own request. carol does:")
    p = w.jitctl(w.carol, "approve", rid)
    check(p.returncode == 0 and "approved" in p.stdout, f"carol's approval: {p}")
    note(w, "approve_carol", proc_result(p))
    shown = json.loads(w.jitctl(w.alice, "show", rid, "--json", echo=False).stdout)
    note(w, "request_after", shown)
    check(shown["state"] == "approved" and shown["grant_id"], f"the request after two approvals: {shown}")
    w.jitctl(w.alice, "show", rid)
    return shown["grant_id"]


def sync_and_run(w: World, gid: str) -> jitlab.RunResult:
    step(7, "alice fetches the grant, and the command runs with exactly one capability")
    alice, lab = w.alice, w.lab
    p = w.jitctl(alice, "sync")
    check(p.returncode == 0 and gid in p.stdout, f"jitctl sync: {p}")
    grant = lab.grant_dir(alice) / gid
    check(grant.is_file(), f"jitctl sync did not store {grant}")
    say(f"""
        The grant, a PASETO v4.public token signed by the broker, is now in alice's grant store
        ({grant.parent}/), where jitrun finds it without being told. What it says:
        """)
    shown = w.jitctl(alice, "grant", "show", str(grant), echo=False)
    prompt(alice.name, f"jitctl grant show ~/.local/state/jitrun/grants/{gid}")
    show("", shown.stdout + shown.stderr)
    prompt(alice.name, "jitrun cat /proc/self/status")
    res = lab.run_as_user(alice, ["/usr/bin/cat", "/proc/self/status"])
    check(res.returncode == 0, f"the granted command should run: {res}")
    st = jitlab.parse_proc_status(res.out)
    show("  (the capability lines of its /proc/self/status)", cap_lines(res.out))
    show("  capsh --decode of CapEff:", decode_caps(st["CapEff"]))
    net_raw = jitlab.cap_mask("CAP_NET_RAW")
    for key in ("CapEff", "CapPrm", "CapAmb", "CapBnd"):
        check(int(st[key], 16) == net_raw, f"{key} should be exactly CAP_NET_RAW: {st[key]}")
    check(int(st["CapInh"], 16) == net_raw and st["NoNewPrivs"] == "1", f"CapInh/NoNewPrivs: {st}")
    note(w, "proc_status", {k: st[k] for k in ("Uid", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs")})
    note(w, "run", run_result(res))
    say(f"""
        The command ran as alice (uid {alice.uid}, not root) with one capability, CAP_NET_RAW, in its
        effective, permitted, inheritable and ambient sets, and a bounding set reduced to it: it
        cannot gain more, not even by running a setuid-root program (NoNewPrivs is 1). That is the
        rule's capability list, nothing more.
        """)
    prompt(alice.name, f"jitrun {w.raw_socket}")
    res2 = lab.run_as_user(alice, [str(w.raw_socket)])
    show("", res2.out + res2.err)
    check(res2.returncode == 0, f"raw socket under jitrun: {res2}")
    note(w, "raw_socket", run_result(res2))
    return res


def audit_trail(w: World, run: jitlab.RunResult, gid: str) -> None:
    step(8, "what the security team sees")
    start = run.event("elevate.start")
    check(start.get("jitrun.grant.id") == gid, f"elevate.start names another grant: {start.json}")
    check(sorted(start.get("jitrun.grant.approvers") or []) == sorted([w.bob.name, w.carol.name]),
          f"elevate.start should name bob and carol: {start.json}")
    check(start.get("jitrun.grant.reason") == REASON and start.get("jitrun.grant.ticket") == TICKET,
          f"elevate.start should carry the reason and the ticket: {start.json}")
    say("""
        Every elevation is logged to syslog as one JSON object per event (after the `@cee:` cookie,
        the format rsyslog and most SIEMs parse); here we catch the datagrams on the demo's own
        socket instead of /dev/log. The `cat` run above wrote this elevate.start: who ran what, with
        which capabilities, under which grant, approved by whom, for which reason and ticket.
        """)
    show(f"  elevate.start  (syslog priority <{start.pri}>: facility authpriv, severity {start.severity})",
         event_json(start))
    w.lab.audit.sync()
    broker_events = [e for e in w.lab.audit.since(0) if e.app == "jitbroker"]
    lines = [f"{e.action:<16} {e.get('user.name', '')}" + (f"  grant {e.get('jitrun.grant.id')}"
                                                          if e.get("jitrun.grant.id") else "")
             for e in broker_events]
    show("  The broker logged its side of the story (event, who acted):", "\n".join(lines))
    note(w, "elevate_start", start.json)


def refusal(w: World) -> None:
    step(9, "a refusal")
    prompt(w.alice.name, "jitrun id")
    res = w.lab.run_as_user(w.alice, ["/usr/bin/id"])
    show("", res.err + f"(exit status {res.returncode})")
    check(res.returncode == 1, "a command outside the rule should be refused")
    say("""
        /usr/bin/id is not one of the rule's commands, so the grant does not cover it. jitrun says so
        on one line, exits with status 1, and logs the refusal with a machine-readable code:
        """)
    for ev in res.events:
        show(f"  {ev.action}", event_json(ev))
    note(w, "refusal", run_result(res))
    step(10, "what may I run?")
    prompt(w.alice.name, "jitrun -l")
    res = w.lab.run_as_user(w.alice, None, options=["-l"])
    show("", res.out + res.err)


def _wait_for(pred, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        check(time.monotonic() < deadline, f"timed out waiting for {what}")
        time.sleep(0.05)


def revoke(w: World, gid: str) -> None:
    step(11, "bob revokes the grant while a command runs on it")
    alice, lab = w.alice, w.lab
    prompt(alice.name, "jitrun sleep 600 &")
    with lab.spawn_as_user(alice, [str(lab.jitrun), "--", "/usr/bin/sleep", "600"]) as run:
        _wait_for(lambda: "elevate.start" in [e.action for e in run.events()], "the long command to start")
        say("""
            alice starts a command that would take ten minutes. bob decides the incident is over and
            revokes the grant at the broker:
            """)
        t0 = time.monotonic()
        p = w.jitctl(w.bob, "revoke", gid, "--reason", "incident closed")
        check(p.returncode == 0, f"jitctl revoke: {p}")
        say("""
            Hosts learn about revocations from the broker's signed revocation list, which root
            fetches into /var/lib/jitrun/revocations (the jitrun-revocations-sync.timer does it every
            minute; here we run it at once):
            """)
        p = w.jitctl(broker_lab.ROOT, "revocations", "sync", who="root")
        check(p.returncode == 0 and gid in p.stdout, f"jitctl revocations sync: {p}")
        t_synced = time.monotonic()
        rc = run.wait(timeout=60)
        t_end = time.monotonic()
        check(rc is not None, f"the revoked command should end: {run}")
        ends = [e for e in run.events() if e.action == "elevate.end"]
        check(len(ends) == 1 and ends[0].get("jitrun.end_reason") == "revoked", f"elevate.end: {run}")
        output = run.output.decode(errors="replace")
    show(f"  (alice's terminal: the command ended with exit status {rc})", output)
    show("  elevate.end (some of its fields; it has the same who, what and grant fields as elevate.start):",
         event_fields(ends[0], END_FIELDS))
    say(f"""
        The watchdog that jitrun keeps beside every command looks at the revocation list every
        2 seconds; it found the grant there and ended the command (SIGTERM, then SIGKILL after the
        grace period, for the whole cgroup). From `jitctl revoke` to the end of the command:
        {t_end - t0:.1f} s ({t_synced - t0:.1f} s to revoke and fetch the list, {t_end - t_synced:.1f} s until
        the watchdog ended the command). In production add the timer's interval (up to a minute).
        """)
    note(w, "revoke", {"returncode": rc, "output": output, "end_event": ends[0].json,
                       "seconds_revoke_to_end": round(t_end - t0, 2),
                       "seconds_sync_to_end": round(t_end - t_synced, 2)})
    prompt(alice.name, "jitrun cat /proc/self/status")
    res = lab.run_as_user(alice, ["/usr/bin/cat", "/proc/self/status"])
    show("", res.err + f"(exit status {res.returncode})")
    check(res.returncode == 1 and res.event("elevate.deny").get("jitrun.deny_code") == "revoked",
          f"the revoked grant should be refused: {res}")
    note(w, "after_revoke", run_result(res))
    say("The revoked grant is refused from now on; `jitctl sync` also removes it from alice's store:")
    p = w.jitctl(alice, "sync")
    check(p.returncode == 0 and not (lab.grant_dir(alice) / gid).exists(), f"sync after revoke: {p}")


def expiry(w: World) -> None:
    step(12, "a grant runs out while its command is still running")
    alice, lab = w.alice, w.lab
    say(f"""
        Grants are short-lived. alice asks for {EXPIRY_TTL} this time (the workflow allows up to an
        hour), bob and carol approve, and she starts a ten-minute command under it. When the grant
        expires, jitrun ends the command's whole process tree (SIGTERM, then SIGKILL after a grace
        period) and exits with 128 + the signal number.
        """)
    p = w.jitctl(alice, "request", RULE, "--reason", "one more capture", "--ticket", TICKET, "--ttl", EXPIRY_TTL)
    check(p.returncode == 0, f"jitctl request: {p}")
    rid = p.stdout.split()[1]
    for approver in (w.bob, w.carol):
        check(w.jitctl(approver, "approve", rid).returncode == 0, f"approval of {rid}")
    check(w.jitctl(alice, "sync").returncode == 0, "jitctl sync")
    prompt(alice.name, "jitrun sleep 600")
    t0 = time.monotonic()
    res = lab.run_as_user(alice, ["/usr/bin/sleep", "600"], timeout=120)
    took = time.monotonic() - t0
    show("", res.err + f"(exit status {res.returncode}, after {took:.1f} s instead of 600 s)")
    check(res.returncode in (143, 137), f"expired command: {res}")
    end = res.event("elevate.end")
    check(end.get("jitrun.end_reason") == "expired", f"elevate.end: {end.json}")
    show("  elevate.end (some of its fields):", event_fields(end, END_FIELDS))
    say('The end event says why the command ended: jitrun.end_reason is "expired".')
    note(w, "expiry", run_result(res))


def stop_broker(w: World) -> None:
    if w.broker is not None:
        broker_lab.stop_process(w.broker)


def main() -> int:
    if os.geteuid() != 0:
        print("The demo needs root: it creates throwaway users, installs a setuid copy of jitrun and runs a broker.",
              file=sys.stderr)
        return 1
    t_start = time.monotonic()
    step(0, "build")
    say("First we build jitrun (the setuid helper), jitctl (the client) and jitbroker (the broker) with cargo.")
    # through make: it first installs the Debian packages the build needs (gcc, libc6-dev)
    subprocess.run(["make", "--no-print-directory", "-s", "build"], cwd=REPO, check=True, stdin=subprocess.DEVNULL)
    print("built target/debug/jitrun, target/debug/jitctl and target/debug/jitbroker\n")

    record: dict = {}
    with jitlab.Lab(host="demo-host") as lab:
        w = people(lab)
        w.record = record
        note(w, "users", {"alice": w.alice.name, "bob": w.bob.name, "carol": w.carol.name})
        note(w, "uids", {"alice": w.alice.uid, "bob": w.bob.uid, "carol": w.carol.uid})
        note(w, "group", w.netops)
        note(w, "paths", [str(p) for p in (lab.tmp, lab.install_dir, w.broker_dir, w.alice.home, w.bob.home,
                                           w.carol.home)])
        try:
            start_broker(w)
            enroll_host(w)
            set_policy(w)
            without_grant(w)
            gid = request_and_approve(w)
            note(w, "grant_id", gid)
            run = sync_and_run(w, gid)
            audit_trail(w, run, gid)
            refusal(w)
            revoke(w, gid)
            expiry(w)
            lab.audit.sync()
            note(w, "broker_events", [e.json for e in lab.audit.since(0) if e.app == "jitbroker" and e.json])
        finally:
            stop_broker(w)
            write_record(record)
        step(13, "cleaning up")
        leftovers = [lab.install_dir, lab.tmp, w.alice.home, w.bob.home, w.carol.home]
        names = [w.alice.name, w.bob.name, w.carol.name]
    gone = not any(jitlab._user_exists(n) for n in names) and not any(p.exists() for p in leftovers)
    check(gone and w.broker.poll() is not None, f"something was left behind: users {names}, {leftovers}, the broker")
    say(f"""
        The broker is stopped and its store, key and configuration are deleted; the throwaway users
        and their homes, the group, the setuid copy of jitrun and the scratch configuration are gone;
        the mount namespaces vanished with their processes. The host is as we found it.
        ({time.monotonic() - t_start:.0f} s in all.)

        That's jitrun: no standing privilege; a person asks with a reason, two others approve; one
        command runs with just enough capability, for just long enough, until the grant expires or
        is revoked; and every step is on the record.
        """)
    return 0


def write_record(record: dict) -> None:
    path = os.environ.get("DEMO_RECORD")
    if path:
        Path(path).write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    sys.exit(main())
