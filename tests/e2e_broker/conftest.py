"""The full broker flow as it runs for real: a real `jitbroker` on 127.0.0.1 (random port),
this machine enrolled with its host key, throwaway users and groups, and the real setuid
`jitrun` and `jitctl` run as those users inside the lab's private mount namespace, where
/etc/jitrun (keys.d with the broker's public key, host.key, client.toml, policy) and
/var/lib/jitrun are the test's.

The whole suite runs twice: with the broker's store in SQLite, and in PostgreSQL (a throwaway
cluster, tests/harness/pgcluster.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))

from brokerlab import BrokerWorld, world_on  # noqa: E402
from jitlab import Lab  # noqa: E402


@pytest.fixture(scope="session")
def blab():
    if os.geteuid() != 0:
        pytest.skip("the broker end-to-end tests need root (users, a setuid jitrun, mount namespaces)")
    with Lab() as lab:
        yield lab


BACKENDS = ("sqlite", "postgres")


def pytest_configure(config):
    config.addinivalue_line("markers", "backends(*names): run only on these store backends (default: all)")


def pytest_generate_tests(metafunc):
    """Every test once per store backend (one world each for the session), unless marked
    ``@pytest.mark.backends(...)``."""
    if "bw" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("backends")
        metafunc.parametrize("bw", marker.args if marker else BACKENDS, indirect=True, scope="session")


@pytest.fixture(scope="session")
def bw(request, blab: Lab) -> BrokerWorld:
    with world_on(blab, request.param) as world:
        yield world


@pytest.fixture(autouse=True)
def _fresh(blab: Lab, bw: BrokerWorld):
    """Before each test: the default jitrun settings and policy, empty grant stores, no
    revocation list on the host. After: no process of the throwaway users survives."""
    blab.write_settings()
    blab.set_policy(bw.policy, dropins={})
    for u in bw.users():
        blab.clear_grants(u)
    blab.clear_revocations()
    yield
    blab.kill_user_processes()
