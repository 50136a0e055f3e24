"""The web pages as they run for real: a real OpenID Connect provider on loopback
(tests/harness/oidc_provider.py), the real jitbroker with [web] (tests/harness/brokerlab.py:
throwaway users and groups, this host enrolled, the setuid jitrun in the lab's namespace), and
Debian's Chromium driven headless by Selenium (browser.py).

The browser tests run twice, as tests/e2e_broker does: with the broker's store in SQLite, and
in PostgreSQL (a throwaway cluster, tests/harness/pgcluster.py)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[0] / "harness"))
sys.path.insert(0, str(HERE))

import oidc_provider  # noqa: E402
from brokerlab import BrokerWorld, world_on  # noqa: E402
from browser import CHROMEDRIVER, CHROMIUM, Browser, web_section  # noqa: E402
from jitlab import Lab  # noqa: E402


def _need_browser():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: `make deps` installs Debian's chromium and chromium-driver")


@pytest.fixture(scope="session")
def idp(tmp_path_factory):
    p = oidc_provider.start(tmp_path_factory.mktemp("idp") / "idp.log")
    yield p
    p.stop()


@pytest.fixture(scope="session")
def wlab():
    if os.geteuid() != 0:
        pytest.skip("the web end-to-end tests need root (users, a setuid jitrun, mount namespaces)")
    with Lab() as lab:
        yield lab


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def ww(request, wlab: Lab, idp) -> BrokerWorld:
    """The broker world with web pages, its store in SQLite or PostgreSQL; the provider knows
    its people: alice and frank request (devs), bob and carol approve (dba), erin does both,
    dave is an admin here."""

    def extra(w: BrokerWorld) -> str:
        secret = w.dir / "oidc-client-secret"
        secret.write_text("e2e-secret\n")
        secret.chmod(0o600)
        groups = {"idp-devs": [w.devs], "idp-dba": [w.dba], "idp-admins": [w.admins]}
        return web_section(idp, secret, groups, public_url=w.url)

    with world_on(wlab, request.param, extra=extra) as w:
        people = [(w.alice, ["idp-devs"]), (w.bob, ["idp-dba"]), (w.carol, ["idp-dba"]),
                  (w.erin, ["idp-devs", "idp-dba"]), (w.dave, ["idp-devs", "idp-admins"])]
        for user, groups in people:
            idp.set_user(f"sub-{user.name}", {"preferred_username": user.name, "groups": groups})
        yield w


@pytest.fixture()
def browser():
    _need_browser()
    b = Browser()
    try:
        yield b
    finally:
        b.quit()


@pytest.fixture(autouse=True)
def _fresh(request):
    """Empty grant stores and no leftover processes around the tests that use the lab."""
    if "ww" not in request.fixturenames:
        yield
        return
    ww = request.getfixturevalue("ww")
    for u in ww.users():
        ww.lab.clear_grants(u)
    yield
    ww.lab.kill_user_processes()
