"""request → approvals → sync → run, with the real broker, jitctl and setuid jitrun; the
workflow rules (self-approval, on-call auto-approval, break-glass); revocation reaching a
running command; stale lists; and the broker refusing calls without a valid, fresh,
unreplayed attestation."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import stat
from datetime import datetime, timedelta, timezone

from brokerlab import ROOT, wait_for
from jitlab import ATTEST_IA, REVOCATIONS_IA, decode_token

STATUS_TRUE = ["/usr/bin/true", "ok"]


def approved_grant(bw, user, rule: str, approvers) -> str:
    """Request RULE as USER, approve it by each of APPROVERS; the grant id."""
    req = bw.request(user, rule)
    assert req["state"] == "pending", req
    for a in approvers:
        bw.ok(a, "approve", req["id"])
    shown = json.loads(bw.ok(user, "show", req["id"], "--json"))
    assert shown["state"] == "approved" and shown["grant_id"], shown
    return shown["grant_id"]


def issued(out: str) -> str:
    m = re.search(r"grant (\S+) issued", out)
    assert m, out
    return m.group(1)


def stored(bw, user) -> dict[str, str]:
    d = bw.lab.grant_dir(user)
    return {p.name: p.read_text().strip() for p in d.iterdir()} if d.exists() else {}


def test_request_two_approvals_sync_and_run(bw):
    a, lab = bw.frank, bw.lab
    p = bw.jitctl(a, "request", "db-restart", "--reason", "restart the replica", "--ticket", "OPS-7", "--ttl", "20m")
    assert p.returncode == 0, p.stderr
    assert f"waiting for 2 approvals from group {bw.dba}" in p.stdout, p.stdout
    rid = p.stdout.split()[1]
    assert f"jitctl show {rid}" in p.stdout
    # Pending for the approvers, listed for the requester.
    assert rid in bw.ok(bw.bob, "requests", "--pending")
    mine = json.loads(bw.ok(a, "requests", "--mine", "--json"))
    assert rid in [r["id"] for r in mine["requests"]]
    out = bw.ok(bw.bob, "approve", rid, "--comment", "go")
    assert "recorded" in out and "waiting for 1 approval" in out, out
    out = bw.ok(bw.carol, "approve", rid)
    assert "approved" in out, out
    req = json.loads(bw.ok(a, "show", rid, "--json"))
    assert req["state"] == "approved" and [x["user"] for x in req["approvals"]] == [bw.bob.name, bw.carol.name]
    assert req["approvals"][0]["host"] == lab.host and req["approvals"][0]["comment"] == "go"
    gid = req["grant_id"]
    # sync: the grant lands in the store, 0600, named after its id.
    out = bw.ok(a, "sync")
    assert gid in out, out
    files = stored(bw, a)
    assert list(files) == [gid], files
    st = os.stat(lab.grant_dir(a) / gid)
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == a.uid
    claims = decode_token(files[gid])[0]
    assert (claims["sub"], claims["rule"], claims["jti"], claims["ticket"]) == (a.name, "db-restart", gid, "OPS-7")
    assert sorted(claims["approvers"]) == sorted([bw.bob.name, bw.carol.name])
    # jitrun runs the command from the store; elevate.start names the approvers.
    res = lab.run_as_user(a, STATUS_TRUE)
    assert res.returncode == 0, str(res)
    start = res.event("elevate.start")
    assert start.get("jitrun.grant.id") == gid and start.get("jitrun.rule") == "db-restart"
    assert sorted(start.get("jitrun.grant.approvers")) == sorted([bw.bob.name, bw.carol.name])
    assert start.get("jitrun.grant.issuer") == "broker-test"
    # grants lists it as active.
    grants = json.loads(bw.ok(a, "grants", "--json"))["grants"]
    assert gid in [g["id"] for g in grants if not g["revoked"]]


def test_self_approval_is_refused(bw):
    e = bw.erin  # requester and approver
    req = bw.request(e, "db-restart")
    p = bw.jitctl(e, "approve", req["id"])
    assert p.returncode == 1 and p.stdout == "", p
    assert p.stderr.startswith("jitctl: ") and "own request" in p.stderr, p.stderr
    assert json.loads(bw.ok(e, "show", req["id"], "--json"))["approvals"] == []
    # A single other approval is not enough for db-*.
    bw.ok(bw.bob, "approve", req["id"])
    assert json.loads(bw.ok(e, "show", req["id"], "--json"))["state"] == "pending"
    bw.ok(e, "cancel", req["id"])
    assert json.loads(bw.ok(e, "show", req["id"], "--json"))["state"] == "cancelled"


def test_deny_tells_the_requester_why(bw):
    req = bw.request(bw.alice, "db-restart")
    bw.ok(bw.bob, "deny", req["id"], "--reason", "no ticket")
    out = bw.ok(bw.alice, "show", req["id"])
    assert f"denied by {bw.bob.name}: no ticket" in out, out


def test_on_call_is_auto_approved_and_synced(bw):
    d, lab = bw.dave, bw.lab
    p = bw.jitctl(d, "request", "oncall-debug", "--reason", "pager 123")
    assert p.returncode == 0, p.stderr
    assert "auto-approved" in p.stdout and "stored 1 grant" in p.stdout, p.stdout
    gid = issued(p.stdout)
    assert gid in stored(bw, d)
    res = lab.run_as_user(d, STATUS_TRUE, grant=lab.grant_dir(d) / gid)
    assert res.returncode == 0, str(res)
    assert res.event("elevate.start").get("jitrun.grant.id") == gid
    # Not on call: the same rule waits for an approver.
    req = bw.request(bw.alice, "oncall-debug")
    assert req["state"] == "pending"


def test_break_glass(bw):
    a, lab = bw.alice, bw.lab
    mark = lab.audit.mark()
    p = bw.jitctl(a, "request", "bg-fix", "--break-glass", "--reason", "database down")
    assert p.returncode == 0, p.stderr
    assert "break-glass" in p.stdout, p.stdout
    gid = issued(p.stdout)
    claims = decode_token(stored(bw, a)[gid])[0]
    assert claims["break_glass"] is True and claims.get("approvers", []) == []
    bw.syslog_sent()  # the broker's own break_glass event arrives before the run's, not among them
    res = lab.run_as_user(a, STATUS_TRUE, grant=lab.grant_dir(a) / gid)
    assert res.returncode == 0, str(res)
    alert = res.event("break_glass")
    assert alert.severity == 1 and alert.get("jitrun.grant.id") == gid  # alert
    bw.syslog_sent()
    broker_alerts = [e for e in lab.audit.since(mark, "break_glass") if e.app == "jitbroker"]
    assert broker_alerts and broker_alerts[0].severity == 1, lab.audit.since(mark)
    # A workflow without break_glass refuses it.
    p = bw.jitctl(a, "request", "db-restart", "--break-glass", "--reason", "x")
    assert p.returncode == 1 and p.stderr.startswith("jitctl: "), p


def test_revoke_ends_a_running_command_and_refuses_the_grant(bw):
    a, lab = bw.alice, bw.lab
    gid = approved_grant(bw, a, "db-restart", [bw.bob, bw.carol])
    bw.ok(a, "sync")
    bw.ok(ROOT, "revocations", "sync")  # the list as it is now: gid not on it
    grant = lab.grant_dir(a) / gid
    with lab.spawn_as_user(a, [str(lab.jitrun), "--grant", str(grant), "--", "/usr/bin/sleep", "600"]) as run:
        wait_for(lambda: "elevate.start" in [e.action for e in run.events()], 60, "elevate.start")
        out = bw.ok(bw.bob, "revoke", gid, "--reason", "incident over")
        assert "revoked" in out, out
        out = bw.ok(ROOT, "revocations", "sync")
        assert gid in out and "incident over" in out, out
        assert run.wait(timeout=60) is not None, str(run)
        ends = [e for e in run.events() if e.action == "elevate.end"]
        assert len(ends) == 1 and ends[0].get("jitrun.end_reason") == "revoked", str(run)
        assert ends[0].get("jitrun.grant.id") == gid
    st = os.stat(lab.state / "revocations")
    assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o644
    # At start: refused with deny code revoked, saying what to do.
    res = lab.run_as_user(a, STATUS_TRUE, grant=grant)
    assert res.returncode == 1, str(res)
    assert res.event("elevate.deny").get("jitrun.deny_code") == "revoked"
    assert "incident over" in res.err and "jitctl request db-restart" in res.err, res.err
    # sync removes the revoked grant's file.
    bw.ok(a, "sync")
    assert gid not in stored(bw, a)
    # Syncing again keeps the list (the broker may have re-signed it with a newer iat: same seq).
    before = decode_token((lab.state / "revocations").read_text())[0]
    out = bw.ok(ROOT, "revocations", "sync")
    after = decode_token((lab.state / "revocations").read_text())[0]
    assert after["seq"] == before["seq"] and gid in [r["jti"] for r in after["revoked"]], out
    assert "unchanged" in out or f"seq {before['seq']}" in out, out


def test_jitctl_revokes_a_grant_the_broker_lost(bw):
    """The broker's row of a grant is gone (a crash before it reached the disk, a restored
    backup): its user revokes it from the grant store with jitctl, which presents the token,
    and hosts refuse it."""
    a, lab = bw.alice, bw.lab
    gid = approved_grant(bw, a, "db-restart", [bw.bob, bw.carol])
    bw.ok(a, "sync")
    with bw.server.db() as c:
        c.execute("DELETE FROM grants WHERE id = ?", (gid,))
    # Without the token (bob has none) the broker knows no such grant.
    p = bw.jitctl(bw.bob, "revoke", gid, "--reason", "lost")
    assert p.returncode == 1 and "presents its token" in p.stderr, p
    out = bw.ok(a, "revoke", gid, "--reason", "lost with the broker's disk")
    assert "revoked" in out and "db-restart" in out, out
    out = bw.ok(ROOT, "revocations", "sync")
    assert gid in out, out
    res = lab.run_as_user(a, STATUS_TRUE, grant=lab.grant_dir(a) / gid)
    assert res.returncode == 1 and res.event("elevate.deny").get("jitrun.deny_code") == "revoked", str(res)


def test_revocations_sync_needs_root_and_refuses_a_rollback(bw):
    lab = bw.lab
    p = bw.jitctl(bw.alice, "revocations", "sync")
    assert p.returncode == 1 and "as root" in p.stderr, p
    bw.ok(ROOT, "revocations", "sync")
    # A list on disk with a higher seq (signed with the broker's own key): the broker's is older.
    payload = {"iss": "broker-test", "iat": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
               "seq": 10**9, "revoked": []}
    lab.write_revocations(raw=(lab.mint_with_pyseto(payload, implicit_assertion=REVOCATIONS_IA,
                                                    secret=bw.broker_secret, public=bw.broker_public)
                               + "\n").encode())
    before = (lab.state / "revocations").read_bytes()
    p = bw.jitctl(ROOT, "revocations", "sync")
    assert p.returncode == 1 and "rollback" in p.stderr, p
    assert (lab.state / "revocations").read_bytes() == before


def test_fresh_revocations_required(bw):
    a, lab = bw.alice, bw.lab
    gid = approved_grant(bw, a, "fresh-db", [bw.bob])
    bw.ok(a, "sync")
    grant = lab.grant_dir(a) / gid
    res = lab.run_as_user(a, STATUS_TRUE, grant=grant)
    assert res.returncode == 1 and res.event("elevate.deny").get("jitrun.deny_code") == "revocations_stale", str(res)
    bw.ok(ROOT, "revocations", "sync")
    res = lab.run_as_user(a, STATUS_TRUE, grant=grant)
    assert res.returncode == 0, str(res)
    # max_age shorter than the list's age: stale again (the list's iat only gets older).
    lab.write_settings(text=(lab.conf / "jitrun.toml").read_text() + '\n[revocations]\nmax_age = "1s"\n')
    iat = decode_token((lab.state / "revocations").read_text())[0]["iat"]
    wait_for(lambda: datetime.now(timezone.utc) - datetime.fromisoformat(iat.replace("Z", "+00:00"))
             > timedelta(seconds=2), 60, "the list to be older than max_age")
    res = lab.run_as_user(a, STATUS_TRUE, grant=grant)
    assert res.returncode == 1 and res.event("elevate.deny").get("jitrun.deny_code") == "revocations_stale", str(res)


# ---- attestations


def test_calls_without_a_valid_attestation_are_refused(bw):
    lab = bw.lab
    status, body = bw.http("GET", "/v1/requests?mine=true")
    assert status == 401 and body["error"]["code"], body
    status, body = bw.http("GET", "/v1/requests?mine=true", headers={"Authorization": "Bearer x"})
    assert status == 401, body
    # Signed by a key the broker never enrolled.
    other_sec, other_pub = lab.keygen(f"not-enrolled-{bw.dir.name}")
    now = datetime.now(timezone.utc)
    claims = {"v": 1, "sub": bw.alice.name, "uid": bw.alice.uid, "groups": [bw.devs], "host": lab.host,
              "iat": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
              "exp": (now + timedelta(seconds=60)).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "jti": os.urandom(16).hex(), "method": "GET", "path": "/v1/requests",
              "body_sha256": hashlib.sha256(b"").hexdigest()}
    forged = lab.mint_with_pyseto(claims, implicit_assertion=ATTEST_IA, secret=other_sec, public=other_pub)
    status, body = bw.http("GET", "/v1/requests?mine=true", headers={"Authorization": f"JitAttest {forged}"})
    assert status == 401, body
    # A real attestation whose payload was changed (alice claims to be in dba).
    real = bw.attest(bw.alice, "GET", "/v1/requests")
    parts = real.split(".")
    raw = base64.urlsafe_b64decode(parts[2] + "=" * (-len(parts[2]) % 4))
    payload = json.loads(raw[:-64])
    payload["groups"] = [bw.dba]
    parts[2] = base64.urlsafe_b64encode(json.dumps(payload).encode() + raw[-64:]).rstrip(b"=").decode()
    status, body = bw.http("GET", "/v1/requests", headers={"Authorization": "JitAttest " + ".".join(parts)})
    assert status == 401, body
    # Made for another request.
    other = bw.attest(bw.alice, "GET", "/v1/grants")
    status, body = bw.http("GET", "/v1/requests", headers={"Authorization": f"JitAttest {other}"})
    assert status == 401, body


def test_a_replayed_attestation_is_refused_and_changes_nothing(bw):
    body = json.dumps({"rule": "db-restart", "reason": "replay"}).encode()
    token = bw.attest(bw.alice, "POST", "/v1/requests", body)
    status, first = bw.http("POST", "/v1/requests", body, {"Authorization": f"JitAttest {token}"})
    assert status == 201 and first["state"] == "pending", first
    status, again = bw.http("POST", "/v1/requests", body, {"Authorization": f"JitAttest {token}"})
    assert status == 401 and again["error"]["code"] == "attestation_replayed", again
    mine = json.loads(bw.ok(bw.alice, "requests", "--json"))["requests"]
    assert [r["id"] for r in mine if r["reason"] == "replay"] == [first["id"]]


def _pending_with_reason(bw, user, reason: str) -> list[str]:
    reqs = json.loads(bw.ok(user, "requests", "--json"))["requests"]
    return [r["id"] for r in reqs if r["reason"] == reason and r["state"] == "pending"]


def test_wait_exits_0_once_approved_and_1_when_denied(bw):
    import subprocess

    a, lab = bw.alice, bw.lab
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    for decision, expected in (("approve", 0), ("deny", 1)):
        reason = f"wait then {decision} {os.urandom(4).hex()}"
        cmd = lab.ns_command(a, [str(bw.jitctl_bin), "request", "db-restart", "--reason", reason, "--wait"])
        with subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=env, cwd=a.home, text=True) as p:
            try:
                wait_for(lambda: _pending_with_reason(bw, a, reason), 60, "the request to be created")
                (rid,) = _pending_with_reason(bw, a, reason)
                # Decided only once jitctl has seen it pending (else it never waits, nor says so).
                first = p.stderr.readline()
                if decision == "approve":
                    bw.ok(bw.bob, "approve", rid)
                    bw.ok(bw.carol, "approve", rid)
                else:
                    bw.ok(bw.bob, "deny", rid, "--reason", "not now")
                out, err = p.communicate(timeout=60)
            finally:
                if p.poll() is None:
                    p.kill()
        err = first + err
        assert p.returncode == expected, (out, err)
        # No terminal: plain progress lines, not a spinner.
        assert f"jitctl: request {rid}: waiting for 2 approvals from group {bw.dba}" in err, err
        assert "\r" not in err
        if decision == "approve":
            gid = issued(out)
            assert gid in stored(bw, a), out
        else:
            assert f"denied by {bw.bob.name}: not now" in out, out


def test_wait_on_a_terminal_shows_a_progress_indicator(bw):
    a, lab = bw.alice, bw.lab
    reason = f"wait on a tty {os.urandom(4).hex()}"
    argv = [str(bw.jitctl_bin), "request", "db-restart", "--reason", reason, "--wait"]
    with lab.spawn_as_user(a, argv, pty=True) as run:
        wait_for(lambda: _pending_with_reason(bw, a, reason), 60, "the request to be created")
        (rid,) = _pending_with_reason(bw, a, reason)
        assert run.wait_output(b"waiting for 2 approvals", timeout=30), run.output
        bw.ok(bw.bob, "approve", rid)
        bw.ok(bw.carol, "approve", rid)
        assert run.wait(timeout=60) == 0, str(run)
        run.wait_output(b"stored", timeout=30)  # the reader may still hold the last bytes
        out = run.output.decode(errors="replace")
    # A line redrawn in place (carriage return + erase line), then the outcome on its own line.
    assert "\r\x1b[K" in out and "Ctrl-C stops waiting" in out, repr(out)
    assert f"request {rid}: approved" in out and "stored" in out, repr(out)
