"""Forged audit events (issue 12, item 8): anyone may send `jitrun[4242]: @cee:{...}` to a
syslog socket, so the shipped rsyslog configurations accept jitrun's events only from uid 0 and
jitbroker's only from the broker's uid, as the kernel reports the sender (SCM_CREDENTIALS,
imuxsock's Annotate/ParseTrusted). docs/audit.md, "Trusting the sender".

A real rsyslogd (tests/harness/rsyslog.py) runs each configuration an admin is told to install:
the block of docs/audit.md, and the drop-ins packaging/siem/rsyslog/60-jitrun-{cee,rfc5424}.conf,
on a socket every user may reach (as /dev/log). Then:

- the setuid jitrun, run by a throwaway user, logs a start, an end and a refusal: all three
  arrive (the refusal is sent while jitrun still has the caller's real uid: it arrives only
  because jitrun names its effective uid in SCM_CREDENTIALS);
- another throwaway user sends what an attacker would: jitrun's own tag and PID, a well-formed
  `elevate.end` for the running session and a `break_glass` naming bob, in the framing the
  configuration reads (one cee copy also carries `"uid":0` in its JSON, to overwrite the
  credentials a parser would merge), and a line of the other framing: none reaches the events
  output; each is in forged.json with the attacker's real uid, and none reaches the host's
  other rules either;
- a broker event sent by the broker's user arrives; the same event from another user is
  forged;
- on a host where journald owns /dev/log (a private systemd-journald, tests/harness/journald.py,
  forwarding to rsyslog as Debian does), the cee drop-in reads the credentials journald forwards
  with each message: jitrun's events (its refusal too) arrive, a user's forgery does not.

Referenced from test_attacks.py; `make defence-check` removes the check (and jitrun's
credentials) and watches these tests fail.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from jitlab import User

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
import journald  # noqa: E402
from rsyslog import Rsyslog, find_rsyslogd, flatten  # noqa: E402

pytestmark = pytest.mark.skipif(find_rsyslogd() is None and not os.environ.get("CI"),
                                reason="rsyslogd is not installed (make deps)")

REPO = Path(__file__).resolve().parents[2]
DROPINS = REPO / "packaging" / "siem" / "rsyslog"
SD_ID = "jitrun@32473"
SYS_PYTHON = "/usr/bin/python3"  # the system's, which every throwaway user may run

# (configuration, jitrun's framing): the docs block reads both framings, each drop-in one.
CONFIGS = [("docs", "cee"), ("docs", "rfc5424"), ("cee-dropin", "cee"), ("rfc5424-dropin", "rfc5424")]


@pytest.fixture
def start_rsyslog():
    """start_rsyslog(config, broker_uid): a running rsyslogd with that configuration on a socket
    every user may reach; removed after the test."""
    started: list[Rsyslog] = []

    def start(config: str, broker_uid: int) -> Rsyslog:
        snippet = {"docs": None, "cee-dropin": DROPINS / "60-jitrun-cee.conf",
                   "rfc5424-dropin": DROPINS / "60-jitrun-rfc5424.conf"}[config]
        started.append(Rsyslog(snippet=snippet, broker_uid=broker_uid, open_to_users=True))
        return started[-1].start()

    yield start
    for rs in started:
        rs.close()


def nested_events(rs: Rsyslog, config: str, framing: str) -> list[dict]:
    """Every event the configuration wrote to its events output, as nested event objects."""
    if config == "docs":
        return rs.events(framing)
    return rs.read_events()


def cee_datagram(app: str, pid: int, severity: int, event: dict) -> str:
    now = datetime.now()
    ts = f"{now:%b} {now.day:2d} {now:%H:%M:%S}"  # as glibc's syslog(3) and jitrun write it
    return f"<{80 + severity}>{ts} {app}[{pid}]: @cee:{json.dumps(event, separators=(',', ':'))}"


def rfc5424_datagram(app: str, pid: int, severity: int, event: dict, host: str) -> str:
    def value(v) -> str:
        text = json.dumps(v, separators=(",", ":")) if isinstance(v, list) else (
            ("true" if v else "false") if isinstance(v, bool) else str(v))
        return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")

    flat = flatten(event)
    params = " ".join(f'{"process.thread.caps.effective" if k == "process.thread.capabilities.effective" else k}'
                      f'="{value(v)}"' for k, v in flat.items())
    ts = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"<{80 + severity}>1 {ts} {host} {app} {pid} {flat['event.action']} [{SD_ID} {params}] forged"


def datagram(framing: str, app: str, pid: int, severity: int, event: dict, host: str) -> str:
    if framing == "cee":
        return cee_datagram(app, pid, severity, event)
    return rfc5424_datagram(app, pid, severity, event, host)


def send_as(lab, user: User, socket_path: Path, datagrams: list[str]) -> None:
    """Send each datagram to the socket as ``user`` (a plain process of theirs: no jitrun)."""
    code = ("import json, socket, sys\n"
            "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
            "for d in json.loads(sys.argv[2]):\n"
            "    s.sendto(d.encode(), sys.argv[1])\n")
    res = lab.run_without_jitrun(user, [SYS_PYTHON, "-c", code, str(socket_path), json.dumps(datagrams)])
    assert res.returncode == 0, str(res)


def jitrun_procid(rs: Rsyslog, config: str, start: dict) -> int:
    """jitrun's own PID as its header gave it (the PROCID; process.pid is the command's)."""
    if config != "docs":
        return int(start["log"]["syslog"]["procid"])
    line = rs.read_raw()[0]
    return int(line.split(" jitrun[", 1)[1].split("]", 1)[0] if " jitrun[" in line else line.split()[4])


def key(e: dict) -> tuple[str, str]:
    return e["event"]["action"], e.get("jitrun", {}).get("session_id", "")


@pytest.fixture
def mallory(lab):
    return lab.add_user()


@pytest.fixture
def broker_user(lab):
    return lab.add_user()


def forgeries(framing: str, start: dict, jitrun_pid: int, bob: User, host: str, token: str) -> list[str]:
    """What the attacker sends: an elevate.end for the running session and a break_glass naming
    bob, with jitrun's own tag and PID, in the framing the configuration reads, plus the same end
    in the other framing; in cee, one copy also carries the credentials in its JSON."""
    start = {k: v for k, v in start.items() if k not in ("@timestamp", "log")}  # rsyslog's envelope
    end = json.loads(json.dumps(start))
    end["event"].update(action="elevate.end", outcome="success")
    end["jitrun"].pop("containment", None)
    end["jitrun"].update(end_reason="exit", duration_ms=1200)
    end["process"]["exit_code"] = 0
    end["jitrun"]["error"] = token
    glass = json.loads(json.dumps(start))
    glass["event"]["action"] = "break_glass"
    glass["jitrun"].pop("containment", None)
    glass["user"] = {"name": bob.name, "id": str(bob.uid), "target": {"name": "root", "id": "0"}}
    glass["jitrun"]["grant"] = {"id": "01JD5Q2V7Y3K8M1N4P6R9S0TAB", "kid": "k4.pid.forged", "issuer": "jitbroker@x",
                                "expires": "2099-01-01T00:00:00Z", "approvers": [], "break_glass": True,
                                "reason": token}
    other = "rfc5424" if framing == "cee" else "cee"
    out = [datagram(framing, "jitrun", jitrun_pid, 5, end, host),
           datagram(framing, "jitrun", jitrun_pid, 1, glass, host),
           datagram(other, "jitrun", jitrun_pid, 5, end, host)]
    if framing == "cee":
        out.append(datagram("cee", "jitrun", jitrun_pid, 5, dict(end, uid=0, pid=jitrun_pid, gid=0), host))
    return out


def broker_event(token: str) -> dict:
    return {"event": {"action": "request.create", "kind": "event"}, "jitrun": {"schema_version": 1,
            "request": {"id": "01JD5Q2V7Y3K8M1N4P6R9S0TAC"}, "rule": "db-restart",
            "grant": {"reason": token, "break_glass": False}}, "user": {"name": "alice"}}


@pytest.mark.parametrize("config,framing", CONFIGS, ids=[f"{c}-{f}" for c, f in CONFIGS])
def test_forged_audit_events_from_a_user_never_reach_the_events_output(lab, world, mallory, broker_user,
                                                                       start_rsyslog, config, framing):
    token = f"FORGED-{secrets.token_hex(6)}"
    rs = start_rsyslog(config, broker_uid=broker_user.uid)
    try:
        lab.write_settings(framing=framing, socket=str(rs.socket))
        for f in (lab.state / "spool").glob("*.dgram"):  # left by earlier tests
            f.unlink()
        # The real thing: a run with a grant (start, end) and a refusal, by the setuid jitrun.
        ok = lab.run_as_user(world.alice, ["/usr/bin/true", "genuine"], grant=lab.mint(world.alice, "plain"))
        refused = lab.run_as_user(world.alice, ["/usr/bin/uname", "-a"])
        assert ok.returncode == 0 and refused.returncode == 1, f"{ok}\n{refused}"
        genuine = nested_events(rs, config, framing)
        assert [e["event"]["action"] for e in genuine] == ["elevate.start", "elevate.end", "elevate.deny"], genuine
        start = next(e for e in genuine if e["event"]["action"] == "elevate.start")
        assert start["user"]["name"] == world.alice.name
        assert genuine[2]["user"]["id"] == str(world.alice.uid)
        jitrun_pid = jitrun_procid(rs, config, start)

        # The attack: the same tag and PID, well-formed events, from an ordinary user.
        forged = forgeries(framing, start, jitrun_pid, world.bob, lab.host, token)
        send_as(lab, mallory, rs.socket, forged)
        # The broker: its event from its own uid arrives; the same from mallory does not.
        glass_token = f"{token}-broker"
        broker_dgram = datagram(framing, "jitbroker", 777, 6, broker_event(glass_token), lab.host)
        send_as(lab, broker_user, rs.socket, [broker_dgram])
        send_as(lab, mallory, rs.socket, [broker_dgram.replace(glass_token, f"{glass_token}-mallory")])
        rs.sync()
    finally:
        rs.stop()

    events = nested_events(rs, config, framing)
    assert [key(e) for e in events[:3]] == [key(e) for e in genuine]
    after = events[3:]
    # Nothing the attacker sent is an event; the broker's own is.
    assert [e["event"]["action"] for e in after] == ["request.create"], after
    assert [e for e in events if token in json.dumps(e)] == after, events
    assert after[0]["jitrun"]["grant"]["reason"] == glass_token
    assert [e["event"]["action"] for e in events].count("elevate.end") == 1
    assert "break_glass" not in [e["event"]["action"] for e in events]

    # Every forgery is on record as one, with the uid the kernel gave for its sender.
    recorded = rs.read_forged()
    assert len(recorded) == len(forged) + 1, recorded
    for r in recorded:
        if config == "docs":
            assert r["uid"] == str(mallory.uid) and token in r["message"], r
        else:
            assert r["event"]["kind"] == "alert" and r["event"]["action"] == "audit.forged", r
            assert r["user"]["id"] == str(mallory.uid), r
            assert token in r["event"]["original"], r
            assert r["log"]["syslog"]["appname"] in ("jitrun", "jitbroker")
            assert r["host"]["name"]
    if config != "docs":
        reasons = {r["event"]["reason"] for r in recorded}
        assert f"jitrun events come from uid 0 only; this one came from uid {mallory.uid}" in reasons, reasons
        assert (f"jitbroker events come from uid {broker_user.uid} only; this one came from uid {mallory.uid}"
                in reasons), reasons
        # ... and none of them goes on to the host's other rules (auth.log) either.
        assert not any(token in line for line in rs.read_rest()), rs.read_rest()


@pytest.mark.skipif(not journald.available() and not os.environ.get("CI"),
                    reason="systemd-journald is not installed (Debian package systemd)")
def test_forged_events_through_journald_are_caught_by_the_credentials_it_forwards(lab, world, mallory):
    """journald owns /dev/log; it keeps each sender's credentials (_UID) and forwards every
    message to rsyslog's socket with them. jitrun (cee framing, the one journald understands)
    logs to journald; so does the attacker."""
    token = f"FORGED-{secrets.token_hex(6)}"
    with journald.Journald() as jd, Rsyslog(snippet=DROPINS / "60-jitrun-cee.conf",
                                            socket_path=jd.forward_socket) as rs:
        try:
            lab.write_settings(framing="cee", socket=str(jd.dev_log))
            for f in (lab.state / "spool").glob("*.dgram"):
                f.unlink()
            ok = lab.run_as_user(world.alice, ["/usr/bin/true", "genuine"], grant=lab.mint(world.alice, "plain"))
            refused = lab.run_as_user(world.alice, ["/usr/bin/uname", "-a"])
            assert ok.returncode == 0 and refused.returncode == 1, f"{ok}\n{refused}"
            rs.sync(via=jd.dev_log)
            start = next(e for e in rs.read_events() if e["event"]["action"] == "elevate.start")
            send_as(lab, mallory, jd.dev_log, forgeries("cee", start, int(start["log"]["syslog"]["procid"]),
                                                          world.bob, lab.host, token))
            rs.sync(via=jd.dev_log)
        finally:
            rs.stop()
        events, recorded = rs.read_events(), rs.read_forged()
    assert [e["event"]["action"] for e in events] == ["elevate.start", "elevate.end", "elevate.deny"], events
    assert not any(token in json.dumps(e) for e in events)
    assert len(recorded) == len(forgeries("cee", start, 1, world.bob, lab.host, token)), recorded
    for r in recorded:
        assert r["user"]["id"] == str(mallory.uid) and token in r["event"]["original"], r
