"""Fixtures: a real jitbroker (tests/harness/brokerlab.py) per test, in the test's tmp dir.

Every test runs once per store backend, `sqlite` and `postgres` (a database of its own in one
throwaway PostgreSQL cluster for the session, tests/harness/pgcluster.py), unless it is
marked ``@pytest.mark.backends("sqlite")``: those test the HTTP layer or SQLite's file
handling, not the store's behaviour, and each says why."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
import brokerlab  # noqa: E402
from brokerlab import JITBROKER, NET, ONCALL, Broker, PostgresStore  # noqa: E402
from pgcluster import PgCluster  # noqa: E402

BACKENDS = ("sqlite", "postgres")


def pytest_configure(config):
    config.addinivalue_line("markers", "backends(*names): run only on these store backends (default: all)")


def pytest_generate_tests(metafunc):
    if "store_backend" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("backends")
        metafunc.parametrize("store_backend", marker.args if marker else BACKENDS, indirect=True)


@pytest.fixture(scope="session", autouse=True)
def _binary():
    if not os.access(JITBROKER, os.X_OK):
        pytest.fail(f"jitbroker not found at {JITBROKER}; run `cargo build -p jit-broker` or set $JITBROKER")


@pytest.fixture(scope="session")
def pg_cluster():
    """One PostgreSQL cluster for the session (root only: initdb runs as an unprivileged
    system user)."""
    if os.geteuid() != 0:
        pytest.skip("the PostgreSQL backend's tests need root (initdb as an unprivileged system user)")
    with PgCluster() as cluster:
        yield cluster


@pytest.fixture()
def store_backend(request):
    """The backend of this test's brokers: Brokers made without `store=` get a store of it."""
    if request.param == "postgres":
        cluster = request.getfixturevalue("pg_cluster")
        made = []

        def new(_root):
            made.append(PostgresStore(cluster))
            return made[-1]

        brokerlab.default_store = new
        yield "postgres"
        brokerlab.default_store = None
        for s in made:
            cluster.drop_database(s.name)
    else:
        brokerlab.default_store = None
        yield "sqlite"


@pytest.fixture(autouse=True)
def _backend(store_backend):
    return store_backend


@pytest.fixture()
def make_broker(tmp_path, store_backend):
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
