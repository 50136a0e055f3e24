"""`make demo` keeps working and keeps telling the whole story: run scripts/demo.py unattended, as
CI would, and check what really happened (its DEMO_RECORD: the outputs, exit codes and audit
events of the real jitrun, jitctl and jitbroker it ran), not only its narration."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from jitlab import AuditRecord, _user_exists, cap_mask, pid_alive

REPO = Path(__file__).resolve().parents[2]
RULE = "net-debug"


def field(event: dict, dotted: str):
    """A field of a recorded (JSON) event by its dotted name."""
    return AuditRecord(raw=b"", framing="cee", json=event).get(dotted)


def events(run: dict, action: str) -> list[dict]:
    return [e for e in run["events"] if field(e, "event.action") == action]


@pytest.fixture(scope="module")
def demo(lab, tmp_path_factory):
    """One unattended run of the demo: (exit status, stdout, stderr, record)."""
    record = tmp_path_factory.mktemp("demo") / "record.json"
    env = dict(os.environ, CI="true", DEMO_FAST="1", DEMO_RECORD=str(record))
    p = subprocess.Popen([sys.executable, str(REPO / "scripts" / "demo.py")], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    try:
        out, err = p.communicate(timeout=600)
    except BaseException:
        p.terminate()  # the demo cleans up on SIGTERM
        p.communicate(timeout=60)
        raise
    rec = json.loads(record.read_text()) if record.exists() else {}
    return p.returncode, out, err, rec


def test_demo_runs_unattended_to_the_end(demo):
    rc, out, err, rec = demo
    assert rc == 0, out[-4000:] + err[-4000:]
    assert "raw socket: opened" in out  # the helper's own output, under the grant
    assert "cap_net_raw" in out  # CapEff decoded by capsh
    assert "The host is as we found it" in out
    assert rec["grant_id"], rec


def test_alice_is_refused_and_told_to_request(demo):
    rec = demo[3]
    refused = rec["refused_without_grant"]
    assert refused["returncode"] == 1, refused
    assert f"jitctl request {RULE}" in refused["stderr"], refused
    assert len(events(refused, "elevate.deny")) == 1, refused


def test_two_approvals_and_no_self_approval(demo):
    rec = demo[3]
    users, group = rec["users"], rec["group"]
    assert rec["request"]["returncode"] == 0
    assert f"waiting for 2 approvals from group {group}" in rec["request"]["stdout"], rec["request"]
    assert rec["approve_bob"]["returncode"] == 0 and "waiting for 1 approval" in rec["approve_bob"]["stdout"]
    own = rec["approve_self"]
    assert own["returncode"] == 1 and own["stdout"] == "", own
    assert own["stderr"].startswith("jitctl: ") and "own request" in own["stderr"], own
    assert rec["approve_carol"]["returncode"] == 0
    req = rec["request_after"]
    assert req["id"] == rec["request"]["id"] and req["state"] == "approved", req
    assert [a["user"] for a in req["approvals"]] == [users["bob"], users["carol"]], req
    assert req["reason"] and req["ticket"] and req["grant_id"] == rec["grant_id"], req
    broker = [field(e, "event.action") for e in rec["broker_events"]]
    for action in ("request.create", "request.approve", "grant.issue", "grant.revoke"):
        assert action in broker, broker


def test_the_command_runs_with_exactly_the_rules_capability(demo):
    rec = demo[3]
    st = rec["proc_status"]
    net_raw = cap_mask("CAP_NET_RAW")
    for key in ("CapEff", "CapPrm", "CapInh", "CapAmb", "CapBnd"):
        assert int(st[key], 16) == net_raw, st
    assert st["NoNewPrivs"] == "1"
    assert st["Uid"].split() == [str(rec["uids"]["alice"])] * 4, st  # alice, not root
    start = rec["elevate_start"]
    users = rec["users"]
    assert field(start, "user.name") == users["alice"], start
    assert field(start, "jitrun.grant.id") == rec["grant_id"], start
    assert sorted(field(start, "jitrun.grant.approvers")) == sorted([users["bob"], users["carol"]]), start
    assert field(start, "jitrun.grant.reason") == rec["request_after"]["reason"], start
    assert field(start, "jitrun.grant.ticket") == rec["request_after"]["ticket"], start
    assert rec["raw_socket"]["returncode"] == 0


def test_revoke_ends_the_running_command_and_the_grant_is_refused(demo):
    rec = demo[3]
    revoked = rec["revoke"]
    assert revoked["returncode"] in (143, 137), revoked  # SIGTERM (or SIGKILL after the grace period)
    end = revoked["end_event"]
    assert field(end, "jitrun.end_reason") == "revoked" and field(end, "jitrun.grant.id") == rec["grant_id"], end
    after = rec["after_revoke"]
    assert after["returncode"] == 1, after
    (deny,) = events(after, "elevate.deny")
    assert field(deny, "jitrun.deny_code") == "revoked", deny
    assert "incident closed" in after["stderr"], after


def test_a_grant_expiring_ends_its_command(demo):
    rec = demo[3]
    expired = rec["expiry"]
    assert expired["returncode"] in (143, 137), expired
    (end,) = events(expired, "elevate.end")
    assert field(end, "jitrun.end_reason") == "expired", end


def test_nothing_is_left_behind(demo):
    rec = demo[3]
    for name in rec["users"].values():
        assert not _user_exists(name), name
    for path in rec["paths"]:
        assert not Path(path).exists(), path
    pid = rec["broker_pid"]
    if pid_alive(pid):  # the pid may have been reused since; it must not be our broker
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            cmdline = b""
        assert b"jitbroker" not in cmdline, cmdline
