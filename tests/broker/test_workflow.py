"""The request → approval → grant → revocation workflow through the HTTP API of a real
jitbroker (loopback, SQLite file), with attestations signed by enrolled host keys."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pyseto
import pytest
from brokerlab import GRANT, ONCALL, REVOCATIONS, parse_time


def grant_claims(broker, token: str) -> dict:
    decoded = pyseto.decode(broker.public_key, token, implicit_assertion=GRANT)
    return json.loads(decoded.payload)


def create(broker, who, **body):
    body.setdefault("reason", "debug packet loss")
    return broker.ok(who, "POST", "/v1/requests", body, status=201)


def test_two_distinct_approvals_issue_a_signed_grant(broker, people):
    alice, bob, carol = people["alice"], people["bob"], people["carol"]
    r = create(broker, alice, rule="net-debug", ttl="30m", ticket="OPS-7", cmd="/usr/sbin/tcpdump -i * **",
               hosts=["web-1", "web-9"])
    assert r["state"] == "pending" and r["user"] == "alice" and r["uid"] == 1001 and r["host"] == "web-1"
    assert r["needed"] == {"approvals": 2, "groups": ["netleads"]} and r["approvals"] == []
    assert r["ttl"] == "30m" and r["ticket"] == "OPS-7" and r["hosts"] == ["web-1", "web-9"]
    rid = r["id"]

    # Listed for alice (mine) and for the approvers, not for an outsider.
    assert [x["id"] for x in broker.ok(alice, "GET", "/v1/requests?mine=true")["requests"]] == [rid]
    assert rid in [x["id"] for x in broker.ok(bob, "GET", "/v1/requests?pending=true")["requests"]]
    assert broker.ok(people["mallory"], "GET", "/v1/requests")["requests"] == []
    assert broker.call(people["mallory"], "GET", f"/v1/requests/{rid}").status == 404

    one = broker.ok(bob, "POST", f"/v1/requests/{rid}/approve", {"comment": "ok"})
    assert one["state"] == "pending" and [a["user"] for a in one["approvals"]] == ["bob"]
    assert one["approvals"][0]["comment"] == "ok" and one["approvals"][0]["host"] == "web-2"
    # The same approver twice does not count twice.
    again = broker.call(bob, "POST", f"/v1/requests/{rid}/approve", {})
    assert again.status == 409 and again.error_code() == "already_approved"
    assert broker.ok(alice, "GET", f"/v1/requests/{rid}")["state"] == "pending"

    done = broker.ok(carol, "POST", f"/v1/requests/{rid}/approve")
    assert done["state"] == "approved" and done["grant_id"]
    grant = broker.ok(alice, "GET", f"/v1/grants/{done['grant_id']}")
    assert grant["user"] == "alice" and grant["request_id"] == rid and grant["revoked"] is False
    claims = grant_claims(broker, grant["token"])
    assert claims["iss"] == "broker-test" and claims["sub"] == "alice" and claims["uid"] == 1001
    assert claims["jti"] == done["grant_id"] and claims["rule"] == "net-debug"
    assert claims["approvers"] == ["bob", "carol"] and "break_glass" not in claims
    assert claims["hosts"] == ["web-1", "web-9"] and claims["cmd"] == "/usr/sbin/tcpdump -i * **"
    assert claims["ticket"] == "OPS-7" and claims["reason"] == "debug packet loss"
    assert parse_time(claims["exp"]) - parse_time(claims["iat"]) == timedelta(minutes=30)
    assert claims["nbf"] == claims["iat"]
    # The approval time starts the grant.
    assert abs(parse_time(claims["iat"]) - datetime.now(timezone.utc)) < timedelta(minutes=2)

    mine = broker.ok(alice, "GET", "/v1/grants?mine=true")["grants"]
    assert [g["id"] for g in mine] == [done["grant_id"]] and mine[0]["token"] == grant["token"]
    # An approver sees the grant, not its token.
    seen = broker.ok(bob, "GET", f"/v1/grants/{done['grant_id']}")
    assert seen["token"] is None and seen["user"] == "alice"
    assert broker.call(people["mallory"], "GET", f"/v1/grants/{done['grant_id']}").status == 404
    # Deciding again is refused.
    late = broker.call(people["bob"], "POST", f"/v1/requests/{rid}/deny", {"reason": "too late"})
    assert late.status == 409 and late.error_code() == "not_pending"

    broker.syslog_sent()
    kinds = [(r.action, r.app) for r in broker.audit.records]
    assert kinds == [("request.create", "jitbroker"), ("request.approve", "jitbroker"),
                     ("request.approve", "jitbroker"), ("grant.issue", "jitbroker")], kinds
    issue = broker.audit.records[-1]
    assert issue.json["jitrun"]["grant"]["id"] == done["grant_id"]
    assert issue.json["jitrun"]["grant"]["approvers"] == ["bob", "carol"]
    assert issue.json["jitrun"]["request"]["id"] == rid
    assert issue.pri == 10 * 8 + 5  # authpriv.notice


def test_self_approval_is_refused_and_changes_nothing(broker, people):
    lead = broker.person("lena", 1010, ["netops", "netleads"], host="web-3")
    rid = create(broker, lead, rule="net-debug")["id"]
    before = broker.snapshot()
    r = broker.call(lead, "POST", f"/v1/requests/{rid}/approve", {})
    assert r.status == 403 and r.error_code() == "self_approval", r.body
    assert "lena" in r.json["error"]["message"]
    r = broker.call(lead, "POST", f"/v1/requests/{rid}/deny", {"reason": "mine"})
    assert r.status == 403 and r.error_code() == "self_approval"
    assert broker.snapshot() == before
    # Others still can; the requester never counts.
    broker.ok(people["bob"], "POST", f"/v1/requests/{rid}/approve")
    assert broker.ok(people["carol"], "POST", f"/v1/requests/{rid}/approve")["state"] == "approved"


def test_deny_cancel_and_who_may_do_what(broker, people):
    alice, bob = people["alice"], people["bob"]
    rid = create(broker, alice, rule="net-debug")["id"]
    r = broker.call(people["mallory"], "POST", f"/v1/requests/{rid}/approve", {})
    assert r.status == 404  # not visible to her at all
    r = broker.call(people["dave"], "POST", f"/v1/requests/{rid}/cancel")
    assert r.status == 404
    denied = broker.ok(bob, "POST", f"/v1/requests/{rid}/deny", {"reason": "use the staging box"})
    assert denied["state"] == "denied" and denied["denied_by"] == "bob"
    assert denied["deny_reason"] == "use the staging box" and denied["grant_id"] is None
    r = broker.call(people["carol"], "POST", f"/v1/requests/{rid}/approve", {})
    assert r.status == 409 and r.error_code() == "not_pending"

    rid2 = create(broker, alice, rule="net-debug")["id"]
    r = broker.call(bob, "POST", f"/v1/requests/{rid2}/cancel")
    assert r.status == 403 and r.error_code() == "not_requester"
    assert broker.ok(alice, "POST", f"/v1/requests/{rid2}/cancel")["state"] == "cancelled"
    r = broker.call(alice, "POST", f"/v1/requests/{rid2}/cancel")
    assert r.status == 409 and r.error_code() == "not_pending"
    states = {x["id"]: x["state"] for x in broker.ok(alice, "GET", "/v1/requests?mine=true")["requests"]}
    assert states == {rid: "denied", rid2: "cancelled"}
    assert broker.ok(alice, "GET", "/v1/requests?mine=true&pending=true")["requests"] == []
    broker.syslog_sent()
    deny = [r for r in broker.audit.records if r.action == "request.deny"]
    assert len(deny) == 1 and deny[0].json["jitrun"]["deny_reason"] == "use the staging box"
    assert deny[0].json["user"]["name"] == "bob"


@pytest.mark.parametrize("body,status,code", [
    ({"rule": "net-debug", "reason": "x", "ttl": "2h"}, 403, "ttl_too_long"),
    ({"rule": "net-debug", "reason": "x", "ttl": "0s"}, 403, "ttl_too_short"),
    ({"rule": "net-debug", "reason": "x", "ttl": "soon"}, 400, "invalid_ttl"),
    ({"rule": "net-debug", "reason": "x", "hosts": ["db-1"]}, 403, "host_not_allowed"),
    ({"rule": "net-debug", "reason": "x", "break_glass": True}, 403, "break_glass_not_allowed"),
    ({"rule": "ssh-root", "reason": "x"}, 403, "no_workflow"),
    ({"rule": "net-debug", "reason": "   "}, 400, "invalid_body"),
    ({"rule": "net-debug", "reason": "x", "cmd": "relative/path"}, 400, "invalid_cmd"),
    ({"rule": "net-debug", "reason": "x", "run_as": "-rf"}, 400, "invalid_body"),
])
def test_requests_outside_the_workflow_are_refused(broker, people, body, status, code):
    before = broker.snapshot()
    r = broker.call(people["alice"], "POST", "/v1/requests", body)
    assert r.status == status and r.error_code() == code, r.body
    assert broker.snapshot() == before


def test_only_requester_groups_may_ask(broker, people):
    r = broker.call(people["mallory"], "POST", "/v1/requests", {"rule": "net-debug", "reason": "x"})
    assert r.status == 403 and r.error_code() == "not_requester"
    assert "netops" in r.json["error"]["message"]
    r = broker.call(people["bob"], "POST", "/v1/requests/01JXXXXXXXXXXXXXXXXXXXXXXX/approve", {})
    assert r.status == 404 and r.error_code() == "not_found"


def today_and_tomorrow() -> tuple[str, str]:
    days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    d = datetime.now(timezone.utc).weekday()
    return days[d], days[(d + 2) % 7]  # two days ahead: never "today" even across midnight


def test_on_call_is_auto_approved_within_its_window(make_broker):
    today, other = today_and_tomorrow()
    b = make_broker(workflows=[
        ONCALL,
        {**ONCALL, "rules": ["cache-*"], "auto_approve": {"groups": ["oncall"], "windows": [f"{other} 00:00-24:00"]}},
        {**ONCALL, "rules": ["queue-*"], "auto_approve": {"groups": ["oncall"], "windows": [f"{today} 00:00-24:00", f"{other} 00:00-01:00"]}},
    ])
    dave = b.person("dave", 1004, ["dba", "oncall"], host="db-1")
    alice = b.person("alice", 1001, ["dba"], host="db-2")
    r = create(b, dave, rule="db-restore", ttl="10m")
    assert r["state"] == "approved" and r["grant_id"] and r["approvals"] == []
    claims = grant_claims(b, b.ok(dave, "GET", f"/v1/grants/{r['grant_id']}")["token"])
    assert claims["approvers"] == ["auto-approve:oncall"] and claims["sub"] == "dave"
    assert claims["hosts"] == ["db-1"]
    # Not on call: waits for an approver.
    assert create(b, alice, rule="db-restore")["state"] == "pending"
    # On call, but outside the window.
    assert create(b, dave, rule="cache-flush")["state"] == "pending"
    assert create(b, dave, rule="queue-drain")["state"] == "approved"


def test_break_glass_is_issued_at_once_marked_and_alerted(broker, people):
    alice = people["alice"]
    r = create(broker, alice, rule="db-fix", break_glass=True, reason="prod down, INC-9", ttl="15m")
    assert r["state"] == "approved" and r["break_glass"] is True
    g = broker.ok(alice, "GET", f"/v1/grants/{r['grant_id']}")
    claims = grant_claims(broker, g["token"])
    assert claims["break_glass"] is True and claims["approvers"] == [] and claims["reason"] == "prod down, INC-9"
    broker.syslog_sent()
    alerts = [x for x in broker.audit.records if x.action == "break_glass"]
    assert len(alerts) == 1 and alerts[0].pri == 10 * 8 + 1, alerts  # authpriv.alert
    assert alerts[0].json["jitrun"]["grant"]["break_glass"] is True
    assert alerts[0].json["jitrun"]["grant"]["id"] == r["grant_id"]
    assert alerts[0].json["user"]["name"] == "alice"
    with broker.db() as c:
        rows = c.execute("SELECT type, subject FROM audit WHERE type IN ('grant.issue', 'break_glass')").fetchall()
    assert rows == [("grant.issue", r["grant_id"]), ("break_glass", r["grant_id"])]
    # A break-glass request needs a reason.
    bad = broker.call(alice, "POST", "/v1/requests", {"rule": "db-fix", "break_glass": True, "reason": ""})
    assert bad.status == 400


def test_revocation_list_is_signed_and_lists_revoked_grants(broker, people):
    alice, dave = people["alice"], people["dave"]
    first = create(broker, dave, rule="db-a")["grant_id"]
    second = create(broker, dave, rule="db-b")["grant_id"]
    empty = broker.ok(alice, "GET", "/v1/revocations")
    listed = json.loads(pyseto.decode(broker.public_key, empty["token"], implicit_assertion=REVOCATIONS).payload)
    assert listed["revoked"] == [] and listed["iss"] == "broker-test" and listed["seq"] == empty["seq"]

    r = broker.call(people["mallory"], "POST", f"/v1/grants/{first}/revoke", {"reason": "x"})
    assert r.status == 404
    revoked = broker.ok(dave, "POST", f"/v1/grants/{first}/revoke", {"reason": "done early"})
    assert revoked["revoked"] is True and revoked["revoke_reason"] == "done early"
    again = broker.call(dave, "POST", f"/v1/grants/{first}/revoke", {"reason": "twice"})
    assert again.status == 409 and again.error_code() == "already_revoked"

    one = broker.ok(alice, "GET", "/v1/revocations")
    decoded = pyseto.decode(broker.public_key, one["token"], implicit_assertion=REVOCATIONS)
    payload = json.loads(decoded.payload)
    assert json.loads(decoded.footer)["kid"] == broker.public_key.to_paserk_id()
    assert one["seq"] > empty["seq"] and payload["seq"] == one["seq"]
    assert [e["jti"] for e in payload["revoked"]] == [first]
    entry = payload["revoked"][0]
    assert entry["reason"] == "done early" and entry["exp"].endswith("Z") and entry["at"].endswith("Z")
    grant = broker.ok(dave, "GET", f"/v1/grants/{first}")
    assert entry["exp"] == grant["exp"]
    # Not a grant token.
    with pytest.raises(pyseto.VerifyError):
        pyseto.decode(broker.public_key, one["token"], implicit_assertion=GRANT)

    # An approver for the rule may revoke too; seq grows with each change.
    broker.ok(people["bob"], "POST", f"/v1/grants/{second}/revoke", {"reason": "incident over"})
    two = broker.ok(alice, "GET", "/v1/revocations")
    assert two["seq"] > one["seq"]
    payload = json.loads(pyseto.decode(broker.public_key, two["token"], implicit_assertion=REVOCATIONS).payload)
    assert sorted(e["jti"] for e in payload["revoked"]) == sorted([first, second])
    assert broker.ok(dave, "GET", "/v1/grants?active=true")["grants"] == []
    broker.syslog_sent()
    revokes = [x for x in broker.audit.records if x.action == "grant.revoke"]
    assert [x.json["jitrun"]["grant"]["id"] for x in revokes] == [first, second]
    assert revokes[1].json["user"]["name"] == "bob"
