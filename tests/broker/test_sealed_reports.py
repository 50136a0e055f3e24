"""Sealed break-glass grants on the broker alone (the host side is in tests/e2e_broker and
tests/e2e): a host reports only its own uses, once; a use time from a host with a wrong
clock stays within the grant's life; revoking one through the API keeps it on the list for
its whole validity; sealing follows the workflow (break-glass allowed, hosts)."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

from brokerlab import decode_grant, parse_time, revocation_list, rfc3339


def seal(b, *extra: str):
    return b.cli("break-glass", "seal", "--rule", "db-x", "--user", "dave", "--hosts", "db-1", "--reason", "vault",
                 *extra)


def tokens(out: str) -> list[str]:
    return re.findall(r"^(v4\.public\.\S+)$", out, re.M)


def listed(b) -> dict[str, dict]:
    return {g["id"]: g for g in json.loads(b.cli("break-glass", "list", "--json").stdout)["sealed"]}


def test_a_host_reports_its_own_uses_once(broker, people):
    t = tokens(seal(broker, "--count", "2", "--validity", "14d").stdout)
    ids = [decode_grant(broker, x)["jti"] for x in t]
    c = decode_grant(broker, t[0])
    assert parse_time(c["exp"]) - parse_time(c["iat"]) == timedelta(days=14)
    root_db1 = broker.person("root", 0, [], host="db-1")
    root_web1 = broker.person("root", 0, [], host="web-1")
    now = datetime.now(timezone.utc)
    uses = {"uses": [{"id": ids[0], "at": rfc3339(now)}, {"id": "01J0000000000000000000000A", "at": rfc3339(now)}]}
    # Another host's root: its counters are not for these grants.
    assert broker.ok(root_web1, "POST", "/v1/sealed/used", uses) == {"recorded": []}
    # The host the grants are for: recorded once.
    assert broker.ok(root_db1, "POST", "/v1/sealed/used", uses) == {"recorded": [ids[0]]}
    assert broker.ok(root_db1, "POST", "/v1/sealed/used", uses) == {"recorded": []}
    # A clock in the future does not date a use after the report.
    later = {"uses": [{"id": ids[1], "at": rfc3339(now + timedelta(days=400))}]}
    assert broker.ok(root_db1, "POST", "/v1/sealed/used", later) == {"recorded": [ids[1]]}
    seen = listed(broker)
    assert [u["host"] for u in seen[ids[0]]["uses"]] == ["db-1"]
    assert parse_time(seen[ids[1]]["uses"][0]["at"]) <= datetime.now(timezone.utc) + timedelta(seconds=5)
    # Not root: refused.
    r = broker.call(people["dave"], "POST", "/v1/sealed/used", uses)
    assert r.status == 403 and r.error_code() == "not_root", r.body
    # Too many at once.
    many = {"uses": [{"id": f"01J{i:023d}", "at": rfc3339(now)} for i in range(501)]}
    r = broker.call(root_db1, "POST", "/v1/sealed/used", many)
    assert r.status == 400 and "at most 500" in r.body.decode(), r.body


def test_a_revoked_sealed_grant_stays_on_the_list_for_its_validity(broker, people):
    t = tokens(seal(broker, "--validity", "20d").stdout)[0]
    gid = decode_grant(broker, t)["jti"]
    admin, dave, mallory = people["admin"], people["dave"], people["mallory"]
    # Nobody without a say over it sees it.
    assert broker.call(mallory, "POST", f"/v1/grants/{gid}/revoke", {"reason": "x"}).status == 404
    g = broker.ok(admin, "POST", f"/v1/grants/{gid}/revoke", {"reason": "vault lost"})
    assert g["revoked"] and g["break_glass"] and g["user"] == "dave", g
    r = broker.call(dave, "POST", f"/v1/grants/{gid}/revoke", {"reason": "again"})
    assert r.status == 409 and r.error_code() == "already_revoked", r.body
    lst = revocation_list(broker, broker.ok(dave, "GET", "/v1/revocations")["token"])
    entry = next(e for e in lst["revoked"] if e["jti"] == gid)
    assert entry["exp"] == decode_grant(broker, t)["exp"] and entry["reason"] == "vault lost"
    assert listed(broker)[gid]["revoked"]


def test_sealing_needs_a_break_glass_workflow_and_named_hosts(broker):
    p = broker.cli("break-glass", "seal", "--rule", "net-x", "--user", "alice", "--hosts", "web-1", "--reason", "x",
                   check=False)
    assert p.returncode == 1 and "does not allow break-glass" in p.stderr, p
    p = broker.cli("break-glass", "seal", "--rule", "db-x", "--user", "dave", "--hosts", "db-*", "--reason", "x",
                   check=False)
    assert p.returncode == 1 and "no globs" in p.stderr, p
    p = broker.cli("break-glass", "seal", "--rule", "db-x", "--user", "dave", "--hosts", "db-1", "--reason", "x",
                   "--validity", "400d", check=False)
    assert p.returncode == 1 and "--validity" in p.stderr, p
    assert json.loads(broker.cli("break-glass", "list", "--json").stdout) == {"sealed": []}
