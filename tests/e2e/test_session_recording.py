"""Session recording by the setuid jitrun (issue 18): the asciicast v2 file it writes in
/var/log/jitrun/sessions (the lab's, bound there in each run's namespace), the session.io
events it sends while writing it, and what happens when it cannot record.

Without a terminal (these tests run jitrun on pipes), the command's stdout and stderr are
pipes jitrun relays and records, byte for byte. The terminal side is test_session_terminal.py."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "session"))
from e2e_support import TEST_SECURE_PATH, assert_ok  # noqa: E402
from session_e2e import (  # noqa: E402
    REPO, cast, check_end_names_the_file, datagram_lines, fill, output_text, recording_of, recordings,
    small_tmpfs, use_session_rules, wait_until,
)
from session_support import SiemRsyslog, asciinema_cat, find_rsyslogd, have  # noqa: E402

SESSIONS = "/var/log/jitrun/sessions"
needs_asciinema = pytest.mark.skipif(not have("asciinema") and not os.environ.get("CI"),
                                     reason="asciinema is not installed (make deps)")


@pytest.fixture(autouse=True)
def _rules(lab, world):
    use_session_rules(lab, world)


def write_settings(lab, record: str = "", **kw) -> None:
    """The lab's settings, with a [record] table."""
    lab.write_settings(secure_path=TEST_SECURE_PATH, **kw)
    if record:
        path = lab.conf_files / "jitrun.toml"
        lab._write_conf(path, path.read_text() + "\n[record]\n" + record)


def run(lab, world, argv, **kw):
    return lab.run_as_user(world.alice, argv, **kw)


def fetch(lab, session: str, source: Path, out: Path, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run([str(lab.jitctl_bin), "sessions", "fetch", session, "--from", str(source), "-o", str(out)],
                       capture_output=True)
    if check:
        assert p.returncode == 0, p
    return p


def session_io(res) -> list:
    return [e for e in res.events if e.action == "session.io"]


# ---- the file and the events


def test_a_recorded_run_writes_a_root_only_file_that_its_events_name(lab, world, tmp_path):
    script = "printf 'out 1\\n'; printf 'err 1\\n' >&2; printf 'out 2\\n'; exit 3"
    res = run(lab, world, ["/usr/bin/dash", "-c", script])
    assert_ok(res, 3)
    # stdout and stderr stay apart and exact (pipes, not a terminal: no \r\n)
    assert res.stdout == b"out 1\nout 2\n" and res.stderr == b"err 1\n", res
    path = recording_of(lab, res.events)
    st = path.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o600)
    assert stat.S_IMODE(lab.sessions.stat().st_mode) == 0o700
    header, events = cast(path)
    assert header["jitrun"]["session_id"] == path.stem == res.event("elevate.start").get("jitrun.session_id")
    # the command line as people read it: quoted, a backslash doubled (as in the audit events)
    quoted = script.replace("\\", "\\\\").replace("'", "'\\''")
    assert header["command"] == f"/usr/bin/dash -c '{quoted}'", header["command"]
    assert sorted(output_text(events).splitlines()) == ["err 1", "out 1", "out 2"]
    assert events[-1][1:] == ["x", "3"]
    start, end = res.event("elevate.start"), res.event("elevate.end")
    assert start.get("jitrun.recording.input") is False
    check_end_names_the_file(end, path)
    assert end.get("jitrun.recording.truncated") is False and end.get("jitrun.recording.file_complete") is True
    chunks = session_io(res)
    assert int(end.get("jitrun.recording.chunks")) == len(chunks) >= 3
    actions = res.actions()
    assert actions[0] == "elevate.start" and actions[-1] == "elevate.end", actions
    assert chunks[-1].get("jitrun.recording.final") is True
    # The events alone rebuild the identical file.
    rebuilt = tmp_path / "rebuilt.cast"
    fetch(lab, path.stem, datagram_lines(res.events, tmp_path / "syslog"), rebuilt)
    assert rebuilt.read_bytes() == path.read_bytes()


def test_the_caller_cannot_read_her_own_recording(lab, world):
    res = assert_ok(run(lab, world, ["/usr/bin/sh", "-c", "echo private"]))
    path = recording_of(lab, res.events)
    look = lab.spawn_as_user(world.alice, ["/usr/bin/cat", f"{SESSIONS}/{path.name}"])
    with look:
        assert look.wait(30) != 0
        assert b"Permission denied" in look.output, look.output


def test_record_input_records_what_reaches_the_command(lab, world):
    use_session_rules(lab, world, extra='record_input = true\nallow_risks = ["records-input"]')
    res = assert_ok(run(lab, world, ["/usr/bin/cat"], stdin=b"typed line\n"))
    assert res.stdout == b"typed line\n"
    assert res.event("elevate.start").get("jitrun.recording.input") is True
    _, events = cast(recording_of(lab, res.events))
    assert output_text(events, "i") == "typed line\n" and output_text(events) == "typed line\n"
    # Off by default: the command still gets its input, the recording does not.
    use_session_rules(lab, world)
    res = assert_ok(run(lab, world, ["/usr/bin/cat"], stdin=b"secret\n"))
    assert res.stdout == b"secret\n"
    _, events = cast(recording_of(lab, res.events))
    assert output_text(events, "i") == "" and output_text(events) == "secret\n"


@needs_asciinema
def test_hostile_output_never_breaks_the_file(lab, world):
    hostile = (b"\x1b]0;forged title\x07\x1b[2J\x1b[31mred\x1b[0m \x00 \x7f \x08 \"quoted\" \\ ] "
               b"[jitrun@32473 x=\"y\"] @cee:{\"a\":1}\n\xff\xfe half \xe2\x82 end \xf0\x9f\x98\x80\n"
               + "\u2028\u202e\ufeff\n".encode() + b"\\" * 5000 + b"\n")
    script = lab.user_file(world.alice, "hostile.bin", hostile, 0o644)
    res = assert_ok(run(lab, world, ["/usr/bin/cat", str(script)]))
    assert res.stdout == hostile
    path = recording_of(lab, res.events)
    for line in path.read_text(encoding="utf-8").split("\n")[:-1]:
        json.loads(line)
        assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c in "\u2028\u2029" for c in line), line[:100]
        assert len(line.encode()) <= 1536
    assert asciinema_cat(path) == hostile.decode("utf-8", "replace").encode()


# ---- a rule that records and cannot does not run


def assert_refused_to_record(res, marker: Path, why: str) -> None:
    assert res.returncode == 1, str(res)
    assert len(res.err_lines) == 1 and res.err_lines[0].startswith('jitrun: rule "rec-me" records its sessions'), res
    assert why in res.err_lines[0] and "nothing runs unrecorded" in res.err_lines[0], res
    assert "elevate.start" not in res.actions() and "session.io" not in res.actions(), res
    err = res.event("policy.error")
    assert err.get("jitrun.deny_code") == "recording_failed" and err.get("jitrun.rule") == "rec-me", err
    assert not marker.exists(), "the command ran unrecorded"


@pytest.mark.parametrize("how", ["missing", "group-readable", "not-root", "symlink"])
def test_a_rule_that_records_and_cannot_does_not_run(lab, world, how):
    marker = world.alice.home / f"ran-unrecorded-{how}"
    argv = ["/usr/bin/dash", "-c", f"touch {marker}"]
    saved = lab.sessions.stat()
    away = lab.sessions.with_name("sessions-away")
    elsewhere = world.alice.home / "my-sessions"
    try:
        if how == "missing":
            lab.sessions.rename(away)
        elif how == "group-readable":
            lab.sessions.chmod(0o750)
        elif how == "not-root":
            os.chown(lab.sessions, world.alice.uid, 0)
        else:
            lab.sessions.rename(away)
            lab._user_dirs(world.alice, elsewhere)
            os.symlink(elsewhere, lab.sessions)
        why = {"missing": "does not exist", "group-readable": "is mode 0750", "not-root": "owned by uid",
               "symlink": "symbolic link"}[how]
        assert_refused_to_record(run(lab, world, argv), marker, why)
        if how == "symlink":
            assert not any(elsewhere.iterdir()), "jitrun wrote through the link"
    finally:
        if lab.sessions.is_symlink():
            lab.sessions.unlink()
        if away.exists():
            away.rename(lab.sessions)
        os.chown(lab.sessions, 0, 0)
        lab.sessions.chmod(stat.S_IMODE(saved.st_mode))


def test_a_full_disk_at_the_start_refuses_the_run(lab, world):
    marker = world.alice.home / "ran-on-a-full-disk"
    with small_tmpfs("64k") as d:
        fill(d)
        res = lab.run_as_user(world.alice, ["/usr/bin/dash", "-c", f"touch {marker}"],
                              binds=[(d, SESSIONS)])
        assert_refused_to_record(res, marker, "cannot be started")
        assert "No space left on device" in res.err_lines[0], res
        assert [p.name for p in d.iterdir()] == ["filler"], "the failed recording was left behind"


MiB = "head -c 1048576 /dev/zero | tr '\\0' a"


@pytest.mark.parametrize("on_failure", ["end", "continue"])
def test_a_full_disk_during_the_run(lab, world, tmp_path, on_failure):
    """The disk fills while the command writes 1 MiB: with `end` (the default) the command is
    ended (`recording_failed`); with `continue` it runs to its end, elevate.end says the file is
    not whole, and the session.io events still carry the whole recording."""
    write_settings(lab, f'on_failure = "{on_failure}"\n')
    marker = world.alice.home / f"finished-{on_failure}"
    marker.unlink(missing_ok=True)
    script = f"{MiB}; sleep 2; touch {marker}"
    with small_tmpfs("256k") as d:
        res = lab.run_as_user(world.alice, ["/usr/bin/dash", "-c", script], binds=[(d, SESSIONS)])
        files = list(d.glob("*.cast"))
    end = res.event("elevate.end")
    assert len(files) == 1 and "No space left on device" in end.get("jitrun.recording.error"), end
    assert end.get("jitrun.recording.file_complete") is False
    if on_failure == "end":
        assert end.get("jitrun.end_reason") == "recording_failed", end
        assert res.returncode == 128 + 15 and not marker.exists(), res
    else:
        assert_ok(res)
        assert marker.exists() and end.get("jitrun.end_reason") == "exit"
        assert res.stdout == b"a" * 1048576
        rebuilt = tmp_path / "rebuilt.cast"
        fetch(lab, res.event("elevate.start").get("jitrun.session_id"),
              datagram_lines(res.events, tmp_path / "syslog"), rebuilt)
        assert int(end.get("jitrun.recording.size")) == rebuilt.stat().st_size
        _, events = cast(rebuilt)
        assert output_text(events) == "a" * 1048576


@pytest.mark.parametrize("on_max_bytes", ["end", "truncate"])
def test_the_size_cap_ends_or_truncates_and_says_so(lab, world, on_max_bytes):
    write_settings(lab, f'max_bytes = "64K"\non_max_bytes = "{on_max_bytes}"\n')
    marker = world.alice.home / f"finished-cap-{on_max_bytes}"
    marker.unlink(missing_ok=True)
    res = run(lab, world, ["/usr/bin/dash", "-c", f"{MiB}; sleep 2; touch {marker}"])
    end = res.event("elevate.end")
    path = recording_of(lab, res.events)
    assert path.stat().st_size <= 64 * 1024
    _, events = cast(path)
    markers = [e[2] for e in events if e[1] == "m"]
    assert len(markers) == 1 and "record.max_bytes (65536 bytes) reached" in markers[0], markers
    assert events[-1][1] == "x" and end.get("jitrun.recording.truncated") is True
    check_end_names_the_file(end, path)
    assert int(end.get("jitrun.recording.dropped_bytes")) > 0
    if on_max_bytes == "end":
        assert "the command is ended" in markers[0]
        assert end.get("jitrun.end_reason") == "recording_limit" and not marker.exists(), end
    else:
        assert "what follows is not recorded" in markers[0]
        assert_ok(res)
        assert marker.exists() and res.stdout == b"a" * 1048576


# ---- big output, and the copy that leaves the host


def test_100_mib_of_output_are_recorded_intact(lab, world, tmp_path):
    big = world.alice.home / "big.txt"
    line = b"".join(bytes([48 + (i % 75)]) for i in range(99)) + b"\n"
    with open(big, "wb") as f:
        for i in range(100 * 1024 * 1024 // len(line) + 1):
            f.write(line)
    os.chown(big, world.alice.uid, world.alice.gid)
    size = big.stat().st_size
    try:
        res = lab.run_as_user(world.alice, ["/usr/bin/cat", str(big)], timeout=900)
        assert_ok(res)
        assert len(res.stdout) == size and res.stdout == big.read_bytes()
        path = recording_of(lab, res.events)
        check_end_names_the_file(res.event("elevate.end"), path)
        _, events = cast(path)
        assert output_text(events).encode() == res.stdout
        chunks = session_io(res)
        assert len(chunks) > 10_000 and int(res.event("elevate.end").get("jitrun.recording.chunks")) == len(chunks)
        rebuilt = tmp_path / "rebuilt.cast"
        fetch(lab, path.stem, datagram_lines(res.events, tmp_path / "syslog"), rebuilt)
        assert rebuilt.read_bytes() == path.read_bytes()
    finally:
        # a few hundred MB: not left for pytest's kept temporary directories, nor the lab's
        for f in (big, tmp_path / "rebuilt.cast", tmp_path / "syslog"):
            f.unlink(missing_ok=True)
        for f in recordings(lab):
            if f.stat().st_size > 50 << 20:
                f.unlink()


@needs_asciinema
@pytest.mark.skipif(find_rsyslogd() is None and not os.environ.get("CI"), reason="rsyslogd is not installed")
@pytest.mark.parametrize("framing", ["cee", "rfc5424"])
def test_through_rsyslog_the_events_rebuild_the_file_and_it_plays_as_written(lab, world, tmp_path, framing):
    """The shipped SIEM drop-in's rsyslogd writes events.json; `jitctl sessions fetch` rebuilds
    the recording from it, byte for byte the file jitrun wrote, and `asciinema cat` of the
    rebuilt file prints exactly what the command wrote."""
    written = "".join(f"{i:04d} caf\u00e9 \u2713 \x1b[1mbold\x1b[0m \"q\" \\ ]\r\n" for i in range(3000)).encode()
    data = lab.user_file(world.alice, "written.bin", written, 0o644)
    (tmp_path / "rs").mkdir()
    with SiemRsyslog(tmp_path / "rs", framing) as rs:
        lab.write_settings(secure_path=TEST_SECURE_PATH, framing=framing, socket=str(rs.socket))
        res = assert_ok(lab.run_as_user(world.alice, ["/usr/bin/cat", str(data)]))
        assert res.stdout == written
        path = recordings(lab)[-1]
        rebuilt = tmp_path / "rebuilt.cast"
        # rsyslogd writes what it received in its own time: fetch until the file is whole.
        assert wait_until(lambda: fetch(lab, path.stem, rs.events_file, rebuilt, check=False).returncode == 0,
                          120), fetch(lab, path.stem, rs.events_file, rebuilt, check=False)
    assert rebuilt.read_bytes() == path.read_bytes()
    assert asciinema_cat(rebuilt) == written


# ---- which rules record


def test_the_settings_default_records_every_rule_without_a_record_key(lab, world):
    write_settings(lab, "default = true\n")
    res = assert_ok(lab.run_as_user(world.alice, ["/usr/bin/true", "x"], grant=lab.mint(world.alice, "plain")))
    assert recording_of(lab, res.events).exists()
    # A rule that says record = false is not recorded.
    lab.set_policy(world.policy, dropins={"40-quiet.toml": f'[[rule]]\nname = "quiet"\nusers = ["{world.alice}"]\n'
                                          'commands = ["/usr/bin/true"]\ngrant = "none"\nrecord = false\n'})
    res = assert_ok(lab.run_as_user(world.alice, ["/usr/bin/true"]))
    assert res.event("elevate.start").get("jitrun.recording.file") is None
    assert "session.io" not in res.actions()


def test_policy_explain_says_which_rules_record(lab, world, tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text(f'[[rule]]\nname = "rec"\nusers = ["{world.alice}"]\ncommands = ["/usr/bin/sh -c *"]\n'
                      'record = true\nrecord_input = true\n'
                      f'[[rule]]\nname = "plain-rule"\nusers = ["{world.alice}"]\ncommands = ["/usr/bin/true"]\n')
    out = lab.jitctl("policy", "explain", "--policy", policy, "--user", world.alice.name, "--host", "h",
                     "--rule", "rec", "--grant", "-", "--", "/usr/bin/sh", "-c", "x",
                     input=lab.mint(world.alice, "rec").encode()).stdout.decode()
    assert "record:   yes, output and input (record = true in the rule), on a pty from a terminal" in out, out
    out = lab.jitctl("policy", "explain", "--policy", policy, "--user", world.alice.name, "--host", "h",
                     "--grant", "-", "--", "/usr/bin/true",
                     input=lab.mint(world.alice, "plain-rule").encode()).stdout.decode()
    assert "record:   no (settings record.default = false)" in out, out


def test_the_break_glass_example_records_its_sessions(lab, world):
    """policy-examples/break-glass.toml, for a group of the lab: a break-glass grant runs the
    root login shell on a pty, recorded; the break_glass alert names the recording."""
    text = (REPO / "policy-examples" / "break-glass.toml").read_text()
    rule = text.split("[[test]]", 1)[0].replace('"sre-leads"', f'"{world.ops}"')
    assert "\nrecord = true" in rule
    # Root here lacks some capabilities in its bounding set (CAP_SYS_RESOURCE): ALL cannot be
    # granted on this host, one capability shows the same.
    rule = rule.replace('capabilities = ["ALL"]', 'capabilities = ["CAP_DAC_READ_SEARCH"]')
    lab.set_policy(world.policy, dropins={"40-break-glass.toml": rule})
    carol = world.carol
    token = lab.mint(carol, "break-glass", break_glass=True, reason="outage", ticket="INC-1")
    res = lab.run_as_user(carol, ["/usr/bin/bash", "--login"], grant=token, pty=True, stdin=b"echo in-root-$((40+2))\nexit\n")
    assert_ok(res)
    assert b"in-root-42" in res.stdout
    path = recording_of(lab, res.events)
    assert "in-root-42" in output_text(cast(path)[1])
    alert = res.event("break_glass")
    assert alert.get("jitrun.recording.file") == f"{SESSIONS}/{path.name}"
