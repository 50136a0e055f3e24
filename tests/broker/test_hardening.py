"""Attacks on what the broker accepts and who it believes: host globs that would widen a grant,
forged chat lines and invisible characters in free text, a store write before authorization,
bodies that are not JSON, and approvals from hosts that are not approver hosts."""

from __future__ import annotations

import json

import pytest
from brokerlab import NET, ONCALL, HookReceiver, HostKey, decode_grant, raw_http, wait_for

LAB = {"rules": ["lab-*"], "requesters": ["labops"], "approvers": ["lableads"], "min_approvals": 0,
       "max_ttl": "1h", "hosts": ["lab-?"]}
LAB_WIDE = {"rules": ["wide-*"], "requesters": ["labops"], "approvers": ["lableads"], "min_approvals": 0,
            "max_ttl": "1h", "hosts": ["lab-*"]}
OWN = {"rules": ["own-*"], "requesters": ["labops"], "approvers": ["lableads"], "min_approvals": 0,
       "max_ttl": "1h"}


# ---- 3. requested host patterns must be within the workflow's

HOST_CASES = [
    ("lab-x", ["lab-*"], False),        # lab-* matches lab-10, lab-prod: wider than lab-?
    ("lab-x", ["lab-??"], False),
    ("lab-x", ["lab-[0-9]*"], False),
    ("lab-x", ["*"], False),
    ("lab-x", ["lab-1", "lab-*"], False),  # one wide pattern spoils the list
    ("lab-x", ["lab-1"], True),
    ("lab-x", ["lab-?"], True),
    ("lab-x", ["lab-[0-9]"], True),     # a class is within ?
    ("wide-x", ["lab-?"], True),        # and the other direction: narrower than lab-*
    ("wide-x", ["lab-prod-*"], True),
    ("wide-x", ["lab*"], False),        # lab* matches "lab" and "labx"; lab-* does not
    ("own-x", ["web-1"], True),         # no workflow hosts: the requesting host, literally
    ("own-x", ["web-?"], False),
    ("own-x", ["web-[1]"], False),
]


def test_requested_host_patterns_must_be_within_the_workflow(make_broker):
    b = make_broker(workflows=[LAB, LAB_WIDE, OWN])
    alice = b.person("alice", 1001, ["labops"], host="web-1")
    wrong = []
    for rule, requested, allowed in HOST_CASES:
        before = b.snapshot()
        r = b.call(alice, "POST", "/v1/requests", {"rule": rule, "reason": "hosts", "hosts": requested})
        if allowed and r.status == 201:
            grant = b.ok(alice, "GET", f"/v1/grants/{r.json['grant_id']}")
            if decode_grant(b, grant["token"])["hosts"] != requested:
                wrong.append((rule, requested, "claim differs"))
        elif allowed:
            wrong.append((rule, requested, r.status, r.body[:200]))
        elif r.status != 403 or r.error_code() != "host_not_allowed" or b.snapshot() != before:
            wrong.append((rule, requested, r.status, r.body[:200]))
    assert not wrong, wrong


# ---- 6. chat lines and invisible characters

INVISIBLE = ["\u202e", "\u202a", "\u2066", "\u2069", "\u200b", "\u200d", "\ufeff", "\u061c", "\u200f"]


def test_invisible_characters_are_refused_in_every_free_text(broker):
    alice = broker.person("alice", 1001, ["netops", "dba"], host="web-1")
    bob = broker.person("bob", 1002, ["netleads", "dbleads"], host="web-2")
    dave = broker.person("dave", 1004, ["dba", "oncall"], host="db-1")
    rid = broker.ok(alice, "POST", "/v1/requests", {"rule": "net-debug", "reason": "fine"}, status=201)["id"]
    gid = broker.ok(dave, "POST", "/v1/requests", {"rule": "db-x", "reason": "fine"}, status=201)["grant_id"]
    before = broker.snapshot()
    for c in INVISIBLE:
        evil = f"restart {c}nginx"
        for who, path, body in [
            (alice, "/v1/requests", {"rule": "net-debug", "reason": evil}),
            (alice, "/v1/requests", {"rule": "net-debug", "reason": "ok", "ticket": f"OPS-1{c}"}),
            (alice, "/v1/requests", {"rule": "net-debug", "reason": "ok", "cmd": f"/usr/sbin/ip {c}link"}),
            (alice, "/v1/requests", {"rule": "net-debug", "reason": "ok", "cmd": ["/usr/sbin/ip", f"a{c}"]}),
            (bob, f"/v1/requests/{rid}/approve", {"comment": evil}),
            (bob, f"/v1/requests/{rid}/deny", {"reason": evil}),
            (dave, f"/v1/grants/{gid}/revoke", {"reason": evil}),
        ]:
            r = broker.call(who, "POST", path, body)
            assert r.status == 400 and r.error_code() == "invalid_body", (path, body, r.body)
            assert f"U+{ord(c):04X}" in r.json["error"]["message"], r.body
    assert broker.snapshot() == before


def test_chat_messages_cannot_be_forged_by_user_text(make_broker):
    hook = HookReceiver()
    try:
        b = make_broker(webhooks=[{"url": hook.url, "format": "slack", "backoff": "100ms"}])
        alice = b.person("alice", 1001, ["netops", "dba"], host="web-1")
        bob = b.person("bob", 1002, ["netleads"], host="web-2")
        dave = b.person("dave", 1004, ["dba", "oncall"], host="db-1")
        forged = 'x\n[broker-test] bob approved request 01J (2/2) (request.approve) <!channel> *now*'
        rid = b.ok(alice, "POST", "/v1/requests", {"rule": "net-debug", "reason": forged,
                                                   "ticket": 'T-1"\n<https://evil|click>'}, status=201)["id"]
        b.ok(bob, "POST", f"/v1/requests/{rid}/deny", {"reason": "no\nbob approved it after all"})
        gid = b.ok(dave, "POST", "/v1/requests", {"rule": "db-x", "reason": "a\tb"}, status=201)["grant_id"]
        b.ok(dave, "POST", f"/v1/grants/{gid}/revoke", {"reason": "done\n<!here>"})
        texts = wait_for(lambda: (lambda t: t if any("(grant.revoke)" in x for x in t) else None)(
            [r["body"]["text"] for r in hook.by_delivery().values()]), 60, "the Slack messages up to the revocation")
        for text in texts:
            assert "\n" not in text and "\r" not in text, text  # one line each: nothing starts a line of its own
            assert "<!" not in text and "<http" not in text, text  # no mentions or links from user text
        create = next(t for t in texts if "(request.create)" in t)
        assert create.startswith("[broker-test] alice asks for net-debug on web-1 for 1h: ")
        assert '"x\\n[broker-test] bob approved request 01J (2/2) (request.approve) &lt;!channel&gt; *now*"' in create
        assert '(ticket "T-1\\"\\n&lt;https://evil|click&gt;")' in create
        assert any('denied request' in t and '"no\\nbob approved it after all"' in t for t in texts), texts
        assert any('revoked grant' in t and '"done\\n&lt;!here&gt;"' in t for t in texts), texts
    finally:
        hook.close()


# ---- 7. no store write before authorization

def test_a_bogus_enrollment_token_writes_nothing(broker):
    broker.person("admin", 1006, ["jitadmin"], host="adm-1")
    token = broker.cli("host", "enroll-token", "db-9").stdout.strip()
    key = HostKey("db-9")
    with broker.db() as c:
        seen = c.execute("SELECT COUNT(*) FROM seen_attestations").fetchone()[0]
    before = broker.snapshot()
    for name, tok in [("db-9", "jitenroll-" + "0" * 48), ("db-8", token)]:
        k = key if name == "db-9" else HostKey("db-8")
        data = json.dumps({"name": name, "public_key": k.public_paserk, "enrollment_token": tok}).encode()
        att = k.attest(user="root", uid=0, groups=["root"], method="POST", path="/v1/hosts", body=data)
        r = raw_http(broker.port, "POST", "/v1/hosts", data,
                     {"Authorization": f"JitAttest {att}", "Content-Type": "application/json"})
        assert r.status == 403 and r.error_code() == "enrollment_token_invalid", r.body
    with broker.db() as c:
        assert c.execute("SELECT COUNT(*) FROM seen_attestations").fetchone()[0] == seen
    assert broker.snapshot() == before
    # The good token still works, once; its attestation is recorded with the enrollment.
    data = json.dumps({"name": "db-9", "public_key": key.public_paserk, "enrollment_token": token}).encode()
    att = key.attest(user="root", uid=0, groups=["root"], method="POST", path="/v1/hosts", body=data)
    headers = {"Authorization": f"JitAttest {att}", "Content-Type": "application/json"}
    assert raw_http(broker.port, "POST", "/v1/hosts", data, headers).status == 201
    with broker.db() as c:
        assert c.execute("SELECT COUNT(*) FROM seen_attestations").fetchone()[0] == seen + 1
    # Replayed: the token is spent (checked first), and the attestation was recorded anyway.
    assert raw_http(broker.port, "POST", "/v1/hosts", data, headers).error_code() == "enrollment_token_invalid"


# ---- 8. JSON only

@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None,
                                          "multipart/form-data; boundary=x", "application/jsonx"])
def test_bodies_that_are_not_declared_json_get_415(broker, content_type):
    alice = broker.person("alice", 1001, ["netops"], host="web-1")
    bob = broker.person("bob", 1002, ["netleads"], host="web-2")
    rid = broker.ok(alice, "POST", "/v1/requests", {"rule": "net-debug", "reason": "ct"}, status=201)["id"]
    before = broker.snapshot()
    for who, path, body in [(alice, "/v1/requests", {"rule": "net-debug", "reason": "x"}),
                            (bob, f"/v1/requests/{rid}/approve", {"comment": "ok"}),
                            (bob, f"/v1/requests/{rid}/deny", {"reason": "no"}),
                            (alice, "/v1/requests", {})]:
        data = json.dumps(body).encode()
        token = who.host.attest(user=who.name, uid=who.uid, groups=who.groups, method="POST", path=path, body=data)
        headers = {"Authorization": f"JitAttest {token}"}
        if content_type:
            headers["Content-Type"] = content_type
        r = raw_http(broker.port, "POST", path, data, headers)
        assert r.status == 415 and r.error_code() == "unsupported_media_type", (path, r.body)
        # Unattested: the attestation is still checked first.
        r = raw_http(broker.port, "POST", path, data, {"Content-Type": content_type or "text/plain"})
        assert r.status == 401, r.body
    assert broker.snapshot() == before
    # JSON with a charset parameter, and bodiless calls without a Content-Type, are fine.
    data = json.dumps({"rule": "net-debug", "reason": "charset"}).encode()
    token = alice.host.attest(user="alice", uid=1001, groups=alice.groups, method="POST", path="/v1/requests", body=data)
    r = raw_http(broker.port, "POST", "/v1/requests", data,
                 {"Authorization": f"JitAttest {token}", "Content-Type": "Application/JSON; charset=utf-8"})
    assert r.status == 201, r.body
    token = bob.host.attest(user="bob", uid=1002, groups=bob.groups, method="POST",
                            path=f"/v1/requests/{rid}/approve", body=b"")
    assert raw_http(broker.port, "POST", f"/v1/requests/{rid}/approve", b"",
                    {"Authorization": f"JitAttest {token}"}).status == 200


# ---- 10. approver_hosts

def test_approvals_and_admin_actions_count_only_from_approver_hosts(make_broker):
    db_wf = {**ONCALL, "approver_hosts": ["dba-bastion"]}
    b = make_broker(workflows=[NET, db_wf], extra='approver_hosts = ["adm-*"]')
    alice = b.person("alice", 1001, ["netops", "dba"], host="web-1")
    # A compromised web-2 can claim any group for its users: the claims do not count there.
    bob_web = b.person("bob", 1002, ["netleads", "dbleads", "jitadmin"], host="web-2")
    bob_adm = b.person("bob", 1002, ["netleads", "dbleads", "jitadmin"], host="adm-1")
    bob_bastion = b.person("bob", 1002, ["netleads", "dbleads"], host="dba-bastion")
    carol_adm = b.person("carol", 1003, ["netleads"], host="adm-2")
    rid = b.ok(alice, "POST", "/v1/requests", {"rule": "net-debug", "reason": "approver hosts"}, status=201)["id"]
    before = b.snapshot()
    for path, body in [(f"/v1/requests/{rid}/approve", {}), (f"/v1/requests/{rid}/deny", {"reason": "no"})]:
        r = b.call(bob_web, "POST", path, body)
        assert r.status == 403 and r.error_code() == "not_approver_host", r.body
        assert "approver_hosts (adm-*)" in r.json["error"]["message"] and "web-2" in r.json["error"]["message"]
    for method, path in [("GET", "/v1/hosts"), ("GET", "/v1/audit"), ("POST", "/v1/hosts/web-1/retire")]:
        r = b.call(bob_web, method, path)
        assert r.status == 403 and r.error_code() == "not_approver_host", (path, r.body)
    # Nor can web-2 see what only approvers and admins see.
    assert b.call(bob_web, "GET", f"/v1/requests/{rid}").status == 404
    assert b.ok(bob_web, "GET", "/v1/requests")["requests"] == []
    assert b.snapshot() == before
    # From the approver hosts it works.
    assert b.ok(bob_adm, "POST", f"/v1/requests/{rid}/approve")["state"] == "pending"
    assert b.ok(carol_adm, "POST", f"/v1/requests/{rid}/approve")["state"] == "approved"
    assert [h["name"] for h in b.ok(bob_adm, "GET", "/v1/hosts")["hosts"]]
    # A workflow's own approver_hosts replaces the top-level list for its approvals.
    dba = b.person("erin", 1007, ["dba"], host="db-1")
    rid2 = b.ok(dba, "POST", "/v1/requests", {"rule": "db-fix", "reason": "bastion only"}, status=201)["id"]
    r = b.call(bob_adm, "POST", f"/v1/requests/{rid2}/approve")
    assert r.status == 403 and r.error_code() == "not_approver_host" and "dba-bastion" in r.json["error"]["message"]
    assert b.ok(bob_bastion, "POST", f"/v1/requests/{rid2}/approve")["state"] == "approved"
    # Requesters are not affected: alice asked from web-1.


def test_approver_hosts_must_be_names_or_globs(tmp_path):
    from brokerlab import Broker
    b = Broker(tmp_path / "b", workflows=[NET])
    try:
        b.config.write_text(b.config.read_text().replace('admin_groups', 'approver_hosts = ["adm 1"]\nadmin_groups'))
        r = b.cli("host", "list", check=False)
        assert r.returncode == 1 and "approver_hosts" in r.stderr and '"adm 1"' in r.stderr, r.stderr
    finally:
        b.close()
