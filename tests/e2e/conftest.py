"""Fixtures for the end-to-end tests: one jitlab Lab per session (throwaway users, a setuid
copy of jitrun, a private configuration bound over /etc/jitrun in each run's own mount
namespace, an audit socket), and a default policy restored before every test."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from e2e_support import TEST_SECURE_PATH, World, default_policy, jitlab
from jitlab import Lab


@pytest.fixture(scope="session")
def lab():
    if os.geteuid() != 0:
        pytest.skip("the end-to-end tests need root (they create users and install a setuid binary)")
    with Lab() as lab:
        yield lab


@pytest.fixture(scope="session")
def world(lab: Lab) -> World:
    ops, other = lab.add_group(), lab.add_group()
    alice = lab.add_user()
    bob = lab.add_user()
    carol = lab.add_user(groups=[ops])
    dave = lab.add_user(groups=[other])
    erin = lab.add_user()
    svc = lab.add_user(groups=[other])
    b = lab.bin_dir
    lab.compile_helper("probe", setuid=True)
    lab.compile_helper("launcher")
    lab.compile_helper("setsid-helper")
    lab.compile_helper("tty-attack")
    true = Path("/usr/bin/true").read_bytes()
    lab.install_file("not-executable", true, 0o644)
    lab.install_file("world-writable", true, 0o777)
    lab.install_file("setgid-true", true, 0o2755)
    uo = lab.install_file("user-owned", true, 0o755)
    os.chown(uo, alice.uid, alice.gid)
    lab.install_file("fcap-true", true, 0o755)
    if shutil.which("setcap"):
        jitlab._run(["setcap", "cap_net_raw+ep", b / "fcap-true"])
    sec, pub = lab.keygen("untrusted")
    w = World(lab=lab, alice=alice, bob=bob, carol=carol, dave=dave, erin=erin, svc=svc, ops=ops, other=other,
              bin=b, policy="", untrusted_secret=sec, untrusted_public=pub)
    w.policy = default_policy(w)
    return w


@pytest.fixture(autouse=True)
def _fresh(lab: Lab, world: World):
    """Before each test: default settings and policy, empty grant stores. After: no process of
    the throwaway users survives, and every audit datagram was parseable."""
    lab.write_settings(secure_path=TEST_SECURE_PATH)
    lab.set_policy(world.policy, dropins={})
    for u in world.users():
        lab.clear_grants(u)
    lab.clear_revocations()
    # Events an earlier test left in the audit spool would reach this test's listener first.
    for f in (lab.state / "spool").glob("*.dgram"):
        f.unlink()
    mark = lab.audit.mark()
    yield
    lab.kill_user_processes()
    bad = lab.audit.unparsed(mark)
    assert not bad, f"audit datagrams that parse as neither framing: {bad}"


