"""Clients that hold connections to a server without making progress, for the connection
attack tests (tests/broker/test_connections.py) and the attack benchmark
(scripts/bench_broker.py --attack). Loopback only, bounded in number and time.

Three kinds, all driven from one thread with epoll:
* silent: connect and send nothing;
* idle: one complete keep-alive request (GET /healthz), read the answer, then nothing;
* slowloris: a request head that never ends: one more header line every `drip` seconds.

Each socket records when the server closed it (EOF or reset); the attackers never close a
socket themselves until `close()`.
"""

from __future__ import annotations

import errno
import resource
import select
import socket
import threading
import time
from dataclasses import dataclass, field

HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: jitbroker\r\n\r\n"
SLOW_HEAD = b"POST /v1/requests HTTP/1.1\r\nHost: jitbroker\r\nContent-Type: application/json\r\n"


def raise_nofile(needed: int) -> None:
    """Let this process hold `needed` descriptors (root may raise the hard limit too)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard < needed:
        try:
            cap = int(open("/proc/sys/fs/nr_open").read())
        except OSError:
            cap = needed
        hard = max(hard, min(needed, cap))
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < needed:
        raise RuntimeError(f"cannot raise RLIMIT_NOFILE to {needed} (hard limit {hard})")


@dataclass
class Conn:
    kind: str
    sock: socket.socket
    opened: float
    connected: bool = False
    answered: bool = False  # idle: the keep-alive request was answered
    received: bytes = b""
    closed_at: float | None = None  # when the server closed it
    sent_at: float = 0.0


@dataclass
class Attack:
    port: int
    silent: int = 0
    idle: int = 0
    slow: int = 0
    drip: float = 0.5
    conns: list[Conn] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self):
        self._ep = select.epoll()
        self._by_fd: dict[int, Conn] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # -- driving

    def start(self) -> "Attack":
        kinds = ["silent"] * self.silent + ["idle"] * self.idle + ["slow"] * self.slow
        for kind in kinds:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            err = s.connect_ex(("127.0.0.1", self.port))
            if err not in (0, errno.EINPROGRESS):
                self.errors.append(f"connect: {errno.errorcode.get(err, err)}")
                s.close()
                continue
            c = Conn(kind, s, time.monotonic())
            self.conns.append(c)
            self._by_fd[s.fileno()] = c
            self._ep.register(s.fileno(), select.EPOLLOUT | select.EPOLLIN | select.EPOLLRDHUP)
        self._thread = threading.Thread(target=self._loop, name="attackers", daemon=True)
        self._thread.start()
        return self

    def _closed(self, c: Conn) -> None:
        if c.closed_at is None:
            c.closed_at = time.monotonic()
            try:
                self._ep.unregister(c.sock.fileno())
            except (OSError, ValueError):
                pass

    def _event(self, c: Conn, ev: int) -> None:
        if not c.connected and ev & select.EPOLLOUT:
            err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self.errors.append(f"connect: {errno.errorcode.get(err, err)}")
                self._closed(c)
                return
            c.connected = True
            self._ep.modify(c.sock.fileno(), select.EPOLLIN | select.EPOLLRDHUP)
            if c.kind == "idle":
                self._send(c, HEALTHZ)
            elif c.kind == "slow":
                self._send(c, SLOW_HEAD)
        if ev & (select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR):
            try:
                data = c.sock.recv(65536)
            except BlockingIOError:
                return
            except OSError:
                self._closed(c)
                return
            if not data:
                self._closed(c)
                return
            c.received += data
            if c.kind == "idle" and b"\r\n\r\n" in c.received and b" 200 " in c.received.split(b"\r\n", 1)[0]:
                c.answered = True

    def _send(self, c: Conn, data: bytes) -> None:
        try:
            c.sock.send(data)
            c.sent_at = time.monotonic()
        except BlockingIOError:
            pass
        except OSError:
            self._closed(c)

    def _loop(self) -> None:
        next_drip = time.monotonic() + self.drip
        while not self._stop.is_set():
            for fd, ev in self._ep.poll(0.05):
                c = self._by_fd.get(fd)
                if c is not None and c.closed_at is None:
                    with self._lock:
                        self._event(c, ev)
            now = time.monotonic()
            if now >= next_drip:
                next_drip = now + self.drip
                with self._lock:
                    for c in self.conns:
                        if c.kind == "slow" and c.connected and c.closed_at is None:
                            self._send(c, b"X-Slow: %d\r\n" % int(now * 1000))

    # -- observing

    def open_count(self) -> int:
        with self._lock:
            return sum(1 for c in self.conns if c.closed_at is None)

    def all_closed(self) -> bool:
        return self.open_count() == 0

    def close(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)
        for c in self.conns:
            try:
                c.sock.close()
            except OSError:
                pass
        self._ep.close()
