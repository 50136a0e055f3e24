"""Connections cannot exhaust the broker: thousands of silent, idle keep-alive and slowloris
connections (loopback, bounded in number and time) while requests keep being answered; the
server closes each stalled one after its timeout (http.header_timeout, http.idle_timeout);
the connection limit stays below the open-file limit, which the broker raises at start; a
body that never arrives is answered 408.

Timings are not asserted (the latency under attack is in `make bench-broker`'s attack report):
only that every request is answered and every stalled connection is closed by the server."""

from __future__ import annotations

import json
import os
import socket
import threading
import time

import pytest
from attackers import Attack, raise_nofile
from brokerlab import NET, ONCALL, Broker, raw_http, wait_for

# The HTTP layer under attack (thousands of connections, slowloris, descriptor limits): the
# store is not involved, so these run on one backend (SQLite) only.
pytestmark = pytest.mark.backends("sqlite")

HEADER_TIMEOUT, IDLE_TIMEOUT = 3, 4
HTTP = f'[http]\nheader_timeout = "{HEADER_TIMEOUT}s"\nidle_timeout = "{IDLE_TIMEOUT}s"\n'


def limits_of(pid: int) -> tuple[int, int]:
    for line in open(f"/proc/{pid}/limits"):
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no Max open files line")


def client_sockets(pid: int) -> int:
    """Sockets the broker holds (listener and syslog included)."""
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return n


def post_grant(b: Broker, who, i: int) -> None:
    """One auto-approved request; its answer must be the issued grant."""
    r = b.call(who, "POST", "/v1/requests", {"rule": "db-attack", "reason": f"under attack {i}"})
    assert r.status == 201, (r.status, r.body[:300])
    body = r.json
    assert body["state"] == "approved" and body["grant_id"] and body["user"] == who.name, body


def test_stalled_connections_are_closed_while_requests_are_answered(tmp_path):
    silent, idle, slow = 1000, 1000, 1100
    raise_nofile(silent + idle + slow + 512)
    hard = limits_of(os.getpid())[1]
    b = Broker(tmp_path / "b", workflows=[NET, ONCALL], extra=HTTP)
    try:
        # The broker starts with a low soft limit and raises it to the hard one.
        b.start(nofile=(1024, hard))
        assert limits_of(b.proc.pid) == (hard, hard)
        dave = b.person("dave", 1004, ["dba", "oncall"], host="db-1")
        metrics = b.metrics()
        assert metrics["jitbroker_connection_limit"] == min(hard - 256, 16384), metrics
        for i in range(5):
            post_grant(b, dave, i)

        attack = Attack(b.port, silent=silent, idle=idle, slow=slow).start()
        answered, failures = [], []
        stop = threading.Event()

        def keep_posting():
            i = 0
            while not stop.is_set() or i < 40:
                try:
                    post_grant(b, dave, 1000 + i)
                    health = raw_http(b.port, "GET", "/healthz", timeout=30)
                    assert health.status == 200 and health.json == {"status": "ok"}, health
                    answered.append(i)
                except (AssertionError, OSError) as e:
                    failures.append(f"request {i}: {e!r}")
                i += 1

        poster = threading.Thread(target=keep_posting)
        try:
            wait_for(lambda: sum(c.connected for c in attack.conns) == len(attack.conns), 60,
                     "every attacking connection to be accepted by the kernel")
            poster.start()
            # Every stalled connection is closed by the server (generous bound: a hang guard).
            wait_for(attack.all_closed, 180, "the server to close every stalled connection", interval=0.2)
        finally:
            stop.set()
            poster.join(timeout=300)
            attack.close()
        assert not attack.errors, attack.errors[:5]
        assert not failures, failures[:5]
        assert len(answered) >= 40
        # The idle ones were real keep-alive connections: their first request was answered.
        assert all(c.answered for c in attack.conns if c.kind == "idle")
        # Nothing was ever answered on the silent and slowloris ones: they were cut off.
        assert not any(c.received for c in attack.conns if c.kind != "idle")
        closed = b.metrics()
        assert closed['jitbroker_connections_closed_total{reason="header_timeout"}'] == silent + slow, closed
        assert closed['jitbroker_connections_closed_total{reason="idle_timeout"}'] == idle, closed
        # Still serving afterwards.
        post_grant(b, dave, 99999)
    finally:
        b.close()


def test_at_the_connection_limit_the_broker_stops_accepting(tmp_path):
    """With max_connections = 40, 120 clients hold connections: the broker never holds more
    than 40 client sockets, and it answers again once the header timeout frees slots."""
    raise_nofile(1024)
    b = Broker(tmp_path / "b", workflows=[NET, ONCALL], extra=HTTP + "max_connections = 40\n").start()
    try:
        dave = b.person("dave", 1004, ["dba", "oncall"], host="db-1")
        base = client_sockets(b.proc.pid)
        assert b.metrics()["jitbroker_connection_limit"] == 40
        attack = Attack(b.port, silent=120).start()
        try:
            peak = 0
            deadline = time.monotonic() + HEADER_TIMEOUT * 3
            while time.monotonic() < deadline:
                peak = max(peak, client_sockets(b.proc.pid) - base)
                time.sleep(0.05)
            assert 30 <= peak <= 40, peak
            # The backlog drains as the header timeout closes the held ones; a request waits its turn.
            post_grant(b, dave, 1)
            wait_for(attack.all_closed, 120, "every held connection to be closed", interval=0.2)
        finally:
            attack.close()
        after = b.metrics()
        assert after['jitbroker_connections_closed_total{reason="header_timeout"}'] == 120
        assert after["jitbroker_connections"] == 1  # the scrape's own
    finally:
        b.close()


def test_an_open_file_limit_too_low_for_connections_refuses_to_start(tmp_path):
    b = Broker(tmp_path / "b", workflows=[NET])
    try:
        with pytest.raises(AssertionError) as e:
            b.start(nofile=(200, 200))
        assert "RLIMIT_NOFILE) is 200" in b.log.read_text() and "LimitNOFILE" in b.log.read_text(), e
    finally:
        b.close()
    b2 = Broker(tmp_path / "b2", workflows=[NET], extra="[http]\nmax_connections = 5000\n")
    try:
        with pytest.raises(AssertionError):
            b2.start(nofile=(2048, 2048))
        assert "http.max_connections = 5000 needs an open-file limit of at least 5256" in b2.log.read_text()
    finally:
        b2.close()


def test_the_packaged_unit_gives_the_broker_room_for_its_default_connection_limit():
    from brokerlab import REPO
    unit = (REPO / "packaging" / "systemd" / "jitbroker.service").read_text()
    limits = [line.split("=", 1)[1] for line in unit.splitlines() if line.startswith("LimitNOFILE=")]
    assert len(limits) == 1, unit
    assert int(limits[0]) >= 16384 + 256, limits


def test_a_body_that_does_not_arrive_is_answered_408(tmp_path):
    b = Broker(tmp_path / "b", workflows=[NET, ONCALL], extra=HTTP).start()
    try:
        dave = b.person("dave", 1004, ["dba", "oncall"], host="db-1")
        body = json.dumps({"rule": "db-x", "reason": "slow body"}).encode()
        token = dave.host.attest(user=dave.name, uid=dave.uid, groups=dave.groups, method="POST",
                                 path="/v1/requests", body=body)
        before = b.snapshot()
        with socket.create_connection(("127.0.0.1", b.port), timeout=60) as s:
            s.sendall(b"POST /v1/requests HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\n"
                      b"Authorization: JitAttest " + token.encode() + b"\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(body) + body[:10])
            answer = b""
            while chunk := s.recv(65536):  # the server answers and closes
                answer += chunk
        head, _, rest = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), answer[:300]
        assert json.loads(rest)["error"]["code"] == "body_timeout"
        assert b.snapshot() == before
    finally:
        b.close()
