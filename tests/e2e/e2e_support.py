"""What the end-to-end tests share: the test world (users, groups, helpers), its default
policy, and assertion helpers. Fixtures are in conftest.py."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))

import jitlab  # noqa: E402,F401  (re-exported to conftest)
from jitlab import Lab, RunResult, User, parse_proc_status  # noqa: E402

# A PATH different from jitrun's default, so a hard-coded default is caught.
TEST_SECURE_PATH = "/usr/bin:/bin:/usr/sbin:/sbin:/usr/local/bin"


@dataclass
class World:
    lab: Lab
    alice: User  # the engineer: most rules name her
    bob: User  # no rules at all
    carol: User  # allowed through the ops group only
    dave: User  # in another group, which no rule names
    erin: User  # standing access, but only on other hosts
    svc: User  # the service account a rule runs as
    ops: str
    other: str
    bin: Path
    policy: str
    untrusted_secret: Path
    untrusted_public: Path

    def users(self) -> list[User]:
        return [self.alice, self.bob, self.carol, self.dave, self.erin, self.svc]


def default_policy(w: World) -> str:
    b = w.bin
    return f"""
# the jitlab test policy (written by tests/e2e/conftest.py)
[[rule]]
name = "net-debug"
users = ["{w.alice}"]
groups = ["{w.ops}"]
hosts = ["jitlab-*"]
commands = ["/usr/bin/cat /proc/self/status", "{b}/launcher {b}/probe", "{b}/probe"]
capabilities = ["CAP_NET_RAW"]
max_duration = "30m"

[[rule]]
name = "net-admin"
users = ["{w.alice}"]
commands = ["/usr/bin/cat /proc/self/status"]
capabilities = ["CAP_NET_RAW", "CAP_NET_ADMIN"]

[[rule]]
name = "read-all"
users = ["{w.alice}"]
commands = ["/usr/bin/cat /proc/self/status", "{b}/launcher {b}/probe"]
run_as = "root"
capabilities = ["CAP_DAC_READ_SEARCH"]

[[rule]]
name = "svc-bind"
users = ["{w.alice}"]
commands = ["/usr/bin/cat /proc/self/status"]
run_as = "{w.svc}"
capabilities = ["CAP_NET_BIND_SERVICE"]

[[rule]]
name = "plain"
users = ["{w.alice}"]
commands = [
  "/usr/bin/sh -c *", "/usr/bin/dash -c *",
  "/usr/bin/cat", "/usr/bin/tty", "/usr/bin/env", "/usr/bin/true **", "/usr/bin/sleep *",
  "{b}/setsid-helper *", "{b}/not-executable", "{b}/missing",
  "{b}/fcap-true", "{b}/world-writable", "{b}/user-owned", "{b}/setgid-true",
]
env_keep_unchecked = ["JITLAB_KEEP"]
max_duration = "30m"

[[rule]]
name = "approved"
users = ["{w.alice}"]
commands = ["/usr/bin/true **"]
min_approvals = 1

[[rule]]
name = "standing"
users = ["{w.alice}"]
commands = ["/usr/bin/id"]
grant = "none"

[[rule]]
name = "elsewhere"
users = ["{w.erin}"]
hosts = ["elsewhere-*"]
commands = ["/usr/bin/true"]
grant = "none"
"""


# ---- assertion helpers shared by the test modules


def assert_denied(res: RunResult, code: str):
    """A refusal: exit 1, exactly one stderr line starting `jitrun: `, one elevate.deny event
    with this deny_code, nothing started."""
    assert not res.timed_out, str(res)
    assert res.returncode == 1, str(res)
    lines = [l for l in res.err_lines]
    assert len(lines) == 1 and lines[0].startswith("jitrun: "), str(res)
    assert "elevate.start" not in res.actions(), str(res)
    deny = res.event("elevate.deny")
    assert deny.get("jitrun.deny_code") == code, str(res)
    assert deny.get("event.outcome") != "success", str(res)
    return deny


def assert_ok(res: RunResult, rc: int = 0):
    assert not res.timed_out, str(res)
    assert res.returncode == rc, str(res)
    assert "elevate.deny" not in res.actions(), str(res)
    return res


def status_of(res: RunResult) -> dict[str, str]:
    st = parse_proc_status(res.out)
    assert "CapEff" in st, str(res)
    return st


def ids(line: str) -> list[int]:
    return [int(x) for x in line.split()]
