"""A stalled syslog cannot stall the broker: with its log socket bound but never read (any local
user can fill /dev/log's small queue), requests keep being answered; the events wait in the
store (jitbroker_syslog_backlog counts them) and, once the socket is read again, every one
arrives exactly once, in the order of the audit table — also across a SIGKILL and restart."""

from __future__ import annotations

import socket
import sys
import threading

from brokerlab import NET, ONCALL, REPO, Broker, raw_http, wait_for

sys.path.insert(0, str(REPO / "tests" / "harness"))
from jitlab import AuditListener, parse_datagram  # noqa: E402

SYSLOG_TYPES = ("request.create", "request.approve", "request.deny", "grant.issue", "grant.revoke", "break_glass")
THREADS, PER_THREAD = 10, 4
# A hang guard, not a timing: with syslog sends in the request path, ten callers queue behind
# each other for seconds each (2.9 s per request was measured with a stalled socket).
REQUEST_TIMEOUT = 20


def expected_events(b: Broker) -> list[tuple[str, str]]:
    """(type, request id) of every syslog event, in audit-table order."""
    import json
    with b.db() as c:
        rows = c.execute("SELECT type, subject, data FROM audit ORDER BY id").fetchall()
    out = []
    for kind, subject, data in rows:
        if kind in SYSLOG_TYPES:
            d = json.loads(data)
            out.append((kind, d["request"]["id"] if "request" in d else subject))
    return out


def key(rec) -> tuple[str, str]:
    return rec.action, rec.get("jitrun.request.id")


def flood(b: Broker, who) -> list[str]:
    """THREADS callers, PER_THREAD auto-approved requests each, plus /healthz; the problems."""
    problems: list[str] = []

    def caller(t: int):
        for i in range(PER_THREAD):
            body = {"rule": "db-stall", "reason": f"stalled syslog {t}/{i}"}
            data = __import__("json").dumps(body).encode()
            token = who.host.attest(user=who.name, uid=who.uid, groups=who.groups, method="POST",
                                    path="/v1/requests", body=data)
            try:
                r = raw_http(b.port, "POST", "/v1/requests", data, {
                    "Authorization": f"JitAttest {token}", "Content-Type": "application/json"},
                    timeout=REQUEST_TIMEOUT)
                if r.status != 201 or r.json["state"] != "approved":
                    problems.append(f"{t}/{i}: {r.status} {r.body[:200]!r}")
                h = raw_http(b.port, "GET", "/healthz", timeout=REQUEST_TIMEOUT)
                if h.status != 200:
                    problems.append(f"healthz {h.status}")
            except OSError as e:
                problems.append(f"{t}/{i}: {e!r}")

    threads = [threading.Thread(target=caller, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return problems


def stalled_socket(path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    return s


def test_requests_are_answered_and_events_arrive_once_in_order_when_syslog_reads_again(tmp_path):
    path = tmp_path / "stalled.sock"
    stalled = stalled_socket(path)
    b = Broker(tmp_path / "b", workflows=[NET, ONCALL], audit_socket=path).start()
    try:
        dave = b.person("dave", 1004, ["dba", "oncall"], host="db-1")
        problems = flood(b, dave)
        assert not problems, problems[:5]
        expected = expected_events(b)
        assert len(expected) == 2 * THREADS * PER_THREAD
        # Nothing reads the socket: most events wait in the store, counted; sends are retried.
        m = wait_for(lambda: (lambda m: m if m["jitbroker_syslog_failures_total"] > 0 else None)(b.metrics()),
                     30, "a refused send")
        assert m["jitbroker_syslog_backlog"] > 0, m
        assert m["jitbroker_syslog_backlog"] + m["jitbroker_syslog_sent_total"] == len(expected), m
        log = b.log.read_text()
        assert "does not take events" in log and "[audit] socket in broker.toml" in log, log
        assert "fail_closed" not in log and "jitrun.toml" not in log, log

        # Read the socket again: everything arrives, in order, once.
        got: list[bytes] = []
        stop = threading.Event()
        stalled.settimeout(0.2)

        def reader():
            while not stop.is_set():
                try:
                    got.append(stalled.recv(1 << 17))
                except socket.timeout:
                    pass

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        try:
            wait_for(lambda: b.metrics()["jitbroker_syslog_backlog"] == 0 and len(got) >= len(expected), 60,
                     "the backlog to reach the reader")
        finally:
            stop.set()
            t.join()
        events = [parse_datagram(d) for d in got]
        assert all(e.app == "jitbroker" for e in events)
        assert [key(e) for e in events] == expected
        assert "takes events again" in b.log.read_text()
    finally:
        b.close()
        stalled.close()


def test_events_waiting_for_syslog_survive_a_sigkill(tmp_path):
    path = tmp_path / "stalled.sock"
    stalled = stalled_socket(path)
    b = Broker(tmp_path / "b", workflows=[NET, ONCALL], audit_socket=path).start()
    listener = None
    try:
        dave = b.person("dave", 1004, ["dba", "oncall"], host="db-1")
        alice = b.person("alice", 1001, ["netops"], host="web-1")
        for i in range(12):
            b.ok(dave, "POST", "/v1/requests", {"rule": "db-stall", "reason": f"before the crash {i}"}, status=201)
        b.ok(alice, "POST", "/v1/requests", {"rule": "net-debug", "reason": "pending"}, status=201)
        expected = expected_events(b)
        # What the socket took before it filled up is recorded as sent (the rest waits).
        first = stalled.recv(1 << 17, socket.MSG_PEEK)
        assert parse_datagram(first).action == "request.create"

        def recorded():
            with b.db() as c:
                waiting = c.execute("SELECT COUNT(*) FROM syslog_outbox").fetchone()[0]
            return waiting == b.metrics()["jitbroker_syslog_backlog"] > 0
        wait_for(recorded, 30, "the sent events to be recorded")
        b.kill()
        # Whatever the stalled socket holds was delivered before the crash.
        stalled.settimeout(0.2)
        delivered = []
        while True:
            try:
                delivered.append(parse_datagram(stalled.recv(1 << 17)))
            except socket.timeout:
                break
        stalled.close()
        listener = AuditListener(path).start()  # the syslog daemon is back
        b.start()
        wait_for(lambda: b.metrics()["jitbroker_syslog_backlog"] == 0, 60, "the backlog after the restart")
        listener.sync()
        assert [key(e) for e in delivered + listener.records] == expected
    finally:
        b.close()
        if listener:
            listener.close()
