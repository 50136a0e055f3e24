"""Hosts in network namespaces, for the multi-host broker tests.

Each :class:`NetHost` is a network namespace (``ip netns``) joined to the machine's own
network namespace by a veth pair (a /30 per host from 10.231.0.0/16, which nothing else here
uses; the outer end's address is the host's default gateway), with its own /etc/jitrun (a copy
of the lab's, with its own host name, host key and client.toml) and its own /var/lib/jitrun,
bound over the real paths in each run's private mount namespace as jitlab does. A broker that
listens on the first host's gateway address is reached by every host through its own gateway:
the kernel delivers packets for any of its addresses on any interface, no forwarding needed.

Everything is removed by :meth:`NetHosts.close`: processes started here (by process group),
the namespaces (which takes their veths along), the directories."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

from jitlab import NS_SCRIPT, Lab, User, toml_value

NET_BASE = "10.231"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


class NetHost:
    """One host: a network namespace, its /etc/jitrun and /var/lib/jitrun."""

    def __init__(self, hosts: "NetHosts", index: int):
        self.hosts, self.lab = hosts, hosts.lab
        tag = hosts.tag
        self.name = f"jitlab-net-{tag}-{index}"
        self.ns = f"jl{tag}{index}"
        self.gateway = f"{NET_BASE}.{hosts.subnet}.{4 * index + 1}"
        self.address = f"{NET_BASE}.{hosts.subnet}.{4 * index + 2}"
        self.dir = hosts.dir / self.name
        self.conf, self.state, self.logs = self.dir / "conf", self.dir / "state", self.dir / "log"
        self.watch: Started | None = None  # its `jitctl revocations watch`, once started
        outside, inside = f"v{tag}{index}o", f"v{tag}{index}i"
        _ip("netns", "add", self.ns)
        hosts.namespaces.append(self.ns)
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        hosts.links.append(outside)
        _ip("link", "set", inside, "netns", self.ns)
        _ip("addr", "add", f"{self.gateway}/30", "dev", outside)
        _ip("link", "set", outside, "up")
        _ip("-n", self.ns, "addr", "add", f"{self.address}/30", "dev", inside)
        _ip("-n", self.ns, "link", "set", inside, "up")
        _ip("-n", self.ns, "link", "set", "lo", "up")
        _ip("-n", self.ns, "route", "add", "default", "via", self.gateway)
        self._files()

    def _files(self) -> None:
        """The lab's /etc/jitrun with this host's name and key; an empty /var/lib/jitrun and
        /var/log/jitrun (with its root-only sessions directory)."""
        shutil.copytree(self.lab.conf, self.conf, symlinks=True)
        (self.conf / "client.toml").unlink(missing_ok=True)
        self.state.mkdir(mode=0o700)
        self.logs.mkdir(mode=0o755)
        (self.logs / "sessions").mkdir(mode=0o700)
        for d in (self.dir, self.conf, self.state, self.logs, self.logs / "sessions"):
            os.chown(d, 0, 0)
        os.chmod(self.dir, 0o755)
        settings = (self.lab.conf / "jitrun.toml").read_text()
        assert f"host = {toml_value(self.lab.host)}" in settings, settings
        self.write_conf("jitrun.toml", settings.replace(f"host = {toml_value(self.lab.host)}",
                                                        f"host = {toml_value(self.name)}"))
        sec, self.public = self.lab.keygen(f"host-{self.name}")
        key = self.conf / "host.key"
        key.write_bytes(sec.read_bytes())
        os.chown(key, 0, 0)
        os.chmod(key, 0o600)

    def write_conf(self, name: str, text: str) -> None:
        p = self.conf / name
        tmp = p.with_name(f".{name}.tmp")
        tmp.write_text(text)
        os.chown(tmp, 0, 0)
        os.chmod(tmp, 0o644)
        os.replace(tmp, p)

    def command(self, user: User, argv: list[str]) -> list[str]:
        """ARGV as USER on this host: its network namespace, its configuration and state."""
        return ["ip", "netns", "exec", self.ns, "unshare", "--mount", "--propagation", "private", "--", "/bin/sh",
                "-c", NS_SCRIPT, "jitlab-ns", str(self.conf), str(self.state), str(self.logs), str(user.uid), str(user.gid),
                *argv]

    def run(self, user: User, argv: list[str], timeout: float = 90) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(user, argv), capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              env=_env(), cwd=user.home, timeout=timeout)

    def start(self, user: User, argv: list[str]) -> "Started":
        """Start ARGV in the background (its own process group, output to a file)."""
        return self.hosts.started(self.command(user, argv), cwd=user.home, label=f"{self.name}-{Path(argv[0]).name}")


def _env() -> dict[str, str]:
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


class Started:
    """A background process of a host; ended by process group only."""

    def __init__(self, cmd: list[str], log: Path, cwd: Path):
        self.log = log
        self._out = open(log, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._out, stderr=subprocess.STDOUT,
                                     env=_env(), cwd=cwd, start_new_session=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=10)
        self._out.close()


class NetHosts:
    """N hosts in network namespaces next to a jitlab Lab."""

    def __init__(self, lab: Lab, count: int):
        self.lab = lab
        self.tag = secrets.token_hex(2)
        self.subnet = int(self.tag, 16) % 250 + 1
        self.dir = lab.tmp / f"nethosts-{self.tag}"
        self.dir.mkdir(mode=0o755)
        self.namespaces: list[str] = []
        self.links: list[str] = []
        self.processes: list[Started] = []
        try:
            self.hosts = [NetHost(self, i) for i in range(count)]
        except BaseException:
            self.close()
            raise

    @property
    def broker_address(self) -> str:
        """Where the hosts reach the broker: the first host's gateway."""
        return self.hosts[0].gateway

    def started(self, cmd: list[str], cwd: Path, label: str) -> Started:
        s = Started(cmd, self.dir / f"{label}-{len(self.processes)}.log", cwd)
        self.processes.append(s)
        return s

    def close(self) -> None:
        for p in self.processes:
            p.stop()
        for ns in self.namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        for link in self.links:
            subprocess.run(["ip", "link", "del", link], capture_output=True, timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_until(pred, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
