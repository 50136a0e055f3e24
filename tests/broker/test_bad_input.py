"""Bad input to every endpoint (missing, expired, replayed, forged or mismatched attestations;
wrong types, unknown fields, huge or non-JSON bodies, unknown query parameters) gets a 4xx with
a JSON error, and changes nothing in the store (every state table compared before and after)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from brokerlab import HostKey, raw_http

HUGE = b'{"rule":"net-debug","reason":"' + b"x" * (100 * 1024) + b'"}'


def setup(broker):
    alice = broker.person("alice", 1001, ["netops", "dba"], host="web-1")
    bob = broker.person("bob", 1002, ["netleads", "jitadmin"], host="web-2")
    admin = broker.person("root", 0, ["jitadmin", "netops", "netleads", "dba"], host="adm-1")
    pending = broker.ok(alice, "POST", "/v1/requests", {"rule": "net-debug", "reason": "bad input"}, status=201)["id"]
    dave = broker.person("dave", 1004, ["dba", "oncall"], host="db-1")
    grant = broker.ok(dave, "POST", "/v1/requests", {"rule": "db-x", "reason": "y"}, status=201)["grant_id"]
    new_host = HostKey("new-1")
    return {"alice": alice, "bob": bob, "admin": admin, "dave": dave, "pending": pending, "grant": grant,
            "new_host": new_host}


# (method, path template, a valid body or None, bad bodies (body, code), who)
ENDPOINTS = [
    ("POST", "/v1/requests", {"rule": "net-debug", "reason": "x"}, [
        ({"rule": 5, "reason": "x"}, "invalid_body"),
        ({"rule": "net-debug", "reason": "x", "ttl": 30}, "invalid_body"),
        ({"rule": "net-debug", "reason": "x", "hosts": "web-1"}, "invalid_body"),
        ({"rule": "net-debug", "reason": "x", "break_glass": "yes"}, "invalid_body"),
        ({"rule": "net-debug", "reason": "x", "approvers": ["alice"]}, "invalid_body"),
        ({"reason": "x"}, "invalid_body"),
        ([], "invalid_body"),
        ({"rule": "net-debug", "reason": "x", "cmd": {"a": 1}}, "invalid_body"),
    ], "alice"),
    ("GET", "/v1/requests", None, [], "alice"),
    ("GET", "/v1/requests/{pending}", None, [], "alice"),
    ("POST", "/v1/requests/{pending}/approve", {"comment": "ok"}, [
        ({"comment": 7}, "invalid_body"), ({"comment": "x", "approvals": 2}, "invalid_body"), ("ok", "invalid_body"),
    ], "bob"),
    ("POST", "/v1/requests/{pending}/deny", {"reason": "no"}, [
        ({}, "invalid_body"), ({"reason": None}, "invalid_body"), ({"reason": "x", "state": "approved"}, "invalid_body"),
    ], "bob"),
    ("POST", "/v1/requests/{pending}/cancel", None, [({"force": True}, "invalid_body")], "alice"),
    ("GET", "/v1/grants", None, [], "dave"),
    ("GET", "/v1/grants/{grant}", None, [], "dave"),
    ("POST", "/v1/grants/{grant}/revoke", {"reason": "done"}, [
        ({"reason": ["done"]}, "invalid_body"), ({"reason": "x", "jti": "y"}, "invalid_body"), ({}, "invalid_body"),
    ], "dave"),
    ("GET", "/v1/revocations", None, [], "alice"),
    ("POST", "/v1/hosts", "HOSTBODY", [
        ({"name": "new-1"}, "invalid_body"), ({"name": 1, "public_key": "k4.public.x"}, "invalid_body"),
        ({"name": "new-1", "public_key": "k4.secret.AAAA"}, "invalid_key"),
        ({"name": "new 1", "public_key": "PUB", "x": 1}, "invalid_body"),
    ], "admin"),
    ("GET", "/v1/hosts", None, [], "admin"),
    ("POST", "/v1/hosts/web-1/retire", None, [({"now": True}, "invalid_body")], "admin"),
    ("GET", "/v1/audit", None, [], "admin"),
]


def body_bytes(body, ctx) -> bytes:
    if body is None:
        return b""
    if body == "HOSTBODY":
        body = {"name": "new-1", "public_key": ctx["new_host"].public_paserk}
    if isinstance(body, dict) and body.get("public_key") == "PUB":
        body = {**body, "public_key": ctx["new_host"].public_paserk}
    return json.dumps(body).encode()


def assert_json_error(r, status: int | tuple, code: str | None = None):
    statuses = status if isinstance(status, tuple) else (status,)
    assert r.status in statuses, (r.status, r.body[:300])
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers
    err = r.json["error"]
    assert isinstance(err["message"], str) and err["message"], r.body
    if code:
        assert err["code"] == code, r.body


@pytest.mark.parametrize("method,template,valid,bad_bodies,who", ENDPOINTS,
                         ids=[f"{m} {p}" for m, p, *_ in ENDPOINTS])
def test_bad_input_is_refused_and_changes_nothing(broker, method, template, valid, bad_bodies, who):
    ctx = setup(broker)
    person = ctx[who]
    path = template.format(**ctx)
    good = body_bytes(valid, ctx)
    before = broker.snapshot()

    # No attestation, another scheme, garbage.
    for headers in ({}, {"Authorization": "Bearer abc"}, {"Authorization": "JitAttest v4.public.garbage"},
                    {"Authorization": "JitAttest "}):
        r = raw_http(broker.port, method, path, good, headers)
        assert_json_error(r, 401)
        assert r.headers.get("www-authenticate") == "JitAttest"
    assert_json_error(raw_http(broker.port, method, path, good, {}), 401, "attestation_missing")

    # Stale, from the future, too long-lived, another body / path / method / host, wrong version.
    now = datetime.now(timezone.utc)
    cases = [
        (dict(iat=now - timedelta(minutes=10)), "attestation_expired"),
        (dict(iat=now + timedelta(minutes=5)), "attestation_not_yet_valid"),
        (dict(lifetime=3600), "attestation_too_long"),
        (dict(attest_body=good + b" "), "attestation_mismatch"),
        (dict(attest_path=path + "/x"), "attestation_mismatch"),
        (dict(host="web-99"), "attestation_mismatch"),
        (dict(v=2), "attestation_invalid"),
        (dict(jti="not-hex"), "attestation_invalid"),
    ]
    for attest, code in cases:
        r = broker.call(person, method, path, raw=good, **attest)
        assert_json_error(r, 401, code)
    wrong_method = person.host.attest(user=person.name, uid=person.uid, groups=person.groups,
                                      method="DELETE" if method != "DELETE" else "GET", path=path, body=good)
    assert_json_error(broker.call(person, method, path, raw=good, token=wrong_method), 401, "attestation_mismatch")
    # A key nobody enrolled.
    stranger = HostKey(person.host.name)
    token = stranger.attest(user=person.name, uid=person.uid, groups=person.groups, method=method, path=path, body=good)
    assert_json_error(broker.call(person, method, path, raw=good, token=token), 401, "unknown_host")
    # A tampered payload: the signature no longer verifies.
    real = person.host.attest(user=person.name, uid=person.uid, groups=person.groups, method=method, path=path, body=good)
    parts = real.split(".")
    parts[2] = ("A" if parts[2][0] != "A" else "B") + parts[2][1:]
    assert_json_error(broker.call(person, method, path, raw=good, token=".".join(parts)), 401)

    # Bodies: huge, not JSON, wrong types, unknown fields.
    assert_json_error(broker.call(person, method, path, raw=HUGE), 413, "body_too_large")
    r = raw_http(broker.port, method, path, HUGE, {"Authorization": "JitAttest x"})
    assert_json_error(r, 413)
    for raw in (b"{", b"\xff\xfe", b"null", b'"text"'):
        assert_json_error(broker.call(person, method, path, raw=raw), 400, "invalid_body")
    for bad, code in bad_bodies:
        assert_json_error(broker.call(person, method, path, raw=body_bytes(bad, ctx)), 400, code)
    if valid is None and method == "GET":
        assert_json_error(broker.call(person, method, path, raw=b'{"x":1}'), 400, "invalid_body")
    # Query parameters: unknown, mistyped, repeated.
    for q in ("?bogus=1", "?mine=maybe", "?mine=true&mine=false", "?limit=-5", "?after=%zz"):
        assert_json_error(broker.call(person, method, path + q, raw=good), 400, "invalid_query")

    assert broker.snapshot() == before, "a refused call changed the store"

    # Replay: the first use is accepted, the second refused and without effect.
    token = person.host.attest(user=person.name, uid=person.uid, groups=person.groups, method=method, path=path, body=good)
    first = broker.call(person, method, path, raw=good, token=token)
    assert first.status < 300, first.body
    after_first = broker.snapshot()
    again = broker.call(person, method, path, raw=good, token=token)
    assert_json_error(again, 401, "attestation_replayed")
    assert broker.snapshot() == after_first


def test_a_retired_host_can_no_longer_attest(broker):
    ctx = setup(broker)
    alice = ctx["alice"]
    broker.ok(alice, "GET", "/v1/requests")
    broker.cli("host", "retire", "web-1")
    before = broker.snapshot()
    r = broker.call(alice, "POST", "/v1/requests", {"rule": "net-debug", "reason": "x"})
    assert_json_error(r, 401, "host_retired")
    assert broker.snapshot() == before


def test_unknown_paths_and_methods_get_json_errors(broker):
    ctx = setup(broker)
    for method, path, status, code in [("GET", "/v2/requests", 404, "not_found"), ("GET", "/", 404, "not_found"),
                                       ("DELETE", "/v1/requests", 405, "method_not_allowed"),
                                       ("PUT", "/healthz", 405, "method_not_allowed")]:
        assert_json_error(raw_http(broker.port, method, path), status, code)
    r = broker.call(ctx["alice"], "GET", "/v1/requests/01JNOTTHERE00000000000000000")
    assert_json_error(r, 404, "not_found")
