"""Several `jitbroker serve` replicas on one PostgreSQL database, called at the same instant:
what must happen once happens once, decided in the database (docs/broker.md, "Several
replicas"). Real concurrent calls: threads released together by a barrier, against two (or
three) replicas. Also: PostgreSQL restarted under load (clean 503 JSON errors, recovery by
itself), `kill -9` of a replica under load (every answered request stored, no grant twice,
the audit chain intact, every webhook delivered once), and the password never in a log."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest

from brokerlab import (JITBROKER, NET, ONCALL, Broker, HookReceiver, Response, decode_grant, raw_http, revocation_list,
                       rfc3339, wait_for)

pytestmark = pytest.mark.backends("postgres")


@pytest.fixture()
def replicas(tmp_path, store_backend):
    """make(n, **kw) -> n started replicas sharing the first one's store and signing key."""
    made: list[Broker] = []

    def make(n: int = 2, **kw) -> list[Broker]:
        kw.setdefault("workflows", [NET, ONCALL])
        first = Broker(tmp_path / "r0", replica="r0", **kw)
        group = [first] + [Broker(tmp_path / f"r{i}", store=first.store, signing_key=first.key, replica=f"r{i}", **kw)
                           for i in range(1, n)]
        made.extend(group)
        for b in group:
            b.start()
        return group

    yield make
    for b in made:
        b.close()


def at_once(calls) -> list:
    """Run the callables in threads released at the same instant; their results in order."""
    barrier = threading.Barrier(len(calls))

    def run(f):
        barrier.wait()
        return f()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def people(b: Broker) -> dict:
    return {
        "alice": b.person("alice", 1001, ["netops", "dba"], host="web-1"),
        "bob": b.person("bob", 1002, ["netleads", "dbleads"], host="web-2"),
        "carol": b.person("carol", 1003, ["netleads"], host="web-3"),
        "dave": b.person("dave", 1004, ["dba", "oncall"], host="db-1"),
        "admin": b.person("admin", 1006, ["jitadmin"], host="adm-1"),
    }


def audit_rows(b: Broker, kind: str) -> list[tuple]:
    with b.db() as c:
        return c.execute("SELECT subject, data FROM audit WHERE type = ? ORDER BY id", (kind,)).fetchall()


def test_a_replayed_attestation_is_accepted_once_across_replicas(replicas):
    a, b = replicas(2)
    p = people(a)
    body = json.dumps({"rule": "db-x", "reason": "replay"}).encode()
    for _ in range(15):
        token = p["dave"].host.attest(user="dave", uid=1004, groups=p["dave"].groups, method="POST",
                                      path="/v1/requests", body=body)
        answers = at_once([lambda r=r: r.call(p["dave"], "POST", "/v1/requests", raw=body, token=token)
                           for r in (a, b)])
        statuses = sorted(x.status for x in answers)
        assert statuses == [201, 401], [(x.status, x.body) for x in answers]
        refused = next(x for x in answers if x.status == 401)
        assert refused.error_code() == "attestation_replayed", refused.body
    with a.db() as c:
        assert c.execute("SELECT COUNT(*) FROM requests").fetchone()[0] == 15


def test_approvals_on_two_replicas_at_once_count_distinct_approvers(replicas):
    a, b = replicas(2)
    p = people(a)
    for i in range(10):
        rid = a.ok(p["alice"], "POST", "/v1/requests", {"rule": "net-debug", "reason": f"two at once {i}"}, status=201)["id"]
        path = f"/v1/requests/{rid}/approve"
        answers = at_once([lambda: a.call(p["bob"], "POST", path, {}), lambda: b.call(p["carol"], "POST", path, {})])
        assert [x.status for x in answers] == [200, 200], [x.body for x in answers]
        final = a.ok(p["alice"], "GET", f"/v1/requests/{rid}")
        assert final["state"] == "approved" and sorted(x["user"] for x in final["approvals"]) == ["bob", "carol"]
        # Exactly one of the two calls issued the grant, and it is the one the request names.
        granted = [x.json["grant_id"] for x in answers if x.json.get("grant_id")]
        assert granted == [final["grant_id"]], [x.json for x in answers]
        # One approver twice at once, on both replicas: one approval.
        rid = a.ok(p["alice"], "POST", "/v1/requests", {"rule": "net-debug", "reason": f"twice {i}"}, status=201)["id"]
        path = f"/v1/requests/{rid}/approve"
        answers = at_once([lambda: a.call(p["bob"], "POST", path, {}), lambda: b.call(p["bob"], "POST", path, {})])
        assert sorted(x.status for x in answers) == [200, 409], [x.body for x in answers]
        assert {x.error_code() for x in answers if x.status == 409} <= {"already_approved", "concurrent_change"}
        shown = a.ok(p["alice"], "GET", f"/v1/requests/{rid}")
        assert shown["state"] == "pending" and [x["user"] for x in shown["approvals"]] == ["bob"]
    with a.db() as c:
        dup = c.execute("SELECT request_id FROM grants GROUP BY request_id HAVING COUNT(*) > 1").fetchall()
        assert dup == [] and c.execute("SELECT COUNT(*) FROM grants").fetchone()[0] == 10
    assert len(audit_rows(a, "grant.issue")) == 10


def test_the_audit_chain_stays_one_chain_with_concurrent_writers(replicas):
    group = replicas(3)
    p = people(group[0])
    calls = [lambda r=r, i=i: r.call(p["dave"], "POST", "/v1/requests", {"rule": "db-x", "reason": f"chain {i}"})
             for i in range(60) for r in [group[i % 3]]]
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda f: f(), calls))
    assert [x.status for x in answers] == [201] * 60, {x.status: x.body for x in answers}
    with group[0].db() as c:
        ids = [i for (i,) in c.execute("SELECT id FROM audit ORDER BY id")]
    assert ids == list(range(1, len(ids) + 1))  # no gap, no fork: one head at a time
    out = group[1].cli("audit", "verify").stdout
    assert f"audit chain intact: {len(ids)} rows" in out, out


def test_revocation_list_seq_strictly_increases_across_replicas(replicas):
    a, b = replicas(2)
    p = people(a)
    grants = [a.ok(p["dave"], "POST", "/v1/requests", {"rule": "db-x", "reason": f"rev {i}"}, status=201)["grant_id"]
              for i in range(12)]
    calls = [lambda g=g, r=(a if i % 2 else b): r.call(p["dave"], "POST", f"/v1/grants/{g}/revoke", {"reason": "done"})
             for i, g in enumerate(grants)]
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda f: f(), calls))
    assert [x.status for x in answers] == [200] * 12, [x.body for x in answers]
    seqs = [json.loads(d)["revocations_seq"] for _, d in audit_rows(a, "grant.revoke")]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs  # in commit order, each its own
    listed = revocation_list(a, b.ok(p["alice"], "GET", "/v1/revocations")["token"])
    assert {e["jti"] for e in listed["revoked"]} >= set(grants) and listed["seq"] >= max(seqs)


def test_each_webhook_is_delivered_once_by_the_replica_set(replicas):
    hook = HookReceiver()
    try:
        group = replicas(3, webhooks=[{"url": hook.url, "format": "json"}])
        p = people(group[0])
        calls = [lambda r=group[i % 3], i=i: r.call(p["dave"], "POST", "/v1/requests", {"rule": "db-x", "reason": f"hook {i}"})
                 for i in range(30)]
        with ThreadPoolExecutor(6) as pool:
            assert {x.status for x in pool.map(lambda f: f(), calls)} == {201}
        with group[0].db() as c:
            want = {d for (d,) in c.execute("SELECT delivery_id FROM outbox")}
        wait_for(lambda: set(hook.by_delivery()) == want, 60, "every delivery at the receiver")
        time.sleep(1.5)  # a second delivery, if any replica were to send one, would arrive by now
        with hook.lock:
            posts = [r["headers"]["x-jitbroker-delivery"] for r in hook.received]
            bodies = [r["body"] for r in hook.received]
        assert sorted(posts) == sorted(want), "a delivery was POSTed more than once"
        assert all(b["delivery"] == d for b, d in zip(bodies, posts))  # the idempotency key, in the body too
    finally:
        hook.close()


def test_pending_expiry_on_every_replica_expires_each_request_once(replicas):
    group = replicas(3, pending_expiry="1s")
    p = people(group[0])
    rids = [group[i % 3].ok(p["alice"], "POST", "/v1/requests", {"rule": "net-debug", "reason": f"slow {i}"},
                            status=201)["id"] for i in range(12)]
    wait_for(lambda: all(group[0].ok(p["alice"], "GET", f"/v1/requests/{r}")["state"] == "expired" for r in rids),
             60, "every request to expire")
    time.sleep(6)  # another round of every replica's maintenance
    expired = [s for s, _ in audit_rows(group[0], "request.expire")]
    assert sorted(expired) == sorted(rids), expired


def test_sealed_grants_used_and_revoked_on_two_replicas_at_once_count_once(replicas):
    """A host's report of its sealed-grant uses sent to both replicas at once (as a retry
    after a lost answer would be) records each use once, whatever order each report lists
    them in; a sealed grant revoked on both at once is revoked once; a batch revoked by two
    admins' commands at once, once."""
    a, b = replicas(2)
    p = people(a)
    root = a.person("root", 0, [], host="db-1")

    def seal(n: int) -> list[str]:
        out = a.cli("break-glass", "seal", "--rule", "db-x", "--user", "dave", "--hosts", "db-1", "--count",
                    str(n), "--reason", "vault").stdout
        return [decode_grant(a, t)["jti"] for t in re.findall(r"^(v4\.public\.\S+)$", out, re.M)]

    now = rfc3339(datetime.now(timezone.utc))
    for _ in range(5):
        ids = seal(6)
        uses = [{"id": i, "at": now} for i in ids]
        answers = at_once([lambda: a.call(root, "POST", "/v1/sealed/used", {"uses": uses}),
                           lambda: b.call(root, "POST", "/v1/sealed/used", {"uses": uses[::-1]})])
        assert [x.status for x in answers] == [200, 200], [x.body for x in answers]
        recorded = answers[0].json["recorded"] + answers[1].json["recorded"]
        assert sorted(recorded) == sorted(ids), recorded  # each once, by one of the two
        # The same grant revoked through both replicas at once: once, the other 409.
        path = f"/v1/grants/{ids[0]}/revoke"
        answers = at_once([lambda: a.call(p["dave"], "POST", path, {"reason": "lost"}),
                           lambda: b.call(p["dave"], "POST", path, {"reason": "lost"})])
        assert sorted(x.status for x in answers) == [200, 409], [x.body for x in answers]
    batch = json.loads(a.cli("break-glass", "list", "--json").stdout)["sealed"][-1]["batch"]
    outs = at_once([lambda r=r: r.cli("break-glass", "revoke", batch, "--reason", "replaced").stdout for r in (a, b)])
    assert sorted("nothing to revoke" in o for o in outs) == [False, True], outs
    revoked = [json.loads(d)["grant"]["id"] for _, d in audit_rows(a, "grant.revoke")]
    assert len(revoked) == len(set(revoked)) == 5 + 5, revoked  # 5 single ones, then the batch's other 5
    used = audit_rows(a, "grant.sealed_use")
    assert len(used) == len({s for s, _ in used}) == 30
    listed = revocation_list(a, b.ok(p["alice"], "GET", "/v1/revocations")["token"])
    assert set(revoked) <= {e["jti"] for e in listed["revoked"]}
    assert a.cli("audit", "verify").returncode == 0


def load(b_of, who, stop: threading.Event, answers: list, lock: threading.Lock, n_max: int = 400):
    """Auto-approved requests, one after another, until `stop` or `n_max`; (status, body, replica)."""
    for i in range(n_max):
        if stop.is_set():
            return
        b = b_of(i)
        try:
            r = b.call(who, "POST", "/v1/requests", {"rule": "db-x", "reason": f"load {i}"})
        except OSError as e:  # the replica was killed: no answer
            r = Response(0, str(e).encode(), {})
        with lock:
            answers.append((r, b))
        time.sleep(0.02)


def test_postgres_restart_under_load_gives_clean_503s_then_recovers(replicas, store_backend):
    a, b = replicas(2)
    p = people(a)
    stop, lock, answers = threading.Event(), threading.Lock(), []
    workers = [threading.Thread(target=load, args=(lambda i, r=r: r, p["dave"], stop, answers, lock)) for r in (a, b)]
    for w in workers:
        w.start()
    try:
        wait_for(lambda: len(answers) >= 10, 60, "load before the restart")
        cluster = a.store.cluster
        cluster.stop()
        outage = wait_for(lambda: [x for x, _ in answers if x.status == 503], 60, "a 503 during the outage")
        for r in (a, b):
            ready = raw_http(r.port, "GET", "/readyz")
            assert ready.status == 503, ready.body
        time.sleep(2)
        cluster._pg_ctl_start()
        mark = len(answers)
        wait_for(lambda: sum(1 for x, _ in answers[mark:] if x.status == 201) >= 10, 90,
                 "both replicas to answer again after PostgreSQL's restart")
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=60)
    for x, _ in answers:
        assert x.status in (201, 503), (x.status, x.body)
        if x.status == 503:
            assert x.headers["content-type"].startswith("application/json") and x.error_code() == "store_unavailable"
            assert "try again" in x.json["error"]["message"]
    assert outage and {r.port for x, r in answers[mark:] if x.status == 201} == {a.port, b.port}
    # Every answered grant is in the store, the chain is whole.
    answered = {x.json["grant_id"] for x, _ in answers if x.status == 201}
    with a.db() as c:
        stored = {g for (g,) in c.execute("SELECT id FROM grants")}
    assert answered <= stored
    assert a.cli("audit", "verify").returncode == 0
    for r in (a, b):
        assert r.proc.poll() is None  # recovered by itself: nobody restarted a broker


def test_kill_9_of_a_replica_under_load_loses_nothing_answered(replicas):
    hook = HookReceiver()
    try:
        group = replicas(3, webhooks=[{"url": hook.url, "format": "json", "events": ["grant.issue"]}],
                         extra='webhook_lease = "20s"\n')
        victim, survivors = group[0], group[1:]
        p = people(group[1])
        stop, lock, answers = threading.Event(), threading.Lock(), []
        workers = [threading.Thread(target=load, args=(lambda i, r=r: r, p["dave"], stop, answers, lock, 150))
                   for r in group]
        for w in workers:
            w.start()
        wait_for(lambda: sum(1 for x, r in answers if r is victim and x.status == 201) >= 20, 60,
                 "load on the victim")
        victim.kill()
        wait_for(lambda: sum(1 for x, r in answers if r is not victim and x.status == 201) >= 120, 120,
                 "the survivors to carry on")
        stop.set()
        for w in workers:
            w.join(timeout=60)
        ok = [x for x, _ in answers if x.status == 201]
        assert all(x.status in (201, 0) for x, _ in answers), {x.status for x, _ in answers}
        with survivors[0].db() as c:
            stored = {(g, r) for g, r in c.execute("SELECT id, request_id FROM grants")}
            dup = c.execute("SELECT request_id FROM grants GROUP BY request_id HAVING COUNT(*) > 1").fetchall()
            want = {d for (d,) in c.execute("SELECT delivery_id FROM outbox")}
        assert {(x.json["grant_id"], x.json["id"]) for x in ok} <= stored  # every 2xx answer is in the store
        assert dup == []  # no grant issued twice
        assert survivors[0].cli("audit", "verify").returncode == 0
        # Every delivery arrives; a second POST of one only if the victim died between the
        # receiver's answer and recording it (then with the same key, for the receiver to drop).
        wait_for(lambda: set(hook.by_delivery()) == want, 90, "every webhook delivery (the victim's claims lapse)")
        with hook.lock:
            posts = [r["headers"]["x-jitbroker-delivery"] for r in hook.received]
        repeated = {d for d in posts if posts.count(d) > 1}
        assert len(repeated) <= 1, repeated
    finally:
        hook.close()


def test_the_store_password_never_appears_in_logs_or_errors(replicas, tmp_path):
    a, b = replicas(2)
    p = people(a)
    a.ok(p["dave"], "POST", "/v1/requests", {"rule": "db-x", "reason": "pw"}, status=201)
    cluster = a.store.cluster
    secret = cluster.password
    # A URL with a password is refused, without repeating it.
    conf = tmp_path / "pw.toml"
    conf.write_text(a.config.read_text().replace("postgres://jitbroker@", f"postgres://jitbroker:{secret}@"))
    r = subprocess.run([JITBROKER, "--config", str(conf), "host", "list"], capture_output=True, text=True)
    assert r.returncode == 1 and "password_file" in r.stderr and secret not in r.stderr + r.stdout
    # A wrong password, and PostgreSQL down: errors name the store, never the password.
    cluster.sql(f"ALTER ROLE jitbroker PASSWORD '{secret}x'")
    try:
        r = subprocess.run([JITBROKER, "--config", str(a.config), "host", "list"], capture_output=True, text=True)
        assert r.returncode == 1 and "password authentication failed" in r.stderr, r.stderr
        assert secret not in r.stderr + r.stdout
    finally:
        cluster.sql(f"ALTER ROLE jitbroker PASSWORD '{secret}'")
    cluster.stop()
    try:
        answer = b.call(p["dave"], "POST", "/v1/requests", {"rule": "db-x", "reason": "down"})
        assert answer.status == 503 and secret not in answer.body.decode()
    finally:
        cluster._pg_ctl_start()
    a.stop()
    b.stop()
    for r in (a, b):
        assert secret not in r.log.read_text(errors="replace")
    assert secret not in cluster.log.read_text(errors="replace")
