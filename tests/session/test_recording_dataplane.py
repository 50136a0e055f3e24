"""The recording data plane with real tools (issue 18): recordings written by the real
Recorder (crates/jit-session, driven by its `record` example: a command's output read from a
pipe, session.io events sent with jit-audit's syslog sink) play in Debian's asciinema
exactly as the command wrote them; their session.io events, passed through a real rsyslogd
with each shipped configuration and framing, rebuild the identical file with `jitctl sessions
fetch`, which names missing, duplicated and reordered chunks; and `jitctl sessions
list|play|prune` read, play and prune them."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from session_support import (  # noqa: E402
    JITCTL, RECORD, Collector, Rsyslog, SiemRsyslog, asciinema_cat, build, find_rsyslogd, have, jitctl, record,
    wait_for,
)

needs_asciinema = pytest.mark.skipif(not have("asciinema") and not os.environ.get("CI"),
                                     reason="asciinema is not installed (make deps)")
needs_rsyslogd = pytest.mark.skipif(find_rsyslogd() is None and not os.environ.get("CI"),
                                    reason="rsyslogd is not installed (make deps)")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (recordings are root's; setpriv)")

# Bytes a hostile command writes: escape sequences (a title, a clear screen, a terminal query),
# NUL, BEL, DEL, form feeds, quotes, backslashes and brackets that look like RFC 5424
# structured data, C1 controls, line and paragraph separators, bidi overrides, a BOM,
# multi-byte characters, a 12 000-character line of backslashes, and plain text.
HOSTILE = [
    b"plain text\r\n",
    b"\x1b[1;31mred\x1b[0m \x1b]0;forged title\x07\x1b[2J\x1b[H\x1b[21t",
    b'"quoted" \\back\\slash ] [jitrun@32473 event.action="elevate.start"] @cee:{"x":1}\r\n',
    b"\x00\x07\x7f\t\x0b\x0c\r",
    "caf\u00e9 \U0001F600 \u20ac \u0085 \u2028 \u2029 \u202e \ufeff e\u0301 \u2713\n".encode(),
    b"\\" * 12000 + b"\n",
    b"end\r\n",
]

GENERATOR = """
import os, sys
pieces = {pieces!r}
for p in pieces:
    for i in range(0, len(p), {step}):
        os.write(1, p[i:i + {step}])
"""


def generator(tmp_path: Path, pieces: list[bytes], step: int = 3, name: str = "gen.py") -> list[str]:
    """A command that writes `pieces` in writes of `step` bytes (UTF-8 sequences cut in two)."""
    script = tmp_path / name
    script.write_text(GENERATOR.format(pieces=pieces, step=step))
    return [sys.executable, str(script)]


def expected_output(command: list[str]) -> bytes:
    return subprocess.run(command, capture_output=True, check=True).stdout


def session_id(n: int) -> str:
    return f"{n:032x}"


@pytest.fixture(scope="module", autouse=True)
def _built():
    build()


def cast_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")[:-1]


# ---- asciinema


@needs_asciinema
def test_asciinema_cat_prints_exactly_what_the_command_wrote(tmp_path):
    cmd = generator(tmp_path, HOSTILE, step=3)
    want = expected_output(cmd)
    want.decode("utf-8")  # valid UTF-8 throughout: cat must give back every byte
    out = tmp_path / "hostile.cast"
    collector = Collector(tmp_path / "log.sock")
    summary = record(out, collector.path, cmd, session=session_id(1), read_size=7)
    datagrams = collector.close()
    assert summary["size"] == out.stat().st_size and summary["replaced_bytes"] == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    # Every line is JSON, no line holds a control character, the exit is last.
    lines = cast_lines(out)
    for line in lines:
        json.loads(line)
        assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in line), line[:200]
    assert json.loads(lines[-1])[1:] == ["x", "0"]
    assert len(datagrams) == summary["datagrams"] == summary["chunks"]
    assert asciinema_cat(out) == want


@needs_asciinema
def test_invalid_utf8_plays_as_replacement_characters(tmp_path):
    """Bytes that are not UTF-8 are recorded as U+FFFD, one per maximal invalid sequence, as a
    terminal shows them: `asciinema cat` prints U+FFFD (EF BF BD) in their place, which is
    what Python's own "replace" decoding of the command's bytes gives."""
    pieces = [b"ok \xff\xfe mid \xe2\x82 cut ", b"\xc0\x80 overlong \xed\xa0\x80 surrogate ", b"end \xf0\x9f"]
    cmd = generator(tmp_path, pieces, step=2)
    raw = expected_output(cmd)
    out = tmp_path / "invalid.cast"
    collector = Collector(tmp_path / "log.sock")
    summary = record(out, collector.path, cmd, session=session_id(2), read_size=5)
    collector.close()
    shown = asciinema_cat(out)
    assert shown == raw.decode("utf-8", "replace").encode("utf-8")
    assert shown.count("\ufffd".encode()) == 9
    assert summary["replaced_bytes"] == 2 + 2 + 2 + 3 + 2


# ---- session.io through syslog, rebuilt by jitctl sessions fetch


def big_output(tmp_path: Path) -> list[str]:
    """~600 KiB: the hostile pieces many times, and numbered lines, in irregular writes."""
    pieces = [f"line {i:05d} {'x' * (i % 97)}\r\n".encode() for i in range(4000)]
    pieces[1000:1000] = HOSTILE * 20
    return generator(tmp_path, pieces, step=4093, name="big.py")


def fetch(session: str, *inputs: Path, out: Path, extra: tuple = (), check: bool = True):
    return jitctl("sessions", "fetch", session, "--from", *inputs, "-o", out, *extra, check=check)


def check_rebuilds(session: str, events: Path, original: Path, tmp_path: Path, tag: str) -> None:
    rebuilt = tmp_path / f"{tag}-rebuilt.cast"
    p = fetch(session, events, out=rebuilt)
    assert rebuilt.read_bytes() == original.read_bytes(), tag
    assert b"matches the final chunk's SHA-256" in p.stdout, p.stdout


def check_detects_damage(session: str, events: Path, original: Path, tmp_path: Path, tag: str) -> None:
    lines = events.read_bytes().splitlines(keepends=True)
    mine = [i for i, line in enumerate(lines) if session.encode() in line and b"session.io" in line]
    assert len(mine) > 10, f"{tag}: only {len(mine)} session.io lines"
    # A chunk removed: named by its sequence number; nothing written without --partial.
    cut = tmp_path / f"{tag}-cut.json"
    cut.write_bytes(b"".join(line for i, line in enumerate(lines) if i != mine[5]))
    out = tmp_path / f"{tag}-cut.cast"
    p = fetch(session, cut, out=out, check=False)
    assert p.returncode == 1, p
    assert b"chunk seq 5 is missing" in p.stderr, p.stderr
    assert not out.exists()
    p = fetch(session, cut, out=out, extra=("--partial",), check=False)
    assert p.returncode == 1 and out.exists()
    assert b"jitctl sessions fetch: chunk seq 5 is missing here" in out.read_bytes()
    # The last chunk lost: no final chunk.
    tail = tmp_path / f"{tag}-tail.json"
    tail.write_bytes(b"".join(line for i, line in enumerate(lines) if i != mine[-1]))
    p = fetch(session, tail, out=tmp_path / f"{tag}-tail.cast", check=False)
    assert p.returncode == 1 and b"no final chunk" in p.stderr, p.stderr
    # Two chunks swapped and one duplicated: harmless, reported, the file is identical.
    shuffled = list(lines)
    shuffled[mine[3]], shuffled[mine[7]] = shuffled[mine[7]], shuffled[mine[3]]
    shuffled.append(lines[mine[2]])
    mixed = tmp_path / f"{tag}-mixed.json"
    mixed.write_bytes(b"".join(shuffled))
    out = tmp_path / f"{tag}-mixed.cast"
    p = fetch(session, mixed, out=out)
    assert out.read_bytes() == original.read_bytes()
    assert b"arrived after chunk seq 7; put back in order" in p.stderr, p.stderr
    assert b"chunk seq 2 appears twice" in p.stderr, p.stderr
    # An altered chunk: its hash no longer matches.
    altered = list(lines)
    altered[mine[4]] = altered[mine[4]].replace(b"line 0", b"LINE 0", 1)
    assert altered[mine[4]] != lines[mine[4]]
    bad = tmp_path / f"{tag}-altered.json"
    bad.write_bytes(b"".join(altered))
    p = fetch(session, bad, out=tmp_path / f"{tag}-altered.cast", check=False)
    assert p.returncode == 1 and b"chunk seq 4" in p.stderr and b"does not match its SHA-256" in p.stderr, p.stderr


@needs_rsyslogd
@pytest.mark.parametrize("framing", ["cee", "rfc5424"])
def test_chunks_through_the_documented_rsyslog_config_rebuild_the_file(tmp_path, framing):
    """docs/audit.md's configuration (tests/harness/rsyslog.py runs it): the JSON it writes and
    the messages exactly as received (%rawmsg%) each rebuild the file."""
    session = session_id(10 if framing == "cee" else 11)
    out = tmp_path / "orig.cast"
    (tmp_path / "rsyslog").mkdir()
    with Rsyslog(tmp_path / "rsyslog") as rs:
        summary = record(out, rs.socket, big_output(tmp_path), framing=framing, session=session,
                         read_size=65536)
        rs.sync()
        events = [o for o in rs.read_events()]
        raw = rs.raw_file
    assert summary["chunks"] > 50 and not summary["truncated"]
    assert len([e for e in events if "session.io" in json.dumps(e)]) == summary["chunks"]
    # The lines of backslashes and quotes fill datagrams right up to rsyslog's default
    # maxMessageSize (8096): they arrived whole (the rebuild below checks every byte).
    sizes = [len(line.encode("utf-8", "surrogateescape")) for line in rs.read_raw() if "session.io" in line]
    assert len(sizes) == summary["chunks"]
    # How full each datagram gets depends on how the output arrived (reads of a pipe); packing
    # right up to the limit is checked deterministically by jit-session's own tests.
    assert max(sizes) <= 8096, max(sizes)
    check_rebuilds(session, rs.events_file, out, tmp_path, f"min-{framing}")
    check_rebuilds(session, raw, out, tmp_path, f"raw-{framing}")
    check_detects_damage(session, rs.events_file, out, tmp_path, f"min-{framing}")


@needs_rsyslogd
@needs_asciinema
@pytest.mark.parametrize("framing", ["cee", "rfc5424"])
def test_chunks_through_the_shipped_siem_dropins_rebuild_the_file(tmp_path, framing):
    """packaging/siem/rsyslog/60-jitrun-{cee,rfc5424}.conf: events.json rebuilds the file, and
    the rebuilt file plays in asciinema exactly as the command wrote."""
    session = session_id(20 if framing == "cee" else 21)
    cmd = big_output(tmp_path)
    out = tmp_path / "orig.cast"
    d = tmp_path / "rsyslog"
    d.mkdir()
    with SiemRsyslog(d, framing) as rs:
        summary = record(out, rs.socket, cmd, framing=framing, session=session, read_size=65536)
        rs.wait_for_lines(summary["chunks"])
    objs = [json.loads(line) for line in rs.events_file.read_text().splitlines()]
    assert len(objs) == summary["chunks"]
    # The drop-ins type the fields: integers, a list of strings, the final flag.
    rec = objs[-1]["jitrun"]["recording"]
    assert isinstance(rec["seq"], int) and isinstance(rec["offset"], int) and rec["final"] is True
    assert all(isinstance(line, str) for line in rec["lines"])
    check_rebuilds(session, rs.events_file, out, tmp_path, f"siem-{framing}")
    check_detects_damage(session, rs.events_file, out, tmp_path, f"siem-{framing}")
    assert asciinema_cat(tmp_path / f"siem-{framing}-rebuilt.cast") == expected_output(cmd)


def test_raw_datagrams_of_both_framings_rebuild_the_file(tmp_path):
    """The datagrams exactly as jitrun sends them (what a relay or auth.log keeps), mixed with
    another session's: `fetch` picks this session's and rebuilds its file."""
    files = {}
    for n, framing in enumerate(["cee", "rfc5424"]):
        out = tmp_path / f"{framing}.cast"
        col = Collector(tmp_path / f"{framing}.sock")
        record(out, col.path, generator(tmp_path, HOSTILE * 3, step=1000), framing=framing,
               session=session_id(30 + n), read_size=1024)
        files[framing] = (out, col.close())
    log = tmp_path / "mixed.log"
    log.write_bytes(b"\n".join(d for _, dgrams in files.values() for d in dgrams) + b"\n")
    for n, (framing, (orig, _)) in enumerate(files.items()):
        rebuilt = tmp_path / f"{framing}-rebuilt.cast"
        fetch(session_id(30 + n), log, out=rebuilt)
        assert rebuilt.read_bytes() == orig.read_bytes()


# ---- jitctl sessions list / play / prune


@pytest.fixture
def recordings(tmp_path):
    """A recordings directory as jitrun keeps it (root 0700, files 0600) with three
    recordings: alice's, bob's, and one cut short by the size cap."""
    d = tmp_path / "sessions"
    d.mkdir(mode=0o700)
    col = Collector(tmp_path / "log.sock")
    made = {}
    for n, (user, cmd, opts) in enumerate([
        ("alice", generator(tmp_path, [b"hello from alice\r\n", "\u00e9t\u00e9\r\n".encode()], name="a.py"), {}),
        ("bob", generator(tmp_path, [b"bob was here\r\n"], name="b.py"), {}),
        ("alice", generator(tmp_path, [b"y" * 200_000], step=4096, name="c.py"),
         {"max_bytes": 65536, "on_limit": "truncate"}),
    ]):
        sid = session_id(100 + n)
        path = d / f"{sid}.cast"
        made[sid] = (user, record(path, col.path, cmd, session=sid, user=user, **opts), path, cmd)
    col.close()
    return d, made


def test_list_shows_every_recording_and_filters(recordings):
    d, made = recordings
    rows = json.loads(jitctl("sessions", "list", "--dir", d, "--json").stdout)
    assert {r["session_id"] for r in rows} == set(made)
    by_id = {r["session_id"]: r for r in rows}
    for sid, (user, summary, path, _) in made.items():
        r = by_id[sid]
        assert (r["user"], r["size"], r["ended"], r["exit_status"]) == (user, summary["size"], True, "0")
        assert r["truncated"] == summary["truncated"]
        assert r["rule"] == "example" and r["run_as"] == "root"
    assert [r["user"] for r in json.loads(jitctl("sessions", "list", "--dir", d, "--json", "--user", "bob").stdout)] == ["bob"]
    assert json.loads(jitctl("sessions", "list", "--dir", d, "--json", "--since", "2099-01-01").stdout) == []
    assert len(json.loads(jitctl("sessions", "list", "--dir", d, "--json", "--since", "1h").stdout)) == 3
    text = jitctl("sessions", "list", "--dir", d).stdout.decode()
    assert "SESSION" in text and "exit 0, truncated" in text and "bob" in text, text
    # Files that are not recordings are ignored.
    (d / "notes.txt").write_text("x")
    assert len(json.loads(jitctl("sessions", "list", "--dir", d, "--json").stdout)) == 3


def test_play_writes_the_output_and_says_how_it_ended(recordings):
    d, made = recordings
    sid = session_id(100)
    p = jitctl("sessions", "play", sid, "--dir", d, "--speed", "1000")
    assert p.stdout == expected_output(made[sid][3])
    assert b"end of the recording: exit status 0" in p.stderr
    # By path, and a capped recording says so.
    capped = made[session_id(102)][2]
    p = jitctl("sessions", "play", capped, "--idle-limit", "0.001")
    assert p.stdout.startswith(b"y" * 1000) and len(p.stdout) < 65536
    assert b"truncated at record.max_bytes" in p.stderr, p.stderr
    p = jitctl("sessions", "play", "not-an-id", "--dir", d, check=False)
    assert p.returncode == 1 and b"neither a session id" in p.stderr


def test_follow_watches_a_recording_as_it_is_written(tmp_path):
    """A recording still being written: `play --follow` shows what is there, then what comes,
    and stops at the exit event. The producer's output comes from a FIFO the test feeds, so
    the recording grows while jitctl follows it (no timing in the assertions)."""
    d = tmp_path / "sessions"
    d.mkdir(mode=0o700)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    sid = session_id(200)
    path = d / f"{sid}.cast"
    col = Collector(tmp_path / "log.sock")
    producer = subprocess.Popen([str(RECORD), "--out", str(path), "--socket", str(col.path), "--session-id", sid,
                                 "--", "cat", str(fifo)], stdout=subprocess.PIPE)
    writer = open(fifo, "wb", buffering=0)
    try:
        writer.write(b"first part\r\n")
        wait_for(lambda: path.exists() and b"first part" in path.read_bytes(), "the first part recorded")
        follower = subprocess.Popen([str(JITCTL), "sessions", "play", "--follow", sid, "--dir", str(d)],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for i in range(5):
            writer.write(f"live {i}\r\n".encode())
            wait_for(lambda i=i: f"live {i}".encode() in path.read_bytes(), f"live {i} recorded")
        assert follower.poll() is None, "--follow stopped before the recording ended"
    finally:
        writer.close()  # the command sees EOF and exits: the recording ends
    assert producer.wait(timeout=120) == 0
    out, err = follower.communicate(timeout=120)
    col.close()
    assert out == b"first part\r\n" + b"".join(f"live {i}\r\n".encode() for i in range(5))
    assert b"end of the recording: exit status 0" in err


@needs_root
def test_prune_removes_only_old_recordings(recordings):
    d, made = recordings
    old, recent, other = session_id(100), session_id(101), session_id(102)
    ninety_one_days = time.time() - 91 * 86400
    os.utime(made[old][2], (ninety_one_days, ninety_one_days))
    os.utime(made[other][2], (ninety_one_days, ninety_one_days))
    stray = d / "notes.cast"
    stray.write_text("not a recording name")
    os.utime(stray, (ninety_one_days, ninety_one_days))
    link = d / f"{session_id(103)}.cast"
    link.symlink_to(made[recent][2])
    p = jitctl("sessions", "prune", "--older-than", "90d", "--dir", d, "--dry-run")
    assert p.stdout.count(b"would remove ") == 3, p.stdout
    assert made[old][2].exists() and made[other][2].exists()
    p = jitctl("sessions", "prune", "--older-than", "90d", "--dir", d)
    assert b"removed 2 recording(s)" in p.stdout, p.stdout
    assert not made[old][2].exists() and not made[other][2].exists()
    assert made[recent][2].exists() and stray.exists() and link.is_symlink()
    # As root, a directory others can write is refused.
    os.chmod(d, 0o770)
    p = jitctl("sessions", "prune", "--older-than", "1d", "--dir", d, check=False)
    assert p.returncode == 1 and b"not a directory that root owns and alone can write" in p.stderr
    assert made[recent][2].exists()


@needs_root
def test_recordings_are_root_only(recordings):
    """The directory is root's (0700): an unprivileged user is told to run jitctl as root."""
    d, _ = recordings
    os.chmod(d.parent, 0o755)
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
    for args in (["list"], ["play", session_id(100)], ["prune", "--older-than", "1d"]):
        p = subprocess.run(nobody + [str(JITCTL), "sessions", *args, "--dir", str(d)],
                           capture_output=True, timeout=60)
        assert p.returncode == 1, (args, p)
        assert b"permission denied" in p.stderr.lower() and b"run this as root" in p.stderr, (args, p.stderr)
