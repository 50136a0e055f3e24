"""Webhooks from the outbox (at least once, retried with backoff, deduplicated by the receiver
on X-Jitbroker-Delivery) and a broker restart in the middle of things (nothing lost)."""

from __future__ import annotations

from brokerlab import HookReceiver, free_port, wait_for

EVENTS = ["request.create", "request.approve", "request.deny", "grant.issue", "grant.revoke", "break_glass"]


def audit_events(broker, kinds) -> dict[str, str]:
    """event_id -> type, from the audit table."""
    with broker.db() as c:
        rows = c.execute("SELECT event_id, type FROM audit").fetchall()
    return {eid: t for eid, t in rows if t in kinds}


def test_every_event_reaches_the_receiver_once_after_failures(make_broker):
    json_hook, slack_hook = HookReceiver(fail_first=2), HookReceiver(fail_first=1)
    try:
        b = make_broker(webhooks=[
            {"url": json_hook.url, "format": "json", "events": EVENTS, "backoff": "100ms", "max_backoff": "1s"},
            {"url": slack_hook.url, "format": "slack", "events": ["break_glass"], "backoff": "100ms"},
        ])
        alice = b.person("alice", 1001, ["netops", "dba"], host="web-1")
        bob = b.person("bob", 1002, ["netleads"], host="web-2")
        carol = b.person("carol", 1003, ["netleads"], host="web-2")
        rid = b.ok(alice, "POST", "/v1/requests", {"rule": "net-debug", "reason": "hooks"}, status=201)["id"]
        b.ok(bob, "POST", f"/v1/requests/{rid}/approve")
        gid = b.ok(carol, "POST", f"/v1/requests/{rid}/approve")["grant_id"]
        b.ok(alice, "POST", f"/v1/grants/{gid}/revoke", {"reason": "done"})
        rid2 = b.ok(alice, "POST", "/v1/requests", {"rule": "net-debug", "reason": "again"}, status=201)["id"]
        b.ok(bob, "POST", f"/v1/requests/{rid2}/deny", {"reason": "no"})
        b.ok(alice, "POST", "/v1/requests", {"rule": "db-fix", "reason": "down", "break_glass": True}, status=201)

        expected = audit_events(b, EVENTS)
        assert sorted(expected.values()) == sorted(
            ["request.create", "request.approve", "request.approve", "grant.issue", "grant.revoke",
             "request.create", "request.deny", "request.create", "grant.issue", "break_glass"])
        got = wait_for(lambda: (lambda d: d if {r["body"]["id"] for r in d.values()} == set(expected) else None)(
            json_hook.by_delivery()), 60, "every event at the JSON receiver")
        # Exactly once per event after deduplication on the delivery id; nothing else.
        ids = [r["body"]["id"] for r in got.values()]
        assert sorted(ids) == sorted(expected)
        for r in got.values():
            body, headers = r["body"], r["headers"]
            assert body["type"] == expected[body["id"]] == headers["x-jitbroker-event"]
            assert headers["x-jitbroker-event-id"] == body["id"] and body["broker"] == "broker-test"
        assert json_hook.attempts >= len(expected) + 2  # the two refused attempts were retried
        issue = next(r["body"] for r in got.values() if r["body"]["type"] == "grant.issue" and r["body"]["subject"] == gid)
        assert issue["data"]["approvers"] == ["bob", "carol"] and issue["actor"]["user"] == "carol"

        slack = wait_for(lambda: slack_hook.by_delivery() or None, 60, "the Slack receiver")
        assert len(slack) == 1
        text = next(iter(slack.values()))["body"]["text"]
        assert "BREAK-GLASS" in text and "alice" in text and "db-fix" in text
        with b.db() as c:
            left = c.execute("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL").fetchone()[0]
        assert left == 0
        metrics = b.call(alice, "GET", "/metrics").body.decode()
        assert "jitbroker_webhook_failures_total 3" in metrics
        assert f"jitbroker_webhook_deliveries_total {len(expected) + 1}" in metrics
    finally:
        json_hook.close()
        slack_hook.close()


def test_restart_loses_neither_requests_nor_undelivered_webhooks(make_broker, tmp_path):
    port = free_port()  # the receiver is down until after the restart
    url = f"http://127.0.0.1:{port}/hook"
    b = make_broker(webhooks=[{"url": url, "events": EVENTS, "backoff": "100ms", "max_backoff": "500ms"}])
    alice = b.person("alice", 1001, ["netops"], host="web-1")
    bob = b.person("bob", 1002, ["netleads"], host="web-2")
    carol = b.person("carol", 1003, ["netleads"], host="web-2")
    rid = b.ok(alice, "POST", "/v1/requests", {"rule": "net-debug", "reason": "restart"}, status=201)["id"]
    b.ok(bob, "POST", f"/v1/requests/{rid}/approve", {"comment": "first"})
    wait_for(lambda: b.db().execute("SELECT MIN(attempts) FROM outbox").fetchone()[0] >= 1, 30,
             "a failed delivery attempt")
    b.kill()  # SIGKILL: no chance to flush anything
    b.start()
    r = b.ok(alice, "GET", f"/v1/requests/{rid}")
    assert r["state"] == "pending" and [a["user"] for a in r["approvals"]] == ["bob"]
    assert r["approvals"][0]["comment"] == "first"
    done = b.ok(carol, "POST", f"/v1/requests/{rid}/approve")
    assert done["state"] == "approved"

    receiver = HookReceiver(port=port)
    try:
        expected = audit_events(b, EVENTS)
        assert sorted(expected.values()) == ["grant.issue", "request.approve", "request.approve", "request.create"]
        got = wait_for(lambda: (lambda d: d if {x["body"]["id"] for x in d.values()} == set(expected) else None)(
            receiver.by_delivery()), 60, "the deliveries queued before the restart")
        assert sorted(x["body"]["id"] for x in got.values()) == sorted(expected)
        assert audit_chain_ok(b)
    finally:
        receiver.close()


def audit_chain_ok(b) -> bool:
    return b.cli("audit", "verify", check=False).returncode == 0


def test_a_delivery_is_given_up_after_max_attempts(make_broker):
    hook = HookReceiver(fail_first=10**6)
    try:
        b = make_broker(webhooks=[{"url": hook.url, "events": ["request.create"], "max_attempts": 3,
                                   "backoff": "100ms", "max_backoff": "200ms"}])
        alice = b.person("alice", 1001, ["netops"], host="web-1")
        b.ok(alice, "POST", "/v1/requests", {"rule": "net-debug", "reason": "nobody listens"}, status=201)

        def given_up():
            with b.db() as c:
                return c.execute("SELECT attempts, last_error FROM outbox WHERE failed_at IS NOT NULL").fetchall()

        rows = wait_for(given_up, 60, "the delivery to be given up")
        assert rows[0][0] == 3 and "500" in rows[0][1], rows
        assert hook.attempts == 3 and hook.received == []
        text = b.call(alice, "GET", "/metrics").body.decode()
        assert "jitbroker_webhook_given_up_total 1" in text and 'jitbroker_outbox{state="failed"} 1' in text
        assert "given up after 3 attempts" in b.log.read_text()
    finally:
        hook.close()
