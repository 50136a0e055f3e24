"""The store on a bad day: a full file system makes /readyz say so while /healthz stays up, and
the broker recovers when it is fixed; store errors (missing or unwritable directory, read-only
file system, full disk) name their cause and fix;
grant-issuing commits reach the disk before the answer (fsync), bookkeeping does not; a grant
whose row is gone can still be revoked by id."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from brokerlab import JITBROKER, NET, ONCALL, Broker, decode_grant, parse_time, raw_http, revocation_list, wait_for


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs in a private mount namespace (root)")


def in_namespace(mount: str) -> list[str]:
    """A prefix running the command in a private mount namespace after the shell `mount`."""
    return ["unshare", "--mount", "--propagation", "private", "sh", "-ec", f'{mount}\nexec "$@"', "sh"]


def ready(b: Broker) -> tuple[int, dict]:
    r = raw_http(b.port, "GET", "/readyz")
    assert r.headers["content-type"].startswith("application/json")
    return r.status, r.json


def wait_ready(b: Broker, want: int, what: str) -> dict:
    return wait_for(lambda: (lambda s, j: j if s == want else None)(*ready(b)), 30, what)


# ---- 5. readiness

@needs_root
@pytest.mark.backends("sqlite")  # a SQLite file on a full tmpfs; PostgreSQL's outage: test_replicas.py
def test_readyz_follows_the_store_while_healthz_stays_up(tmp_path):
    store = tmp_path / "store"
    b = Broker(tmp_path / "b", workflows=[NET, ONCALL], store_dir=store)
    dave = b.person("dave", 1004, ["dba", "oncall"], host="db-1")  # enrolled before the store moves
    side = tmp_path / "store-before"
    shutil.copytree(store, side)
    # The store on an 8 MiB tmpfs of the broker's own mount namespace.
    b.start(prefix=in_namespace(f"mount -t tmpfs -o size=8m,mode=0700 tmpfs {store}\ncp -a {side}/. {store}/"))
    try:
        seen = Path(f"/proc/{b.proc.pid}/root") / str(store).lstrip("/")
        assert ready(b) == (200, {"status": "ready"})
        b.ok(dave, "POST", "/v1/requests", {"rule": "db-x", "reason": "before"}, status=201)

        # Disk full.
        filler = seen / "filler"
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * (1 << 20))
                    f.flush()
            except OSError:
                pass
        err = wait_ready(b, 503, "/readyz to notice the full disk")["error"]
        assert err["code"] == "not_ready" and "free" in err["message"] and str(store) in err["message"], err
        assert raw_http(b.port, "GET", "/healthz").json == {"status": "ok"}  # liveness is not readiness
        # A write may still fit in space SQLite already holds; one that does not says why.
        r = b.call(dave, "POST", "/v1/requests", {"rule": "db-x", "reason": "disk full"})
        assert r.status == 201 or (r.status == 500 and "is full" in r.json["error"]["message"]), r.body
        filler.unlink()
        wait_ready(b, 200, "/readyz after space was freed")
        b.ok(dave, "POST", "/v1/requests", {"rule": "db-x", "reason": "after the disk was full"}, status=201)

    finally:
        b.close()


# ---- 9. store errors say why

@pytest.fixture()
def open_dir():
    """A directory every user may enter (pytest's tmp dirs are root's alone)."""
    d = Path(tempfile.mkdtemp(prefix="jitbroker-store-", dir="/var/tmp"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def verify_store(config: Path, prefix: list[str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*(prefix or []), JITBROKER, "--config", str(config), "audit", "verify"],
                          capture_output=True, text=True, timeout=60)


def write_config(d: Path, store: Path) -> Path:
    config = d / "broker.toml"
    config.write_text(f'id = "b"\nstore = "{store}"\nsigning_key = "{d / "signing.key"}"\n')
    config.chmod(0o644)
    return config


@needs_root
@pytest.mark.backends("sqlite")  # the SQLite file's directory and file system
def test_store_errors_name_the_cause_and_the_fix(open_dir):
    store_dir = open_dir / "store"
    config = write_config(open_dir, store_dir / "broker.db")
    cases = []
    # Missing directory.
    p = verify_store(config)
    cases.append((p, [f"the directory {store_dir} does not exist", "jitbroker init"]))
    # Not writable by the broker's user (root's directory, the broker runs as nobody).
    store_dir.mkdir(mode=0o755)
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    p = verify_store(config, nobody)
    cases.append((p, ["uid 65534 cannot write the directory", str(store_dir), "chown jitbroker:"]))
    # A read-only file system.
    p = verify_store(config, in_namespace(f"mount -t tmpfs -o ro,size=1m tmpfs {store_dir}"))
    cases.append((p, [f"{store_dir} is on a read-only file system", "remount it read-write"]))
    # A full disk.
    p = verify_store(config, in_namespace(
        f"mount -t tmpfs -o size=256k tmpfs {store_dir}\nhead -c 1M /dev/zero > {store_dir}/fill 2>/dev/null || true"))
    cases.append((p, [f"the file system holding {store_dir} is full", "free some space"]))
    for p, needles in cases:
        assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
        for n in needles:
            assert n in p.stderr, (n, p.stderr)
        assert p.stderr.startswith(f"jitbroker: store {store_dir / 'broker.db'}: "), p.stderr


# ---- 4. durability and revocation without the row

def store_pids(b: Broker) -> list[int]:
    """The processes whose fsync/fdatasync make the broker's commits durable: the broker itself
    (SQLite), or PostgreSQL's postmaster (followed into the backends it forks) and the backends
    serving the broker's role (never the WAL writer, which flushes asynchronous commits on its
    own timer)."""
    if b.store.kind == "sqlite":
        return [b.proc.pid]
    cluster = b.store.cluster
    pids = [int((cluster.data / "postmaster.pid").read_text().split()[0])]
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "cmdline").read_bytes().startswith(b"postgres: jitbroker "):
                pids.append(int(proc.name))
        except OSError:
            pass
    return pids


def fsyncs_during(b: Broker, action) -> int:
    """fsync/fdatasync calls made for the broker's store while `action` runs (strace -c)."""
    pids = store_pids(b)
    tracer = subprocess.Popen(["strace", "-f", "-c", "-e", "trace=fsync,fdatasync",
                               *[a for p in pids for a in ("-p", str(p))]],
                              stderr=subprocess.PIPE, text=True)
    def attached():
        # A backend may end between the listing and the attach (the pool recycles its
        # connections): a process or thread that is gone has nothing left to trace.
        def traced(task: Path) -> bool:
            try:
                return "TracerPid:\t0\n" not in (task / "status").read_text()
            except FileNotFoundError:
                return True

        tasks = []
        for p in pids:
            try:
                tasks.extend(Path(f"/proc/{p}/task").iterdir())
            except FileNotFoundError:
                pass
        return all(traced(t) for t in tasks)

    try:
        wait_for(attached, 30, "strace to attach to every thread")
        time.sleep(0.5)
        action()
        time.sleep(0.5)
    finally:
        tracer.terminate()
        out = tracer.communicate(timeout=30)[1]
    return sum(int(line.split()[3]) for line in out.splitlines()
               if line.strip().endswith(("fsync", "fdatasync")) and len(line.split()) >= 5)


def test_a_grant_is_on_disk_before_it_is_answered(broker):
    """SQLite: the broker fsyncs each grant's commit. PostgreSQL: the grant's transaction
    commits asynchronously (releasing the audit chain's lock at once) and the answer waits for
    a synchronous commit behind it (store/postgres.rs): a WAL flush per grant, by the
    backends, none for reads (the replay table is bookkeeping)."""
    if shutil.which("strace") is None:
        pytest.fail("strace is missing: `make deps` installs it")
    dave = broker.person("dave", 1004, ["dba", "oncall"], host="db-1")
    alice = broker.person("alice", 1001, ["netops"], host="web-1")
    broker.ok(dave, "POST", "/v1/requests", {"rule": "db-x", "reason": "warm up"}, status=201)
    n = 10
    grants = fsyncs_during(broker, lambda: [
        broker.ok(dave, "POST", "/v1/requests", {"rule": "db-x", "reason": f"durable {i}"}, status=201)
        for i in range(n)])
    assert grants >= n, f"{grants} fsync calls for {n} grants"
    reads = fsyncs_during(broker, lambda: [broker.ok(alice, "GET", "/v1/requests") for _ in range(n)])
    assert reads == 0, f"{reads} fsync calls for {n} reads (the replay table is bookkeeping)"


def drop_grant_row(b: Broker, gid: str) -> None:
    with b.db() as c:
        c.execute("DELETE FROM grants WHERE id = ?", (gid,))
    with b.db() as c:
        assert c.execute("SELECT COUNT(*) FROM grants WHERE id = ?", (gid,)).fetchone()[0] == 0


def test_revoking_by_id_works_without_the_grants_row(broker):
    alice = broker.person("alice", 1001, ["netops", "dba"], host="web-1")
    bob = broker.person("bob", 1002, ["netleads", "dbleads"], host="web-2")
    dave = broker.person("dave", 1004, ["dba", "oncall"], host="db-1")
    admin = broker.person("admin", 1006, ["jitadmin"], host="adm-1")
    lost_a = broker.ok(dave, "POST", "/v1/requests", {"rule": "db-a", "reason": "lost a"}, status=201)["grant_id"]
    token_a = broker.ok(dave, "GET", f"/v1/grants/{lost_a}")["token"]
    lost_b = broker.ok(dave, "POST", "/v1/requests", {"rule": "db-b", "reason": "lost b"}, status=201)["grant_id"]
    token_b = broker.ok(dave, "GET", f"/v1/grants/{lost_b}")["token"]
    drop_grant_row(broker, lost_a)
    drop_grant_row(broker, lost_b)
    before = broker.snapshot()

    # Without the token only an admin may; others see nothing (and nothing changes).
    for who in (dave, bob, alice):
        r = broker.call(who, "POST", f"/v1/grants/{lost_a}/revoke", {"reason": "lost"})
        assert r.status == 404 and "presents its token" in r.json["error"]["message"], r.body
    # A token of another grant, or garbage, is refused.
    r = broker.call(dave, "POST", f"/v1/grants/{lost_a}/revoke", {"reason": "x", "token": token_b})
    assert r.status == 403 and r.error_code() == "grant_token_invalid" and lost_b in r.json["error"]["message"], r.body
    r = broker.call(dave, "POST", f"/v1/grants/{lost_a}/revoke", {"reason": "x", "token": "v4.public.bogus"})
    assert r.status == 403 and r.error_code() == "grant_token_invalid", r.body
    # Someone who may not manage it gets nothing even with the token.
    assert broker.call(alice, "POST", f"/v1/grants/{lost_a}/revoke", {"reason": "x", "token": token_a}).status == 404
    r = broker.call(admin, "POST", "/v1/grants/not-a-ulid/revoke", {"reason": "typo"})
    assert r.status in (400, 404), r.body
    assert broker.snapshot() == before

    # Its user, with the token: exactly until the token's exp.
    a = broker.ok(dave, "POST", f"/v1/grants/{lost_a}/revoke", {"reason": "lost, user", "token": token_a})
    claims = decode_grant(broker, token_a)
    assert a["revoked"] is True and a["user"] == "dave" and a["rule"] == "db-a" and a["exp"] == claims["exp"]
    assert a["request_id"] is None and a["revoked_by"] == "dave"
    # An admin, by id alone: until the longest max_ttl of the workflows (1h here).
    now = datetime.now(timezone.utc)
    b_ = broker.ok(admin, "POST", f"/v1/grants/{lost_b}/revoke", {"reason": "lost, admin"})
    assert b_["user"] is None and timedelta(minutes=59) < parse_time(b_["exp"]) - now <= timedelta(hours=1, seconds=5)
    r = broker.call(admin, "POST", f"/v1/grants/{lost_b}/revoke", {"reason": "again"})
    assert r.status == 409 and r.error_code() == "already_revoked"

    # Both are on the signed list hosts fetch.
    listed = broker.ok(alice, "GET", "/v1/revocations")
    entries = {e["jti"]: e for e in revocation_list(broker, listed["token"])["revoked"]}
    assert entries[lost_a]["exp"] == claims["exp"] and entries[lost_a]["reason"] == "lost, user"
    assert entries[lost_b]["exp"] == b_["exp"] and entries[lost_b]["reason"] == "lost, admin"
    with broker.db() as c:
        audit = [json.loads(d) for (d,) in c.execute("SELECT data FROM audit WHERE type = 'grant.revoke'")]
    assert [x["unknown_grant"] for x in audit] == [True, True]
    assert broker.cli("audit", "verify").returncode == 0
