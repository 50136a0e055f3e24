"""Revocation watches (docs/broker.md, "Revocation watch"): `GET /v1/revocations?after_seq=N`
is held open until the list's seq passes N, then answered with the new list; after
`http.watch_hold` (or the client's shorter `wait`) it is answered with the unchanged one; at
most `http.max_watches` are held at once (then 429 with Retry-After), and ordinary calls keep
working; a replica on the same store wakes its watchers for a revocation made on another.

Nothing here measures time: each test waits for a state it can observe (the broker's
/metrics say a watch is held) and uses timeouts only to catch hangs."""

from __future__ import annotations

import re
import subprocess
import threading

import pytest
from brokerlab import JITBROKER, NET, ONCALL, Broker, raw_http, revocation_list, wait_for


class Watch(threading.Thread):
    """One watch call in the background; `.reply` once it is answered."""

    def __init__(self, broker: Broker, who, after: int, wait: int | None = None, timeout: float = 120):
        super().__init__(daemon=True)
        self.broker, self.who, self.path = broker, who, f"/v1/revocations?after_seq={after}"
        if wait is not None:
            self.path += f"&wait={wait}"
        self.timeout = timeout
        self.reply = None
        self.start()

    def run(self):
        token = self.who.host.attest(user=self.who.name, uid=self.who.uid, groups=self.who.groups, method="GET",
                                     path="/v1/revocations", body=b"")
        self.reply = raw_http(self.broker.port, "GET", self.path, headers={"Authorization": f"JitAttest {token}"},
                              timeout=self.timeout)

    def result(self, timeout: float = 130):
        self.join(timeout)
        assert self.reply is not None, f"the watch {self.path} was not answered"
        return self.reply


def held(b: Broker, n: int) -> None:
    wait_for(lambda: b.metrics()["jitbroker_revocation_watches"] == n, 30, f"{n} watch(es) held")


def grant(b: Broker, dave) -> str:
    return b.ok(dave, "POST", "/v1/requests", {"rule": "db-x", "reason": "watch test"}, status=201)["grant_id"]


def current_seq(b: Broker, who) -> int:
    return b.ok(who, "GET", "/v1/revocations")["seq"]


def test_a_watch_is_answered_when_a_grant_is_revoked(broker, people):
    dave = people["dave"]
    gid = grant(broker, dave)
    seq = current_seq(broker, dave)
    w = Watch(broker, dave, seq)
    held(broker, 1)
    assert w.is_alive(), "the watch was answered before anything changed"
    broker.ok(dave, "POST", f"/v1/grants/{gid}/revoke", {"reason": "watch test"})
    r = w.result()
    assert r.status == 200, r.body
    assert r.json["seq"] > seq
    assert gid in [e["jti"] for e in revocation_list(broker, r.json["token"])["revoked"]]
    held(broker, 0)
    # Already behind: answered at once, whatever the hold.
    r = Watch(broker, dave, seq).result()
    assert r.status == 200 and r.json["seq"] > seq, r.body


def test_a_watch_ends_with_the_unchanged_list_after_its_hold(make_broker, people):
    b = make_broker(extra='[http]\nwatch_hold = "2s"\n')
    dave = b.person("dave", 1004, ["dba", "oncall"], host="db-1")
    seq = current_seq(b, dave)
    # The client asks for an hour; the broker holds its watch_hold at most.
    r = Watch(b, dave, seq, wait=3600).result()
    assert r.status == 200 and r.json["seq"] == seq, r.body
    # wait=0: an answer at once.
    r = Watch(b, dave, seq, wait=0).result()
    assert r.status == 200 and r.json["seq"] == seq, r.body


def test_held_watches_are_capped_and_other_calls_go_on(make_broker):
    b = make_broker(extra='[http]\nmax_watches = 2\nwatch_hold = "300s"\n')
    dave = b.person("dave", 1004, ["dba", "oncall"], host="db-1")
    m = b.metrics()
    assert m["jitbroker_revocation_watch_limit"] == 2
    seq = current_seq(b, dave)
    first = [Watch(b, dave, seq) for _ in range(2)]
    held(b, 2)
    r = Watch(b, dave, seq).result(timeout=60)
    assert r.status == 429 and r.error_code() == "too_many_watches", r.body
    assert int(r.headers["retry-after"]) >= 1
    assert "max_watches" in r.json["error"]["message"]
    assert b.metrics()["jitbroker_revocation_watches_refused_total"] == 1
    # Everything else still works: the list without a watch, requests, revocation.
    assert current_seq(b, dave) == seq
    gid = grant(b, dave)
    b.ok(dave, "POST", f"/v1/grants/{gid}/revoke", {"reason": "capped"})
    for w in first:
        r = w.result()
        assert r.status == 200 and r.json["seq"] > seq, r.body
    held(b, 0)


def test_one_host_cannot_take_every_watch(make_broker):
    b = make_broker(extra='[http]\nmax_watches_per_host = 1\nwatch_hold = "300s"\n')
    dave = b.person("dave", 1004, ["dba", "oncall"], host="db-1")
    alice = b.person("alice", 1001, ["netops", "dba"], host="web-1")
    seq = current_seq(b, dave)
    first = Watch(b, dave, seq)
    held(b, 1)
    # Another watch from db-1, by anyone there: refused; one from web-1: held.
    r = Watch(b, b.person("mallory", 1005, ["users"], host="db-1"), seq).result(timeout=60)
    assert r.status == 429 and r.error_code() == "too_many_watches", r.body
    assert "for host db-1" in r.json["error"]["message"], r.body
    other = Watch(b, alice, seq)
    held(b, 2)
    gid = grant(b, dave)
    b.ok(dave, "POST", f"/v1/grants/{gid}/revoke", {"reason": "per host"})
    for w in (first, other):
        assert w.result().json["seq"] > seq
    held(b, 0)
    # The slot is back once the watch is answered.
    seq = current_seq(b, dave)
    again = Watch(b, dave, seq)
    held(b, 1)
    assert again.is_alive()


def test_max_watches_must_leave_connections_for_everything_else(tmp_path):
    b = Broker(tmp_path / "b", workflows=[NET, ONCALL], extra='[http]\nmax_connections = 100\nmax_watches = 51\n')
    try:
        p = subprocess.run([JITBROKER, "--config", str(b.config), "serve"], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=60)
        assert p.returncode != 0 and "max_watches = 51" in p.stderr and "at most 50" in p.stderr, p
    finally:
        b.close()


@pytest.fixture()
def two_replicas(tmp_path, store_backend):
    """make(listen=True) -> (a, b): two started replicas on one PostgreSQL database with one
    signing key; b holds watches 300 s (longer than a client here waits), so only an
    announcement or b's own look at the store can answer them; `notifications=False` sets
    b's `[postgres] notifications = false`."""
    made: list[Broker] = []

    def make(notifications: bool = True) -> tuple[Broker, Broker]:
        hold = '[http]\nwatch_hold = "300s"\n'
        a = Broker(tmp_path / "a", workflows=[NET, ONCALL], replica="a", extra=hold)
        b = Broker(tmp_path / "b", workflows=[NET, ONCALL], replica="b", extra=hold, store=a.store,
                   signing_key=a.key)
        if not notifications:
            b.config.write_text(b.config.read_text().replace("[postgres]\n", "[postgres]\nnotifications = false\n"))
        made.extend([a, b])
        return a.start(), b.start()

    yield make
    for b in made:
        b.close()


def revoked_on_a_answers_b(a: Broker, b: Broker) -> None:
    """A watch held on b is answered with the list that holds a grant revoked on a."""
    dave = a.person("dave", 1004, ["dba", "oncall"], host="db-1")
    gid = grant(a, dave)
    seq = current_seq(b, dave)
    w = Watch(b, dave, seq, timeout=120)
    held(b, 1)
    a.ok(dave, "POST", f"/v1/grants/{gid}/revoke", {"reason": "revoked on A"})
    r = w.result()
    assert r.status == 200 and r.json["seq"] > seq, r.body
    assert gid in [e["jti"] for e in revocation_list(b, r.json["token"])["revoked"]]


# Replicas share a PostgreSQL database; a SQLite file serves one broker process, whose own
# revocations wake its watchers directly (the tests above, on both stores).
@pytest.mark.backends("postgres")
def test_a_replica_wakes_its_watchers_for_a_revocation_made_on_another(two_replicas):
    """b hears the revocation committed on a (NOTIFY on the store's channel, LISTEN on b's
    own connection) and answers its watcher with the new list."""
    a, b = two_replicas()
    wait_for(lambda: b.metrics()["jitbroker_revocation_listener_up"] == 1, 30, "b to listen for revocations")
    before = b.metrics()["jitbroker_revocation_announcements_total"]
    revoked_on_a_answers_b(a, b)
    assert b.metrics()["jitbroker_revocation_announcements_total"] > before
    # Its own revocations too: one announcement per new list, whichever replica stored it.
    assert a.metrics()["jitbroker_revocation_announcements_total"] >= 1


@pytest.mark.backends("postgres")
def test_without_notifications_a_replica_still_wakes_its_watchers_at_its_look(two_replicas):
    """`[postgres] notifications = false` (LISTEN does not pass a transaction-pooling PgBouncer): b
    hears nothing, and its once-a-second look at the store's seq answers the watch."""
    a, b = two_replicas(notifications=False)
    revoked_on_a_answers_b(a, b)
    m = b.metrics()
    assert m["jitbroker_revocation_listener_up"] == 0 and m["jitbroker_revocation_announcements_total"] == 0, m


@pytest.mark.backends("postgres")
def test_a_replica_listens_again_after_losing_its_connection(two_replicas, pg_cluster):
    """The listening connection is cut (as a restart or fail-over of PostgreSQL would): b says
    so, connects again by itself, and hears the next revocation."""
    a, b = two_replicas()
    wait_for(lambda: b.metrics()["jitbroker_revocation_listener_up"] == 1, 30, "b to listen for revocations")
    cut = pg_cluster.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE application_name = 'jitbroker b' AND query = 'LISTEN jitbroker_revocations'")
    assert cut.strip() == "t", cut
    again = re.compile(r"^jitbroker: listening for revocations on \S+ again$", re.M)
    wait_for(lambda: again.search(b.log.read_text()), 60, "b to listen again")
    log = b.log.read_text()
    assert "jitbroker: not listening for revocations on" in log and pg_cluster.password not in log, log
    wait_for(lambda: b.metrics()["jitbroker_revocation_listener_up"] == 1, 30, "b's listener gauge")
    before = b.metrics()["jitbroker_revocation_announcements_total"]
    revoked_on_a_answers_b(a, b)
    assert b.metrics()["jitbroker_revocation_announcements_total"] > before
