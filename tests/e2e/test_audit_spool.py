"""Nothing lost: while syslog (a private rsyslogd) is down, jitrun's events wait in the root-only
spool /var/lib/jitrun/spool and reach syslog later, in order, each once — sent by the next run
or by `jitctl audit flush` as root. With `audit.fail_closed = true` nothing runs while syslog
is down, and no elevate.start of such a refused run ever reaches syslog."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from jitlab import User, parse_datagram  # noqa: E402
from rsyslog import Rsyslog, find_rsyslogd  # noqa: E402

pytestmark = pytest.mark.skipif(find_rsyslogd() is None and not os.environ.get("CI"), reason="rsyslogd is not installed (make deps)")

ROOT = User(name="root", uid=0, gid=0, home=Path("/root"), groups=[])


def drop_spooled(lab) -> None:
    for f in (lab.state / "spool").glob("*.dgram"):
        f.unlink()


@pytest.fixture
def rs(lab):
    drop_spooled(lab)  # what earlier tests left would reach syslog first
    with Rsyslog() as r:
        yield r
    drop_spooled(lab)  # never leave events behind for the next test's runs


def spooled(lab) -> list[bytes]:
    """The waiting datagrams, in name (= event) order."""
    d = lab.state / "spool"
    return [f.read_bytes() for f in sorted(d.glob("*.dgram"))] if d.exists() else []


def keys(events: list[dict]) -> list[tuple[str, str]]:
    return [(e["jitrun"]["session_id"], e["event"]["action"]) for e in events]


def spooled_keys(datagrams: list[bytes]) -> list[tuple[str, str]]:
    recs = [parse_datagram(d) for d in datagrams]
    assert all(r.framing == "cee" for r in recs), recs
    return keys([r.json for r in recs])


def run_marked(lab, user, token, mark: str):
    return lab.run_as_user(user, ["/usr/bin/sh", "-c", f"echo {mark}"], grant=token)


def two_runs_while_down(lab, world, rs) -> tuple[list[bytes], list[tuple[str, str]]]:
    a = world.alice
    lab.write_settings(socket=str(rs.socket), fail_closed=False)
    assert rs.read_events() == []
    rs.stop()
    assert not rs.socket.exists()
    for mark in ("RAN1", "RAN2"):
        res = run_marked(lab, a, lab.mint(a, "plain"), mark)
        assert res.returncode == 0 and res.out == f"{mark}\n", str(res)
    d = lab.state / "spool"
    st = os.stat(d)
    assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o700, oct(st.st_mode)
    for f in d.glob("*.dgram"):
        fst = os.stat(f)
        assert fst.st_uid == 0 and stat.S_IMODE(fst.st_mode) & 0o077 == 0, (f, oct(fst.st_mode))
    waiting = spooled(lab)
    order = spooled_keys(waiting)
    assert [act for _, act in order] == ["elevate.start", "elevate.end"] * 2, order
    assert order[0][0] == order[1][0] != order[2][0] == order[3][0], order
    return waiting, order


def test_next_run_sends_the_spool_first_in_order_once(lab, world, rs):
    waiting, order = two_runs_while_down(lab, world, rs)
    rs.start()
    a = world.alice
    res = run_marked(lab, a, lab.mint(a, "plain"), "RAN3")
    assert res.returncode == 0 and res.out == "RAN3\n", str(res)
    events = rs.read_events()
    got = keys(events)
    assert got[:4] == order, got  # the spooled ones first, in order
    assert [act for _, act in got[4:]] == ["elevate.start", "elevate.end"], got
    assert got[4][0] not in {s for s, _ in order}
    assert rs.read_raw()[:4] == [d.decode() for d in waiting]  # the exact datagrams
    assert [e["process"]["args"][-1] for e in events] == ["echo RAN1"] * 2 + ["echo RAN2"] * 2 + ["echo RAN3"] * 2
    assert spooled(lab) == []
    # once: another run adds only its own two
    assert run_marked(lab, a, lab.mint(a, "plain"), "RAN4").returncode == 0
    assert len(rs.read_events()) == 8 and len(set(keys(rs.read_events()))) == 8


def test_jitctl_audit_flush_sends_the_spool(lab, world, rs):
    waiting, order = two_runs_while_down(lab, world, rs)
    rs.start()
    flush = lab.ns_command(ROOT, [str(lab.jitctl_bin), "audit", "flush"])
    p = subprocess.run(flush, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "sent 4" in p.stdout, p.stdout
    assert keys(rs.read_events()) == order
    assert rs.read_raw() == [d.decode() for d in waiting]
    assert spooled(lab) == []
    p = subprocess.run(flush, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "nothing to send" in p.stdout, p.stdout + p.stderr
    a = world.alice
    assert run_marked(lab, a, lab.mint(a, "plain"), "RAN3").returncode == 0
    got = keys(rs.read_events())
    assert got[:4] == order and len(got) == 6 and len(set(got)) == 6, got


def test_fail_closed_runs_nothing_and_never_delivers_its_start(lab, world, rs):
    a = world.alice
    lab.write_settings(socket=str(rs.socket), fail_closed=True)
    rs.stop()
    res = run_marked(lab, a, lab.mint(a, "plain"), "RAN1")
    assert res.returncode == 1, str(res)
    assert "RAN1" not in res.out
    assert len(res.err_lines) == 1 and res.err_lines[0].startswith("jitrun: "), str(res)
    assert "elevate.start" not in [act for _, act in spooled_keys(spooled(lab))]
    rs.start()
    res = run_marked(lab, a, lab.mint(a, "plain"), "RAN2")
    assert res.returncode == 0 and res.out == "RAN2\n", str(res)
    events = rs.read_events()
    starts = [e for e in events if e["event"]["action"] == "elevate.start"]
    assert [s["process"]["args"][-1] for s in starts] == ["echo RAN2"], events
    # what did arrive of the refused run is its refusal
    refused = [e for e in events if e["jitrun"]["session_id"] != starts[0]["jitrun"]["session_id"]]
    assert [(e["event"]["action"], e["jitrun"]["deny_code"]) for e in refused] == [("policy.error", "audit_unavailable")]
    assert events[0] is refused[0]  # and it came first
    assert spooled(lab) == []
