"""jitrun → a real rsyslogd → JSON files, in both framings, configured as docs/audit.md says.

A private rsyslogd (tests/harness/rsyslog.py) listens on its own imuxsock socket, which the
settings name as `audit.socket`; jitrun runs as a throwaway user whose name has a dot, a dash
and an underscore, with argv that needs every kind of escaping and a 100 KB argv. Every event
rsyslog wrote must validate against docs/audit.schema.json (RFC 5424: rebuilt from the
structured data), carry the argv escaped exactly as documented, and the big one must arrive as
ONE shortened event. The lines as rsyslog received them (`%rawmsg%`) also go through PyPI's
syslog-rfc5424-parser, whose SD params must round-trip to the same values.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import sys
from pathlib import Path

import jsonschema
import pytest
from syslog_rfc5424_parser import SyslogMessage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from jitlab import GECOS_TAG, User, _run  # noqa: E402
from rsyslog import Rsyslog, event_from_sd, find_rsyslogd, load_schema  # noqa: E402

pytestmark = pytest.mark.skipif(find_rsyslogd() is None and not os.environ.get("CI"), reason="rsyslogd is not installed (make deps)")

SD_ID = "jitrun@32473"
SEVERITY = {"elevate.start": 5, "elevate.end": 5, "elevate.deny": 4, "break_glass": 1, "policy.error": 3}
REASON = 'fix "flapping" link [eth0] \\ see ticket'
ODD_DIR = 'dir "x" ]\\y'
ODD_ARGV = [
    "/usr/bin/true",
    "line1\nline2",
    'say "hi"',
    "a]b",
    "back\\slash",
    b"\xff",
    b"caf\xc3\xa9 \xfe end",
    "\\xff",  # the text, not the byte: must stay distinguishable
    'fake] [x@1 a="b"]',
    "tab\tesc\x1b[31m del\x7f c1\u0085 ls\u2028",
]
# 100 KB of argv: one 60 000-byte argument and 100 of 400 bytes
BIG_ARGV = ["/usr/bin/true", "A" * 60_000] + [f"{i:03d}" + "b" * 397 for i in range(100)]


def escaped(arg: str | bytes) -> str:
    """docs/audit.md: valid UTF-8 as is, a backslash doubled, every other byte as \\xNN."""
    data = arg.encode() if isinstance(arg, str) else arg
    out = []
    for ch in data.decode("utf-8", "surrogateescape"):
        if ch == "\\":
            out.append("\\\\")
        elif 0xDC80 <= ord(ch) <= 0xDCFF:
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        else:
            out.append(ch)
    return "".join(out)


def rfc_unescape(value: str) -> str:
    """RFC 5424 §6.3.3: a backslash before '"', '\\' or ']' is dropped."""
    return re.sub(r'\\(["\\\]])', r"\1", value)


@pytest.fixture(scope="module")
def rsyslog():
    with Rsyslog() as rs:
        yield rs


@pytest.fixture(scope="module")
def odd_user(lab):
    """A throwaway user named jt.x-y_z<random> (removed with the lab's users)."""
    name = lab._name("jt.x-y_z")
    _run(["useradd", "-m", "-U", "-s", "/bin/sh", "-c", f"{GECOS_TAG}{os.getpid()}", name])
    pw = pwd.getpwnam(name)
    u = User(name=name, uid=pw.pw_uid, gid=pw.pw_gid, home=Path(pw.pw_dir), groups=[])
    lab.users.append(u)
    return u


@pytest.fixture(scope="module")
def schema():
    return load_schema()


def _session(e: dict) -> str:
    return e["jitrun"]["session_id"]


@pytest.mark.parametrize("framing", ["cee", "rfc5424"])
def test_jitrun_events_through_rsyslog(lab, world, rsyslog, odd_user, schema, framing):
    rs, u = rsyslog, odd_user
    lab.write_settings(framing=framing, socket=str(rs.socket))
    for f in (lab.state / "spool").glob("*.dgram"):  # left by earlier tests
        f.unlink()
    lab.set_policy(world.policy + f'\n[[rule]]\nname = "odd"\nusers = ["{u}"]\ncommands = ["/usr/bin/true **"]\n')
    n_events, n_raw = len(rs.read_events()), len(rs.read_raw())
    odd_dir = u.home / ODD_DIR
    lab._user_dirs(u, odd_dir)

    runs = [
        lab.run_as_user(u, ODD_ARGV, grant=lab.mint(u, "odd", approvers=[world.bob.name], ticket="OPS-7",
                                                    reason=REASON), cwd=odd_dir),
        lab.run_as_user(u, BIG_ARGV, grant=lab.mint(u, "odd")),
        lab.run_as_user(u, ["/usr/bin/uname", "-a"]),
        lab.run_as_user(u, ["/usr/bin/true", "glass"], grant=lab.mint(u, "odd", break_glass=True)),
    ]
    assert [r.returncode for r in runs] == [0, 0, 1, 0], "\n".join(map(str, runs))
    for r in runs:
        assert r.events == [], f"jitrun logged to the lab's socket, not rsyslog's:\n{r}"

    written = rs.read_events()[n_events:]
    raw = rs.read_raw()[n_raw:]
    assert len(written) == len(raw) == 8, (written, raw)
    if framing == "cee":
        events = written
    else:
        events = [event_from_sd(w["rfc5424-sd"][SD_ID]) for w in written]
        assert all(list(w) == ["rfc5424-sd"] and list(w["rfc5424-sd"]) == [SD_ID] for w in written), written

    validator = jsonschema.Draft202012Validator(schema)
    for e in events:
        bad = [f"{'/'.join(map(str, x.absolute_path))}: {x.message}" for x in validator.iter_errors(e)]
        assert not bad, f"rsyslog's {framing} output does not match docs/audit.schema.json: {bad}\n{e}"

    actions = [e["event"]["action"] for e in events]
    assert actions == ["elevate.start", "elevate.end", "elevate.start", "elevate.end", "elevate.deny",
                       "elevate.start", "break_glass", "elevate.end"], actions
    sessions = [_session(e) for e in events]
    assert sessions[0] == sessions[1] and sessions[2] == sessions[3] and sessions[5] == sessions[6] == sessions[7]
    assert len(set(sessions)) == 4
    for e in events:
        assert e["user"]["name"] == u.name and e["user"]["id"] == str(u.uid)

    # the odd argv, cwd and grant reason, escaped exactly as documented
    for e in events[0:2]:
        assert e["process"]["args"] == [escaped(a) for a in ODD_ARGV], e["process"]["args"]
        assert e["process"]["working_directory"] == escaped(str(odd_dir)), e["process"]["working_directory"]
        assert e["user"]["target"]["name"] == u.name
        assert e["jitrun"]["grant"]["reason"] == REASON
        assert e["jitrun"]["grant"]["ticket"] == "OPS-7"
        assert e["jitrun"]["grant"]["approvers"] == [world.bob.name]
        assert "args_truncated" not in e["jitrun"]
    assert "\\xff" in events[0]["process"]["args"] and "\\\\xff" in events[0]["process"]["args"]

    # 100 KB of argv: one start and one end, each shortened with the marker, never split
    for e in events[2:4]:
        args = e["process"]["args"]
        assert e["jitrun"]["args_truncated"] is True
        assert args[0] == "/usr/bin/true"
        assert any("…[truncated " in a for a in args), args
        assert sum(len(a) for a in args) < 8096
    assert sessions.count(sessions[2]) == 2
    assert events[4]["jitrun"]["deny_code"] == "command_not_allowed"
    assert events[6]["jitrun"]["grant"]["break_glass"] is True

    # the lines as rsyslog received them
    for line, e, w in zip(raw, events, written):
        action = e["event"]["action"]
        assert len(line.encode()) <= 8096, len(line.encode())
        assert not any(ord(c) < 0x20 or ord(c) == 0x7F for c in line), line[:300]
        m = re.match(r"<(\d+)>", line)
        assert m and int(m.group(1)) == 10 * 8 + SEVERITY[action], line[:80]
        if framing == "cee":
            assert re.match(r"<\d+>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d jitrun\[\d+\]: @cee:\{", line), line[:80]
            assert json.loads(line.split(": @cee:", 1)[1]) == w  # mmjsonparse saw the whole object
        else:
            msg = SyslogMessage.parse(line)
            assert msg.msgid == action and msg.appname == "jitrun" and msg.version == 1
            assert msg.hostname == lab.host
            assert list(msg.sd) == [SD_ID]
            params = {k: rfc_unescape(v) for k, v in msg.sd[SD_ID].items()}
            assert params == w["rfc5424-sd"][SD_ID], "syslog-rfc5424-parser and rsyslog disagree"
            assert event_from_sd(params) == e
    if framing == "rfc5424":  # the SD-PARAM escapes of RFC 5424 §6.3.3 were really needed
        assert r'\"say \\\"hi\\\"\"' in raw[0] and r'\"a\]b\"' in raw[0], raw[0]
