"""Fixtures: a real jitbroker (tests/broker/brokerlab.py) per test, in the test's tmp dir."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from brokerlab import JITBROKER, NET, ONCALL, Broker  # noqa: E402

@pytest.fixture(scope="session", autouse=True)
def _binary():
    if not os.access(JITBROKER, os.X_OK):
        pytest.fail(f"jitbroker not found at {JITBROKER}; run `cargo build -p jit-broker` or set $JITBROKER")


@pytest.fixture()
def make_broker(tmp_path):
    made = []

    def make(**kw) -> Broker:
        kw.setdefault("workflows", [NET, ONCALL])
        b = Broker(tmp_path / f"broker{len(made)}", **kw)
        made.append(b)
        return b.start()

    yield make
    for b in made:
        b.close()


@pytest.fixture()
def broker(make_broker) -> Broker:
    return make_broker()


@pytest.fixture()
def people(broker):
    """alice requests (netops, dba), bob and carol lead, dave is on call, root-ish admin."""
    return {
        "alice": broker.person("alice", 1001, ["netops", "dba"], host="web-1"),
        "bob": broker.person("bob", 1002, ["netleads", "dbleads"], host="web-2"),
        "carol": broker.person("carol", 1003, ["netleads"], host="web-2"),
        "dave": broker.person("dave", 1004, ["dba", "oncall"], host="db-1"),
        "mallory": broker.person("mallory", 1005, ["users"], host="web-1"),
        "admin": broker.person("admin", 1006, ["jitadmin"], host="adm-1"),
    }
