"""The tests' one polling helper and free-port picker (brokerlab, pgcluster, the suites)."""

from __future__ import annotations

import socket
import time


def wait_for(pred, timeout: float = 30.0, what: str = "condition", interval: float = 0.05):
    """Poll `pred` until it returns a truthy value (returned) or `timeout` seconds pass
    (AssertionError naming `what`). A timeout here catches a hang; it is no pass/fail timing."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
