"""The broker's syslog events (app-name jitbroker, facility authpriv) in both framings follow
docs/audit.schema.json, carry the attested actor, and match the hash-chained audit table."""

from __future__ import annotations

import sys

import jsonschema
import pytest
from brokerlab import REPO

sys.path.insert(0, str(REPO / "tests" / "harness"))
from rsyslog import event_from_sd, load_schema  # noqa: E402

SEVERITY = {"request.create": 6, "request.deny": 6, "request.approve": 5, "grant.issue": 5, "grant.revoke": 5,
            "break_glass": 1}


def run_everything(b):
    alice = b.person("alice", 1001, ["netops", "dba"], host="web-1")
    bob = b.person("bob", 1002, ["netleads"], host="web-2")
    rid = b.ok(alice, "POST", "/v1/requests", {"rule": "net-debug", "reason": "r1", "ticket": "T-1",
                                               "run_as": "root"}, status=201)["id"]
    gid = b.ok(bob, "POST", f"/v1/requests/{rid}/approve")["grant_id"]
    b.ok(alice, "POST", f"/v1/grants/{gid}/revoke", {"reason": "finished"})
    rid2 = b.ok(alice, "POST", "/v1/requests", {"rule": "net-debug", "reason": "r2"}, status=201)["id"]
    b.ok(bob, "POST", f"/v1/requests/{rid2}/deny", {"reason": "not now"})
    bg = b.ok(alice, "POST", "/v1/requests", {"rule": "db-fix", "reason": "down", "break_glass": True}, status=201)
    return rid, gid, bg["grant_id"]


@pytest.mark.parametrize("framing", ["cee", "rfc5424"])
def test_events_follow_the_schema_in_both_framings(make_broker, framing):
    net = {"rules": ["net-*"], "requesters": ["netops"], "approvers": ["netleads"], "min_approvals": 1, "max_ttl": "1h"}
    db = {"rules": ["db-*"], "requesters": ["dba"], "approvers": ["dbleads"], "max_ttl": "1h", "break_glass": True}
    b = make_broker(workflows=[net, db], audit_framing=framing)
    rid, gid, bg = run_everything(b)
    b.syslog_sent()
    recs = [r for r in b.audit.records]
    assert all(r.framing == framing and r.app == "jitbroker" for r in recs), [(r.framing, r.app) for r in recs]
    schema = load_schema()
    events = []
    for r in recs:
        event = r.json if framing == "cee" else event_from_sd(r.sd[r.sd_id])
        jsonschema.validate(event, schema)
        assert r.facility == 10 and r.pri & 7 == SEVERITY[event["event"]["action"]], (r.pri, event)
        events.append(event)
    actions = [e["event"]["action"] for e in events]
    assert actions == ["request.create", "request.approve", "grant.issue", "grant.revoke", "request.create",
                       "request.deny", "request.create", "grant.issue", "break_glass"], actions
    create = events[0]
    assert create["user"] == {"name": "alice", "id": "1001"} and create["host"] == {"name": "web-1"}
    assert create["jitrun"]["request"]["id"] == rid and create["jitrun"]["run_as"] == "root"
    assert create["jitrun"]["grant"]["ticket"] == "T-1"
    revoke = events[3]
    assert revoke["jitrun"]["grant"]["id"] == gid and revoke["jitrun"]["revoke_reason"] == "finished"
    assert events[5]["jitrun"]["deny_reason"] == "not now" and events[5]["user"]["name"] == "bob"
    assert events[8]["jitrun"]["grant"] == {**events[7]["jitrun"]["grant"]} and events[8]["jitrun"]["grant"]["id"] == bg

    # The same changes are in the audit table, in the same order (plus host enrollments).
    with b.db() as c:
        rows = [t for (t,) in c.execute("SELECT type FROM audit ORDER BY id")]
    assert [t for t in rows if t in SEVERITY] == actions
    assert b.cli("audit", "verify").returncode == 0
