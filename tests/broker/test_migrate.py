"""`jitbroker migrate --from sqlite:… --to postgres://…`: a SQLite broker's whole store (requests,
approvals, grants, revocations, hosts, tokens, webhooks waiting, the audit chain) copied into
an empty PostgreSQL database and verified; a broker on the copy carries on where the old one
stopped."""

from __future__ import annotations

import json
import os
import re
import subprocess
from datetime import datetime, timezone

import pytest

from brokerlab import JITBROKER, NET, ONCALL, Broker, PostgresStore, SqliteStore, decode_grant, revocation_list, rfc3339

pytestmark = pytest.mark.backends("postgres")


def migrate(b: Broker, src: str, dst: str, password: str | None = None) -> subprocess.CompletedProcess:
    """As the admin would on the SQLite broker's machine: its broker.toml has no [postgres]
    section yet, the password comes from the environment."""
    env = dict(os.environ)
    env.pop("JITBROKER_STORE_PASSWORD", None)
    if password:
        env["JITBROKER_STORE_PASSWORD"] = password
    return subprocess.run([JITBROKER, "--config", str(b.config), "migrate", "--from", src, "--to", dst],
                          capture_output=True, text=True, timeout=120, env=env)


def test_migrate_copies_everything_and_verifies(tmp_path, pg_cluster):
    old = Broker(tmp_path / "old", workflows=[NET, ONCALL], store=SqliteStore(tmp_path / "old" / "broker.db"),
                 webhooks=[{"url": "http://127.0.0.1:9/unreachable", "format": "json"}]).start()
    alice = old.person("alice", 1001, ["netops", "dba"], host="web-1")
    bob = old.person("bob", 1002, ["netleads"], host="web-2")
    carol = old.person("carol", 1003, ["netleads"], host="web-3")
    dave = old.person("dave", 1004, ["dba", "oncall"], host="db-1")
    rid = old.ok(alice, "POST", "/v1/requests", {"rule": "net-debug", "reason": "before the move"}, status=201)["id"]
    old.ok(bob, "POST", f"/v1/requests/{rid}/approve", {"comment": "ok"})
    gid = old.ok(carol, "POST", f"/v1/requests/{rid}/approve")["grant_id"]
    pending = old.ok(alice, "POST", "/v1/requests", {"rule": "net-debug", "reason": "still pending"}, status=201)["id"]
    old.ok(bob, "POST", f"/v1/requests/{pending}/approve")
    g2 = old.ok(dave, "POST", "/v1/requests", {"rule": "db-x", "reason": "revoked"}, status=201)["grant_id"]
    old.ok(dave, "POST", f"/v1/grants/{g2}/revoke", {"reason": "done"})
    old.cli("host", "enroll-token", "web-9")
    old.cli("host", "retire", "web-3")
    # Sealed break-glass grants: one used on its host, one revoked.
    sealed = old.cli("break-glass", "seal", "--rule", "db-x", "--user", "dave", "--uid", "1004", "--hosts", "db-1",
                     "--count", "2", "--reason", "vault batch").stdout
    s1, s2 = [decode_grant(old, t)["jti"] for t in re.findall(r"^(v4\.public\.\S+)$", sealed, re.M)]
    root = old.person("root", 0, [], host="db-1")
    used_at = rfc3339(datetime.now(timezone.utc))
    assert old.ok(root, "POST", "/v1/sealed/used", {"uses": [{"id": s1, "at": used_at}]}) == {"recorded": [s1]}
    old.cli("break-glass", "revoke", s2, "--reason", "lost")
    seq = old.ok(alice, "GET", "/v1/revocations")["seq"]
    old.stop()
    before = old.snapshot()

    target = PostgresStore(pg_cluster)
    try:
        r = migrate(old, f"sqlite:{old.store.path}", target.url)
        assert r.returncode == 1 and "JITBROKER_STORE_PASSWORD" in r.stderr, r.stderr
        r = migrate(old, f"sqlite:{old.store.path}", target.url, pg_cluster.password)
        assert r.returncode == 0, r.stderr + r.stdout
        assert "verified: every table equal row by row" in r.stdout and "audit chain intact" in r.stdout, r.stdout
        assert pg_cluster.password not in r.stdout + r.stderr
        audit_rows = len(before["audit"])
        assert f"copied {audit_rows:>8} rows of audit" in r.stdout, r.stdout

        # Row by row the same (booleans are 0/1 in SQLite; approvals have their order column,
        # seq, between comment and source in PostgreSQL).
        new = Broker(tmp_path / "new", workflows=[NET, ONCALL], store=target, signing_key=old.key)
        after = new.snapshot()
        for table in ("requests", "grants", "hosts", "audit", "revocation_list", "enrollment_tokens", "sealed_grants",
                      "sealed_uses"):
            assert [tuple(int(v) if isinstance(v, bool) else v for v in row) for row in after[table]] == before[table], table
        assert [row[:5] + row[6:] for row in after["approvals"]] == before["approvals"]

        # Into a database that already holds something: refused, nothing written.
        again = migrate(old, f"sqlite:{old.store.path}", target.url, pg_cluster.password)
        assert again.returncode == 1 and "already has rows" in again.stderr, again.stderr

        # A broker on the copy carries on: the chain continues, the pending request can be
        # approved, the revocation list keeps its seq, the retired host stays retired.
        new.hosts = old.hosts
        new.start()
        granted = new.ok(bob, "GET", f"/v1/requests/{pending}")
        assert granted["state"] == "pending" and [a["user"] for a in granted["approvals"]] == ["bob"]
        lead = new.person("lena", 1008, ["netleads"], host="web-2")
        done = new.ok(lead, "POST", f"/v1/requests/{pending}/approve")
        assert done["state"] == "approved" and done["grant_id"]
        listed = revocation_list(new, new.ok(alice, "GET", "/v1/revocations")["token"])
        assert listed["seq"] >= seq and g2 in {e["jti"] for e in listed["revoked"]}
        assert new.ok(alice, "GET", f"/v1/grants/{gid}")["id"] == gid
        assert s2 in {e["jti"] for e in listed["revoked"]}  # the revoked sealed grant stays listed
        shown = {g["id"]: g for g in json.loads(new.cli("break-glass", "list", "--json").stdout)["sealed"]}
        assert [u["host"] for u in shown[s1]["uses"]] == ["db-1"] and shown[s2]["revoked"], shown
        assert new.ok(root, "POST", "/v1/sealed/used", {"uses": [{"id": s1, "at": used_at}]}) == {"recorded": []}
        assert new.call(carol, "GET", "/v1/requests").status == 401  # web-3 was retired
        out = new.cli("audit", "verify").stdout
        assert "intact" in out and int(out.split(":")[1].split()[0]) > audit_rows, out
        new.close()
    finally:
        old.close()
        pg_cluster.drop_database(target.name)


def test_migrate_refuses_wrong_directions_and_a_missing_source(tmp_path, pg_cluster):
    b = Broker(tmp_path / "b", workflows=[NET], store=SqliteStore(tmp_path / "b" / "broker.db"))
    r = migrate(b, pg_cluster.url("x"), f"sqlite:{b.store.path}")
    assert r.returncode == 1 and "copies from a SQLite store" in r.stderr, r.stderr
    r = migrate(b, f"sqlite:{tmp_path}/none.db", pg_cluster.url("x"))
    assert r.returncode == 1 and "no such SQLite store" in r.stderr, r.stderr
    r = migrate(b, f"sqlite:{b.store.path}", f"postgres://jitbroker:hunter2@127.0.0.1:{pg_cluster.port}/x")
    assert r.returncode == 1 and "password_file" in r.stderr and "hunter2" not in r.stderr, r.stderr
