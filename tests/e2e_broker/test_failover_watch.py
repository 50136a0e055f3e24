"""Clients that fail over, and revocation in seconds, with the real broker, jitctl and setuid
jitrun: `broker` in client.toml lists several URLs, tried in order, and jitctl says which one
answered; `jitctl revocations watch` (root) holds a watch on the broker and writes each new
list as `sync` does, so a revoked grant's running command ends without the timer (no
`revocations sync` runs in these tests)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from contextlib import contextmanager

from brokerlab import ROOT, free_port
from jitlab import decode_token, toml_value

STATUS_TRUE = ["/usr/bin/true", "ok"]


def _wait(pred, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@contextmanager
def client_urls(bw, *urls: str):
    """client.toml naming these brokers, in order; restored afterwards."""
    lab = bw.lab
    path = lab.conf / "client.toml"
    original = path.read_text()
    lab._write_conf(path, f"broker = {toml_value(list(urls))}\njitrun = {toml_value(str(lab.jitrun))}\n")
    try:
        yield
    finally:
        lab._write_conf(path, original)


class RootProcess:
    """A root process in the lab's namespace (never killed by uid: only its own group)."""

    def __init__(self, bw, argv: list[str]):
        self.log = bw.dir / f"proc-{time.monotonic_ns()}.log"
        self._out = open(self.log, "wb")
        cmd = bw.lab.ns_command(ROOT, argv)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._out, stderr=subprocess.STDOUT,
                                     env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
                                     start_new_session=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._out.close()


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


def test_jitctl_fails_over_to_the_next_broker_and_says_which_answered(bw):
    dead = dead_url()
    with client_urls(bw, dead, bw.url):
        # A read.
        p = bw.jitctl(bw.alice, "grants", "--json")
        assert p.returncode == 0, p
        assert "grants" in json.loads(p.stdout)
        assert dead in p.stderr and f"{bw.url} answered" in p.stderr, p.stderr
        # A write: the first broker was never reached (connection refused), so the next may do it.
        p = bw.jitctl(bw.dave, "request", "oncall-debug", "--reason", "fail-over")
        assert p.returncode == 0 and "auto-approved" in p.stdout, p
        assert f"{bw.url} answered" in p.stderr, p.stderr
        # The revocation sync names the broker it wrote from.
        out = bw.ok(ROOT, "revocations", "sync")
        assert f"({bw.url})" in out, out
    # Every broker down: one error naming each.
    other = dead_url()
    with client_urls(bw, dead, other):
        p = bw.jitctl(bw.alice, "grants")
        assert p.returncode == 1 and "cannot reach the broker" in p.stderr, p
        assert dead in p.stderr and other in p.stderr, p.stderr


def test_a_broker_that_is_not_ready_passes_the_call_on(bw):
    """503 means nothing was done: even a request goes to the next broker."""
    import http.server
    import threading

    class NotReady(http.server.BaseHTTPRequestHandler):
        def _answer(self):
            n = int(self.headers.get("Content-Length", "0") or 0)
            self.rfile.read(n)
            body = b'{"error":{"code":"not_ready","message":"store down"}}'
            self.send_response(503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotReady)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sick = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with client_urls(bw, sick, bw.url):
            p = bw.jitctl(bw.dave, "request", "oncall-debug", "--reason", "first one not ready")
            assert p.returncode == 0 and "auto-approved" in p.stdout, p
            assert f"{sick} answered HTTP 503" in p.stderr and f"{bw.url} answered" in p.stderr, p.stderr
        # Alone, its error is the answer.
        with client_urls(bw, sick):
            p = bw.jitctl(bw.alice, "grants")
            assert p.returncode == 1 and "store down" in p.stderr, p
    finally:
        server.shutdown()
        server.server_close()


def test_the_watch_ends_a_revoked_running_command_without_the_timer(bw):
    a, lab = bw.alice, bw.lab
    req = bw.request(a, "db-restart")
    for who in (bw.bob, bw.carol):
        bw.ok(who, "approve", req["id"])
    gid = json.loads(bw.ok(a, "show", req["id"], "--json"))["grant_id"]
    bw.ok(a, "sync")
    listing = lab.state / "revocations"
    with client_urls(bw, dead_url(), bw.url):
        watch = RootProcess(bw, [str(bw.jitctl_bin), "revocations", "watch"])
        try:
            # The watch writes the current list first (there was none), then holds a watch.
            _wait(listing.exists, "the watch to write the list")
            _wait(lambda: "wrote" in watch.output(), "the watch's first line")
            seq = decode_token(listing.read_text())[0]["seq"]
            grant = lab.grant_dir(a) / gid
            with lab.spawn_as_user(a, [str(lab.jitrun), "--grant", str(grant), "--", "/usr/bin/sleep", "600"]) as run:
                _wait(lambda: "elevate.start" in [e.action for e in run.events()], "elevate.start")
                bw.ok(bw.bob, "revoke", gid, "--reason", "ended by the watch")
                # No `revocations sync` here: only the watch can bring the list.
                assert run.wait(timeout=90) is not None, str(run)
                ends = [e for e in run.events() if e.action == "elevate.end"]
                assert len(ends) == 1 and ends[0].get("jitrun.end_reason") == "revoked", str(run)
            after = decode_token(listing.read_text())[0]
            assert after["seq"] > seq and gid in [r["jti"] for r in after["revoked"]]
            _wait(lambda: f"newly revoked: {gid} (ended by the watch)" in watch.output(), "the watch's line")
            out = watch.output()
            assert f"({bw.url})" in out, out
            assert watch.proc.poll() is None, out  # it keeps watching
        finally:
            watch.stop()
    # Refused at start from then on.
    res = lab.run_as_user(a, STATUS_TRUE, grant=lab.grant_dir(a) / gid)
    assert res.returncode == 1 and res.event("elevate.deny").get("jitrun.deny_code") == "revoked", str(res)


def test_the_watch_needs_root(bw):
    p = bw.jitctl(bw.alice, "revocations", "watch")
    assert p.returncode == 1 and "as root" in p.stderr, p
