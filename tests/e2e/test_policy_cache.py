"""The compiled policy cache (/var/lib/jitrun/policy.snapshot): written after a run once the
policy files have settled, used by the next runs, never trusted when it is not root's own
0600 regular file or does not match the policy files on disk, and never changes a decision.

The snapshot layout is in crates/jit-policy/src/snapshot.rs; `forge` below re-keys a real
snapshot (as root could), which is how these tests show that a snapshot IS used when it is
trusted (the control) and is NOT used when it is not."""

from __future__ import annotations

import os
import re
import struct
import sys
import time
from pathlib import Path

import pytest
from e2e_support import assert_denied, assert_ok, status_of

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import bench_policy  # noqa: E402

# jitrun writes a snapshot only when every policy file is older than this (policy_cache.rs).
SETTLE = 2.0
MAGIC = b"JITPSNAP"
# the format version the built jitrun writes (jit-policy's snapshot.rs), read from the source so
# that a format change cannot leave this test checking the old number
FORMAT = int(re.search(r"pub const FORMAT: u32 = (\d+);",
                       (Path(__file__).resolve().parents[2] / "crates/jit-policy/src/snapshot.rs").read_text()).group(1))
# magic, format, key_len, rule_count, records_at, 3 × (bucket_count, directory_at); then the checksum
HEAD = struct.Struct("<8sIIIQ" + "IQ" * 3)
STATUS = ["/usr/bin/cat", "/proc/self/status"]


def snapshot_path(lab) -> Path:
    return lab.state / "policy.snapshot"


def settle() -> None:
    """Let the policy files age past SETTLE, so that the next run may write a snapshot."""
    time.sleep(SETTLE + 0.3)


def checksum(*parts: bytes) -> int:
    """The snapshot's checksum (snapshot.rs `checksum`)."""
    k, m = 0x9E3779B97F4A7C15, 0xFFFFFFFFFFFFFFFF

    def mix(h: int, w: int) -> int:
        h = ((h ^ w) * k) & m
        return ((h << 31) | (h >> 33)) & m

    h = 0x6A09E667F3BCC908
    for p in parts:
        full = len(p) - len(p) % 8
        for i in range(0, full, 8):
            h = mix(h, int.from_bytes(p[i:i + 8], "little"))
        h = mix(h, int.from_bytes(p[full:].ljust(8, b"\0"), "little"))
        h = mix(h, len(p))
    return h


def parse(snap: bytes) -> tuple[bytes, int, int, list[tuple[int, int]]]:
    """(key, rule_count, records_at, [(bucket_count, directory_at)] × 3) of a snapshot."""
    f = HEAD.unpack_from(snap)
    assert f[0] == MAGIC and f[1] == FORMAT
    key_len, count, records_at = f[2], f[3], f[4]
    tables = [(f[5 + 2 * i], f[6 + 2 * i]) for i in range(3)]
    return snap[HEAD.size + 8:HEAD.size + 8 + key_len], count, records_at, tables


def key_of(snap: bytes) -> bytes:
    return parse(snap)[0]


def forge(snap: bytes, key: bytes) -> bytes:
    """The same rules as ``snap`` under another key, every offset moved and every checksum
    recomputed: what root could write (the layout is in snapshot.rs)."""
    old_key, count, records_at, tables = parse(snap)
    delta = len(key) - len(old_key)
    body = bytearray(snap[records_at:])
    for buckets, dir_at in tables:
        for b in range(buckets):
            entry = dir_at + 12 * b
            at, length = struct.unpack_from("<QI", snap, entry)
            blob = bytearray(snap[at:at + length])
            p, (n,) = 9, struct.unpack_from("<I", blob, 5)
            for _ in range(n):
                p += 4 + struct.unpack_from("<I", blob, p)[0]
                (k,), p = struct.unpack_from("<I", blob, p), p + 4
                for _ in range(k):
                    i, rec_at, rec_len = struct.unpack_from("<IQI", blob, p)
                    struct.pack_into("<IQI", blob, p, i, rec_at + delta, rec_len)
                    p += 16
            struct.pack_into("<Q", blob, len(blob) - 8, checksum(bytes(blob[:-8])))
            body[at - records_at:at - records_at + length] = blob
            struct.pack_into("<QI", body, entry - records_at, at + delta, length)
    head = HEAD.pack(MAGIC, FORMAT, len(key), count, records_at + delta,
                     *[x for c, d in tables for x in (c, d + delta)])
    return head + struct.pack("<Q", checksum(head, key)) + key + bytes(body)


def write_snapshot(lab, data: bytes, uid: int = 0, mode: int = 0o600) -> Path:
    p = snapshot_path(lab)
    p.unlink(missing_ok=True)
    p.write_bytes(data)
    os.chown(p, uid, 0)
    os.chmod(p, mode)
    return p


def identity(p: Path) -> tuple:
    st = p.lstat()
    return st.st_ino, st.st_mtime_ns, st.st_size


def standing_policy(w, command: str) -> str:
    """A policy whose only rule lets alice run ``command`` with no grant."""
    return f"""
[[rule]]
name = "cache-standing"
users = ["{w.alice}"]
commands = ["{command}"]
grant = "none"
"""


def warm(lab, user) -> bytes:
    """Settle the policy files, run once (which writes the snapshot), return the snapshot."""
    settle()
    snapshot_path(lab).unlink(missing_ok=True)
    res = lab.run_as_user(user, ["/usr/bin/true"])
    p = snapshot_path(lab)
    assert p.is_file(), f"no snapshot after a run with settled policy files\n{res}"
    return p.read_bytes()


def test_snapshot_is_written_root_0600_once_the_files_settle(lab, world):
    p = snapshot_path(lab)
    lab.set_policy(world.policy)
    p.unlink(missing_ok=True)
    # Files written just now: the run loads them in full and leaves no snapshot (racy window).
    assert_ok(lab.run_as_user(world.alice, ["/usr/bin/id"]))
    assert not p.exists()
    settle()
    res = assert_ok(lab.run_as_user(world.alice, ["/usr/bin/id"]))
    assert res.event("elevate.start").get("jitrun.rule") == "standing"
    st = p.lstat()
    assert p.is_file() and not p.is_symlink()
    assert (st.st_uid, st.st_mode & 0o7777, st.st_nlink) == (0, 0o600, 1)
    snap = p.read_bytes()
    key, count, _, _ = parse(snap)
    assert count == world.policy.count("[[rule]]")
    assert b"/etc/jitrun/policy.toml" in key and b"/etc/jitrun/policy.d" in key
    # No temporary files are left behind.
    assert [f.name for f in lab.state.iterdir() if "snapshot" in f.name] == ["policy.snapshot"]
    # A warm run uses it and leaves it alone.
    before = identity(p)
    assert_ok(lab.run_as_user(world.alice, ["/usr/bin/id"]))
    assert identity(p) == before


def test_list_reads_the_snapshot_but_never_writes_it(lab, world):
    lab.set_policy(world.policy, dropins={})
    settle()
    p = snapshot_path(lab)
    p.unlink(missing_ok=True)
    cold = assert_ok(lab.run_as_user(world.alice, None, options=["-l"]))
    assert "net-debug" in cold.out
    assert not p.exists(), "jitrun -l wrote the policy snapshot"
    assert_ok(lab.run_as_user(world.alice, ["/usr/bin/id"]))  # a run writes it
    before = identity(p)
    assert assert_ok(lab.run_as_user(world.alice, None, options=["-l"])).out == cold.out
    assert identity(p) == before


def test_a_trusted_snapshot_is_used(lab, world):
    """The control for the tests below: a forged snapshot that is root's own 0600 file and
    carries the current key IS believed (root can always change the policy)."""
    lab.set_policy(standing_policy(world, "/usr/bin/true"))
    allowing = warm(lab, world.alice)
    lab.set_policy(standing_policy(world, "/usr/bin/tty"))
    current = warm(lab, world.alice)
    assert_denied(lab.run_as_user(world.alice, ["/usr/bin/true"]), "command_not_allowed")
    write_snapshot(lab, forge(allowing, key_of(current)))
    res = assert_ok(lab.run_as_user(world.alice, ["/usr/bin/true"]))
    assert res.event("elevate.start").get("jitrun.rule") == "cache-standing"


@pytest.mark.parametrize("tamper", ["corrupt-record", "garbage", "truncated", "user-owned", "world-readable",
                                    "group-readable", "symlink", "hard-link", "stale-key"])
def test_an_untrusted_or_damaged_snapshot_is_ignored_and_rebuilt(lab, world, tamper, tmp_path):
    lab.set_policy(standing_policy(world, "/usr/bin/true"))
    allowing = warm(lab, world.alice)
    lab.set_policy(standing_policy(world, "/usr/bin/tty"))
    current = warm(lab, world.alice)
    forged = forge(allowing, key_of(current))
    p = snapshot_path(lab)
    outside = lab.state.parent / f"outside-{tamper}"
    try:
        if tamper == "corrupt-record":
            bad = bytearray(forged)
            bad[parse(forged)[2] + 12] ^= 0x01  # inside the (only) rule's record

            write_snapshot(lab, bytes(bad))
        elif tamper == "garbage":
            write_snapshot(lab, b"\0" * 64 + forged[64:])
        elif tamper == "truncated":
            write_snapshot(lab, forged[:-1])
        elif tamper == "user-owned":
            write_snapshot(lab, forged, uid=world.alice.uid)
        elif tamper == "world-readable":
            write_snapshot(lab, forged, mode=0o644)
        elif tamper == "group-readable":
            write_snapshot(lab, forged, mode=0o640)
        elif tamper == "symlink":
            outside.write_bytes(forged)
            os.chmod(outside, 0o600)
            p.unlink(missing_ok=True)
            p.symlink_to(outside)
        elif tamper == "hard-link":
            outside.write_bytes(forged)
            os.chmod(outside, 0o600)
            p.unlink(missing_ok=True)
            os.link(outside, p)
        elif tamper == "stale-key":
            write_snapshot(lab, forge(allowing, key_of(current).replace(b"ctime=", b"ctime=1")))
        assert_denied(lab.run_as_user(world.alice, ["/usr/bin/true"]), "command_not_allowed")
        # Rebuilt from the policy files: root's own regular 0600 file, the very bytes a clean
        # rebuild gives (encoding is deterministic).
        st = p.lstat()
        assert not p.is_symlink() and p.is_file()
        assert (st.st_uid, st.st_mode & 0o7777, st.st_nlink) == (0, 0o600, 1)
        assert p.read_bytes() == current
        if outside.exists():
            assert outside.read_bytes() == forged, "jitrun wrote through a link"
        assert_ok(lab.run_as_user(world.alice, ["/usr/bin/tty"], pty=True))
    finally:
        outside.unlink(missing_ok=True)


def test_the_state_directory_must_be_roots_alone(lab, world):
    lab.set_policy(standing_policy(world, "/usr/bin/true"))
    allowing = warm(lab, world.alice)
    lab.set_policy(standing_policy(world, "/usr/bin/tty"))
    current = warm(lab, world.alice)
    write_snapshot(lab, forge(allowing, key_of(current)))
    os.chmod(lab.state, 0o755)
    try:
        assert_denied(lab.run_as_user(world.alice, ["/usr/bin/true"]), "command_not_allowed")
    finally:
        os.chmod(lab.state, 0o700)


def _edit_in_place(path: Path, old: bytes, new: bytes) -> None:
    """Same inode, same size, same mtime and atime: only the ctime tells."""
    assert len(old) == len(new)
    st = path.stat()
    data = path.read_bytes()
    assert data.count(old) == 1
    with open(path, "r+b") as f:
        f.write(data.replace(old, new))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (st.st_ino, st.st_size, st.st_mtime_ns)
    assert after.st_ctime_ns != st.st_ctime_ns


@pytest.mark.parametrize("where", ["policy.toml", "policy.d"])
def test_a_same_size_edit_that_only_changes_ctime_is_seen(lab, world, where):
    text = standing_policy(world, "/usr/bin/true")
    if where == "policy.toml":
        lab.set_policy(text, dropins={})
        path = lab.conf / "policy.toml"
    else:
        lab.set_policy("# rules are in policy.d\n", dropins={"50-cache.toml": text})
        path = lab.conf / "policy.d" / "50-cache.toml"
    warm(lab, world.alice)
    assert_ok(lab.run_as_user(world.alice, ["/usr/bin/true"]))
    _edit_in_place(path, b'"/usr/bin/true"', b'"/usr/bin/echo"')
    assert_denied(lab.run_as_user(world.alice, ["/usr/bin/true"]), "command_not_allowed")
    assert assert_ok(lab.run_as_user(world.alice, ["/usr/bin/echo"])).out == "\n"
    # Once settled, the rebuilt snapshot holds the edited rule.
    settle()
    assert_denied(lab.run_as_user(world.alice, ["/usr/bin/true"]), "command_not_allowed")
    snap = snapshot_path(lab).read_bytes()
    assert b"/usr/bin/echo" in snap and b"/usr/bin/true" not in snap
    before = identity(snapshot_path(lab))
    assert_denied(lab.run_as_user(world.alice, ["/usr/bin/true"]), "command_not_allowed")
    assert identity(snapshot_path(lab)) == before  # a hit, and still the right answer


def test_a_new_dropin_is_seen(lab, world):
    lab.set_policy(standing_policy(world, "/usr/bin/tty"), dropins={})
    warm(lab, world.alice)
    before = identity(snapshot_path(lab))
    assert_denied(lab.run_as_user(world.alice, ["/usr/bin/true"]), "command_not_allowed")
    assert identity(snapshot_path(lab)) == before
    extra = lab.conf / "policy.d" / "60-extra.toml"
    extra.write_text(standing_policy(world, "/usr/bin/true").replace("cache-standing", "extra"))
    os.chmod(extra, 0o644)
    res = assert_ok(lab.run_as_user(world.alice, ["/usr/bin/true"]))
    assert res.event("elevate.start").get("jitrun.rule") == "extra"


def _summary(res) -> tuple:
    """What a decision shows: exit status, output (capability lines of /proc/self/status for
    the probe), the refusal line, the deny code, and the start event's rule/identity/caps."""
    out = re.sub(r"(\d+[dhms])+ left", "TIME left", res.out)  # -l: a grant's time left
    if "CapEff" in out:
        st = status_of(res)
        out = {k: st[k] for k in ("CapEff", "CapPrm", "CapAmb", "Uid", "Gid")}
    fields = ("event.action", "event.outcome", "jitrun.rule", "jitrun.deny_code", "jitrun.deny_reason",
              "jitrun.run_as", "process.thread.capabilities.effective", "user.target.name", "jitrun.grant.id",
              "process.executable", "process.args")
    events = [tuple(str(e.get(f)) for f in fields) for e in res.events]
    return res.returncode, out, res.err, events


def _cases(lab, w):
    """(user, argv, options, grant) covering allow and deny, grants for other users' rules,
    standing rules, -u, --rule, -l."""
    g_net = lab.mint(w.alice, "net-debug")
    g_read = lab.mint(w.alice, "read-all")
    g_carol = lab.mint(w.carol, "net-debug")
    g_bob = lab.mint(w.bob, "net-debug")  # a rule that does not name bob
    g_dave_elsewhere = lab.mint(w.dave, "elsewhere")  # erin's rule
    g_unknown = lab.mint(w.alice, "no-such-rule")
    lab.store_grant(w.carol, lab.mint(w.carol, "net-debug"))  # carol's runs without --grant use it
    return [
        (w.alice, ["/usr/bin/id"], [], None),  # standing
        (w.alice, ["/usr/bin/id"], ["-u", "root"], None),  # standing, wrong -u
        (w.alice, ["/usr/bin/id"], ["--rule", "plain"], None),
        (w.alice, ["/usr/bin/id"], ["--rule", "elsewhere"], None),  # another user's rule
        (w.alice, ["/usr/bin/true"], [], None),  # needs a grant
        (w.alice, ["/usr/bin/uptime"], [], None),  # no rule allows it
        (w.alice, STATUS, [], g_net),
        (w.alice, STATUS, ["-u", w.alice.name], g_net),
        (w.alice, STATUS, ["-u", "root"], g_net),
        (w.alice, STATUS, ["-u", "root"], g_read),
        (w.alice, ["/usr/bin/id"], [], g_net),  # grant's rule does not allow it
        (w.alice, STATUS, ["--rule", "read-all"], g_net),  # --rule and the grant disagree
        (w.alice, ["/usr/bin/id"], [], "not a token"),
        (w.alice, STATUS, [], g_unknown),
        (w.carol, STATUS, [], g_carol),  # through the group
        (w.carol, ["/usr/bin/id"], [], None),
        (w.carol, STATUS, [], None),  # the grant store
        (w.carol, STATUS, ["--rule", "net-debug"], None),
        (w.carol, STATUS, ["--rule", "net-admin"], None),
        (w.bob, STATUS, [], g_bob),
        (w.bob, ["/usr/bin/true"], [], None),
        (w.dave, ["/usr/bin/true"], [], g_dave_elsewhere),
        (w.erin, ["/usr/bin/true"], [], None),  # standing, but not on this host
        (w.alice, None, ["-l"], None),
        (w.carol, None, ["-l"], None),
        (w.bob, None, ["-l"], None),
        (w.erin, None, ["-l"], None),
    ]


def _run(lab, case):
    user, argv, options, grant = case
    return lab.run_as_user(user, argv, options=options, grant=grant)


def test_decisions_with_a_warm_cache_equal_those_without(lab, world):
    lab.set_policy(world.policy, dropins={})
    cases = _cases(lab, world)
    settle()
    p = snapshot_path(lab)
    cold = []
    for c in cases:
        p.unlink(missing_ok=True)
        cold.append(_summary(_run(lab, c)))
        assert p.is_file() == (c[1] is not None)  # each cold run rebuilt it (-l never writes)
    assert_ok(_run(lab, cases[0]))
    snap = identity(p)
    warm_results = [_summary(_run(lab, c)) for c in cases]
    assert identity(p) == snap, "a warm run rewrote the snapshot: it was not used"
    for c, a, b in zip(cases, cold, warm_results):
        assert a == b, f"{c[0].name} {c[1]} {c[2]}:\n cold {a}\n warm {b}"
    # Both kinds of outcome are covered.
    codes = [r[0] for r in cold]
    assert 0 in codes and 1 in codes
    assert sum(1 for r in cold if r[0] == 0) >= 8


def test_a_generated_3000_rule_policy_works_through_the_cache(lab, world):
    a = world.alice
    matching = {"name": "bench-grant", "users": [a.name], "hosts": [lab.host], "commands": ["/usr/bin/true"],
                "run_as": "root", "capabilities": []}
    files = bench_policy.generate(3000, matching, a.name, lab.host, bench_group=world.ops, per_file=1000)
    dropins = {Path(k).name: v for k, v in files.items() if k.startswith("policy.d/")}
    lab.set_policy(files["policy.toml"], dropins=dropins)
    token = lab.mint(a, "bench-grant")
    settle()
    p = snapshot_path(lab)
    p.unlink(missing_ok=True)
    cold = assert_ok(lab.run_as_user(a, ["/usr/bin/true"], grant=token))
    assert parse(p.read_bytes())[1] == 3000
    snap = identity(p)
    for _ in range(2):
        res = assert_ok(lab.run_as_user(a, ["/usr/bin/true"], grant=token))
        assert res.event("elevate.start").get("jitrun.rule") == "bench-grant"
        assert _summary(res)[:3] == _summary(cold)[:3]
    # A refusal (the filler rules never allow this command) goes through the full policy.
    res = assert_denied(lab.run_as_user(a, ["/usr/bin/uptime"], grant=token), "grant_rule_mismatch")
    lst = assert_ok(lab.run_as_user(a, None, options=["-l"]))
    assert "bench-grant" in lst.out
    assert identity(p) == snap
    p.unlink()
    assert lab.run_as_user(a, None, options=["-l"]).out == lst.out
    assert res.get("jitrun.rule") == "bench-grant"


# ---- jitctl policy compile: the snapshot built ahead of time (issue 17) --------------------


def policy_ctimes(lab) -> list[int]:
    files = [lab.conf / "policy.toml", lab.conf / "policy.d", *sorted((lab.conf / "policy.d").glob("*.toml"))]
    return [max(f.stat().st_ctime_ns, f.stat().st_mtime_ns) for f in files if f.exists()]


def test_jitctl_policy_compile_writes_the_snapshot_the_next_run_uses(lab, world):
    """As root, `jitctl policy compile` builds what jitrun's first run after a change would
    build: root's 0600 file, keyed on the files it read, written only once they are 2 s old.
    The next jitrun finds it current and uses it: it decides from it and does not write it
    again (a stale snapshot would be rebuilt, now that the files are old enough)."""
    lab.set_policy("# the rules are in policy.d\n",
                   dropins={"50-cache.toml": standing_policy(world, "/usr/bin/true")})
    p = snapshot_path(lab)
    p.unlink(missing_ok=True)
    newest = max(policy_ctimes(lab))
    res = lab.jitctl_as_root("policy", "compile")
    assert res.returncode == 0, res
    assert "compiled 1 rules from 2 files into /var/lib/jitrun/policy.snapshot" in res.stdout, res
    assert "waiting" in res.stderr, res  # the files were just written
    st = p.lstat()
    assert p.is_file() and (st.st_uid, st.st_mode & 0o7777, st.st_nlink) == (0, 0o600, 1)
    # built from settled files only: written at least 2 s after the newest change
    assert st.st_mtime_ns >= newest + int(SETTLE * 1e9), (st.st_mtime_ns, newest)
    key, count, _, _ = parse(p.read_bytes())
    assert count == 1 and b"/etc/jitrun/policy.d/50-cache.toml" in key
    assert [f.name for f in lab.state.iterdir() if "snapshot" in f.name] == ["policy.snapshot"]
    before = identity(p)
    res = assert_ok(lab.run_as_user(world.alice, ["/usr/bin/true"]))
    assert res.event("elevate.start").get("jitrun.rule") == "cache-standing"
    assert_denied(lab.run_as_user(world.alice, ["/usr/bin/tty"]), "command_not_allowed")
    assert identity(p) == before, "jitrun rewrote the compiled snapshot: it did not match"
    # compiled again with nothing changed: the same key, no wait
    again = lab.jitctl_as_root("policy", "compile")
    assert again.returncode == 0 and "waiting" not in again.stderr, again
    assert key_of(p.read_bytes()) == key


def test_a_compiled_snapshot_is_not_used_once_a_policy_file_changes(lab, world):
    """The currency check holds for a snapshot jitctl compiled as for one jitrun wrote: an
    in-place edit of the same size after compiling (only the ctime changes) is decided from the
    files, not from the snapshot."""
    lab.set_policy(standing_policy(world, "/usr/bin/true"), dropins={})
    res = lab.jitctl_as_root("policy", "compile")
    assert res.returncode == 0, res
    assert_ok(lab.run_as_user(world.alice, ["/usr/bin/true"]))  # control: the snapshot allows it
    _edit_in_place(lab.conf / "policy.toml", b'"/usr/bin/true"', b'"/usr/bin/echo"')
    assert_denied(lab.run_as_user(world.alice, ["/usr/bin/true"]), "command_not_allowed")
    assert assert_ok(lab.run_as_user(world.alice, ["/usr/bin/echo"])).out == "\n"


def test_jitctl_policy_compile_refuses_what_jitrun_would_not_trust(lab, world):
    """A policy file jitrun would refuse (not root's) or a policy that does not load is not
    compiled, and nothing is written; nor does it run for anyone but root."""
    p = snapshot_path(lab)
    lab.set_policy(standing_policy(world, "/usr/bin/true"), dropins={"60-x.toml": "# empty\n"})
    p.unlink(missing_ok=True)
    os.chown(lab.conf / "policy.d" / "60-x.toml", world.alice.uid, world.alice.gid)
    res = lab.jitctl_as_root("policy", "compile")
    assert res.returncode != 0 and "/etc/jitrun/policy.d/60-x.toml" in res.stderr, res
    assert f"owned by uid {world.alice.uid}, not root" in res.stderr and "no snapshot was written" in res.stderr
    assert not p.exists()
    lab.set_policy('[[rule]\nname = "broken"\n', dropins={})
    res = lab.jitctl_as_root("policy", "compile")
    assert res.returncode != 0 and "nothing was compiled" in res.stderr, res
    assert not p.exists()
    user = lab.run_without_jitrun(world.alice, [str(lab.jitctl_bin), "policy", "compile"])
    assert user.returncode != 0 and "run it as root" in user.err, str(user)
