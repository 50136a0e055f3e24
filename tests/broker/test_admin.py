"""Admin side: init, keys, hosts (CLI, API, enrollment tokens), the hash-chained audit table and
`jitbroker audit verify`, pending expiry, /healthz, /metrics, /v1/openapi.json, TLS."""

from __future__ import annotations

import datetime as dt
import json
import ssl
import stat
import subprocess
import urllib.request

import pytest
from datetime import datetime, timedelta, timezone

from brokerlab import REPO, Broker, HostKey, parse_time, raw_http, wait_for


def test_init_writes_keys_with_modes_and_is_idempotent(broker):
    key, pub = broker.key, broker.key.with_suffix(".pub")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and stat.S_IMODE(pub.stat().st_mode) == 0o644
    assert key.read_text().startswith("k4.secret.") and pub.read_text().strip() == broker.cli("pubkey").stdout.strip()
    before = key.read_text()
    out = broker.cli("init").stdout
    assert "keeping the existing signing key" in out and key.read_text() == before
    with broker.db() as c:
        assert c.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == 4
        if broker.store.kind == "sqlite":
            assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # A key others can read is refused.
    key.chmod(0o640)
    r = broker.cli("pubkey", check=False)
    assert r.returncode == 1 and "chmod 600" in r.stderr and str(key) in r.stderr
    key.chmod(0o600)


@pytest.mark.backends("sqlite")  # the default store: a SQLite file under /var/lib/jitbroker
def test_init_writes_a_first_config_and_key(tmp_path):
    """`jitbroker init` with no broker.toml writes one with the documented defaults, then the key
    and store at their default paths, here inside a private mount namespace whose /var/lib is
    a fresh tmpfs (so nothing is left on the machine)."""
    import os
    import shutil
    from brokerlab import JITBROKER
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare for a private /var/lib")
    conf = tmp_path / "etc" / "broker.toml"
    script = (f"mount -t tmpfs tmpfs /var/lib && {JITBROKER} --config {conf} init && "
              f"stat -c '%a %n' /var/lib/jitbroker /var/lib/jitbroker/signing.key /var/lib/jitbroker/signing.pub "
              f"/var/lib/jitbroker/broker.db && {JITBROKER} --config {conf} pubkey")
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr + r.stdout
    text = conf.read_text()
    assert 'admin_groups = ["jitadmin"]' in text and 'listen = "127.0.0.1:7443"' in text
    assert 'store = "/var/lib/jitbroker/broker.db"' in text
    assert "700 /var/lib/jitbroker\n" in r.stdout and "600 /var/lib/jitbroker/signing.key" in r.stdout
    assert "644 /var/lib/jitbroker/signing.pub" in r.stdout
    assert r.stdout.strip().splitlines()[-1].startswith("k4.public.")


@pytest.mark.backends("sqlite")  # settings are checked before any store is opened
def test_bad_config_is_refused_with_its_path(tmp_path):
    from brokerlab import JITBROKER
    conf = tmp_path / "broker.toml"
    conf.write_text('id = "b"\n[[workflow]]\nrules = ["x"]\nrequesters = ["g"]\nmax_ttl = "1h"\n')
    r = subprocess.run([JITBROKER, "--config", str(conf), "serve"], capture_output=True, text=True)
    assert r.returncode == 1 and str(conf) in r.stderr and "approvers is empty" in r.stderr


def test_hosts_by_cli_api_and_enrollment_token(broker):
    admin = broker.person("root", 0, ["jitadmin"], host="adm-1")
    alice = broker.person("alice", 1001, ["netops"], host="web-1")
    listed = json.loads(broker.cli("host", "list", "--json").stdout)["hosts"]
    assert sorted(h["name"] for h in listed) == ["adm-1", "web-1"]
    assert all(h["state"] == "enrolled" and h["kid"].startswith("k4.pid.") for h in listed)
    dup = broker.cli("host", "add", "web-1", HostKey("web-1").public_paserk, check=False)
    assert dup.returncode == 1 and "already" in dup.stderr

    # API, admin only.
    new = HostKey("web-7")
    r = broker.call(alice, "POST", "/v1/hosts", {"name": "web-7", "public_key": new.public_paserk})
    assert r.status == 403 and r.error_code() == "not_admin"
    host = broker.ok(admin, "POST", "/v1/hosts", {"name": "web-7", "public_key": new.public_paserk}, status=201)
    assert host["kid"] == new.kid and host["state"] == "enrolled"
    r = broker.call(admin, "POST", "/v1/hosts", {"name": "web-8", "public_key": new.public_paserk})
    assert r.status == 409 and r.error_code() == "key_in_use"
    names = [h["name"] for h in broker.ok(admin, "GET", "/v1/hosts")["hosts"]]
    assert names == ["adm-1", "web-1", "web-7"]
    assert broker.call(alice, "GET", "/v1/hosts").status == 403

    # Enrollment token: the new host enrolls itself once, with its own key.
    token = broker.cli("host", "enroll-token", "db-9").stdout.strip()
    assert token.startswith("jitenroll-")
    db9 = HostKey("db-9")
    body = {"name": "db-9", "public_key": db9.public_paserk, "enrollment_token": token}
    wrong = {**body, "name": "db-8"}
    data = json.dumps(wrong).encode()
    t = HostKey("db-8")
    r = raw_http(broker.port, "POST", "/v1/hosts", data, {"Authorization": "JitAttest " + t.attest(
        user="root", uid=0, groups=["root"], method="POST", path="/v1/hosts", body=data)})
    assert r.status == 401  # signed by another key than the one in the body
    data = json.dumps(body).encode()

    def enroll():
        tok = db9.attest(user="root", uid=0, groups=["root"], method="POST", path="/v1/hosts", body=data)
        return raw_http(broker.port, "POST", "/v1/hosts", data, {"Authorization": f"JitAttest {tok}",
                                                                  "Content-Type": "application/json"})

    first = enroll()
    assert first.status == 201 and first.json["name"] == "db-9", first.body
    again = enroll()
    assert again.status in (403, 409) and again.json["error"]["code"] in ("enrollment_token_invalid", "host_exists")
    # The enrolled host now attests for its users.
    broker.hosts["db-9"] = db9
    dba = broker.person("dora", 1020, ["dba", "oncall"], host="db-9")
    assert broker.ok(dba, "POST", "/v1/requests", {"rule": "db-x", "reason": "x"}, status=201)["host"] == "db-9"

    # Retire: by API (admin) and by CLI; the host's attestations are refused afterwards.
    assert broker.ok(admin, "POST", "/v1/hosts/web-7/retire")["state"] == "retired"
    r = broker.call(admin, "POST", "/v1/hosts/web-7/retire")
    assert r.status == 409
    broker.cli("host", "retire", "db-9")
    r = broker.call(dba, "GET", "/v1/requests")
    assert r.status == 401 and r.error_code() == "host_retired"
    text = broker.cli("host", "list").stdout
    assert "db-9" in text and "retired" in text


def test_tampering_with_the_audit_table_is_found(broker):
    alice = broker.person("alice", 1001, ["netops"], host="web-1")
    bob = broker.person("bob", 1002, ["netleads"], host="web-2")
    admin = broker.person("root", 0, ["jitadmin"], host="adm-1")
    rid = broker.ok(alice, "POST", "/v1/requests", {"rule": "net-debug", "reason": "audit"}, status=201)["id"]
    broker.ok(bob, "POST", f"/v1/requests/{rid}/approve")
    ok = broker.cli("audit", "verify")
    assert "intact" in ok.stdout
    with broker.db() as c:
        rows = c.execute("SELECT id, type, actor FROM audit ORDER BY id").fetchall()
        # The table refuses changes by itself.
        with pytest.raises(Exception, match="append-only"):
            c.execute("UPDATE audit SET actor = 'mallory' WHERE type = 'request.approve'")
    target = next(i for i, t, _ in rows if t == "request.approve")
    events = broker.ok(admin, "GET", "/v1/audit?after=0&limit=50")["events"]
    assert [e["id"] for e in events] == [r[0] for r in rows]
    assert all(e["prev_hash"] == p["hash"] for p, e in zip(events, events[1:]))

    postgres = broker.store.kind == "postgres"
    c = broker.db()
    # What someone with the database's owner rights could do: switch the guard off.
    c.execute("ALTER TABLE audit DISABLE TRIGGER audit_no_update" if postgres else "DROP TRIGGER audit_no_update")
    c.execute("UPDATE audit SET actor = 'mallory' WHERE id = ?", (target,))
    c.commit()
    c.close()
    bad = broker.cli("audit", "verify", check=False)
    assert bad.returncode == 1, bad.stdout
    assert f"BROKEN at row {target}" in bad.stdout and "altered" in bad.stdout

    # Putting it back repairs it; deleting a row breaks the next one.
    c = broker.db()
    c.execute("UPDATE audit SET actor = 'bob' WHERE id = ?", (target,))
    c.commit()
    assert broker.cli("audit", "verify", check=False).returncode == 0
    if not postgres:
        c.execute("DROP TRIGGER audit_no_delete")
    c.execute("DELETE FROM audit WHERE id = ?", (rows[1][0],))
    c.commit()
    c.close()
    bad = broker.cli("audit", "verify", check=False)
    assert bad.returncode == 1 and f"BROKEN at row {rows[2][0]}" in bad.stdout


def test_pending_requests_expire(make_broker):
    b = make_broker(pending_expiry="1s")
    alice = b.person("alice", 1001, ["netops"], host="web-1")
    bob = b.person("bob", 1002, ["netleads"], host="web-2")
    r = b.ok(alice, "POST", "/v1/requests", {"rule": "net-debug", "reason": "slow"}, status=201)
    rid, expires = r["id"], parse_time(r["expires"])
    wait_for(lambda: datetime.now(timezone.utc) > expires + timedelta(seconds=1), 30, "the expiry to pass")
    # Past its expiry it cannot be decided, whether or not the broker has marked it yet.
    late = b.call(bob, "POST", f"/v1/requests/{rid}/approve", {})
    assert late.status == 409 and late.error_code() in ("request_expired", "not_pending"), late.body
    wait_for(lambda: b.ok(alice, "GET", f"/v1/requests/{rid}")["state"] == "expired", 30, "the request to expire")
    r = b.call(bob, "POST", f"/v1/requests/{rid}/approve", {})
    assert r.status == 409 and r.error_code() == "not_pending"
    assert b.call(alice, "POST", f"/v1/requests/{rid}/cancel").status == 409
    with b.db() as c:
        assert c.execute("SELECT COUNT(*) FROM audit WHERE type = 'request.expire' AND subject = ?", (rid,)).fetchone()[0] == 1
        assert c.execute("SELECT COUNT(*) FROM approvals").fetchone()[0] == 0


def test_health_metrics_and_openapi(broker):
    r = raw_http(broker.port, "GET", "/healthz")
    assert r.status == 200 and r.json == {"status": "ok"}
    alice = broker.person("alice", 1001, ["netops"], host="web-1")
    broker.ok(alice, "POST", "/v1/requests", {"rule": "net-debug", "reason": "m"}, status=201)
    broker.call(alice, "POST", "/v1/requests", {"rule": "nope", "reason": "m"})
    m = raw_http(broker.port, "GET", "/metrics")
    assert m.status == 200 and m.headers["content-type"].startswith("text/plain")
    text = m.body.decode()
    assert 'jitbroker_requests{state="pending"} 1' in text
    assert 'jitbroker_http_requests_total{status="201"} 1' in text
    assert 'jitbroker_http_requests_total{status="403"} 1' in text
    assert "# TYPE jitbroker_grants_issued_total counter" in text
    doc = raw_http(broker.port, "GET", "/v1/openapi.json")
    assert doc.status == 200 and doc.json == json.loads((REPO / "docs" / "openapi.json").read_text())
    assert doc.json["openapi"].startswith("3.1")


def self_signed(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    crt, k = tmp_path / "tls.crt", tmp_path / "tls.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    return crt, k


@pytest.mark.backends("sqlite")  # the HTTP layer
def test_tls_when_configured(tmp_path):
    crt, key = self_signed(tmp_path)
    b = Broker(tmp_path / "tls", workflows=[], extra=f'[tls]\ncert = "{crt}"\nkey = "{key}"\n')
    b._logf = open(b.log, "ab")
    b.proc = subprocess.Popen([__import__("brokerlab").JITBROKER, "--config", str(b.config), "serve"],
                              stdout=b._logf, stderr=subprocess.STDOUT)
    try:
        ctx = ssl.create_default_context(cafile=str(crt))

        def up():
            try:
                with urllib.request.urlopen(f"https://127.0.0.1:{b.port}/healthz", context=ctx, timeout=2) as r:
                    return json.load(r) == {"status": "ok"}
            except OSError:
                assert b.proc.poll() is None, b.log.read_text()
                return False

        wait_for(up, 30, "the TLS listener")
        # Plain HTTP on the TLS port gets no API answer.
        with pytest.raises(Exception):
            raw_http(b.port, "GET", "/healthz", timeout=5).json
        assert "https://127.0.0.1" in b.log.read_text()
    finally:
        b.close()
