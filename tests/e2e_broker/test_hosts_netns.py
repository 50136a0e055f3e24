"""Several replicas and hosts as a deployment has them: hosts each in its own network namespace
reach broker replicas (one PostgreSQL database, one signing key, the lab's broker among them)
over TLS with a test CA, through client URL lists whose first entry does not answer; each host
runs `jitctl revocations watch`.

* three replicas, three hosts: a request made on replica A (from the first host) is approved by
  one approver on replica B and another on replica C (each from another host), synced through
  the URL list, and run on all three hosts; revoked on the lab's broker, a fourth replica no
  host talks to, it ends the command on every host with `jitrun.end_reason = "revoked"`: the
  watches, woken through PostgreSQL's notifications, not a timer (no `jitctl revocations
  sync` runs);
* the same with one replica and two hosts for an on-call grant (auto-approved), the set-up
  `make bench-revocation` (scripts/bench_revocation.py) times.
How fast is measured by `make bench-revocation`, not here."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from brokerlab import ROOT, free_port, serve, stop_process
from jitlab import decode_token, toml_value
from netns_hosts import NetHosts, wait_until
from testca import tls_files

# Replicas share a PostgreSQL database (a SQLite file serves one broker process).
pytestmark = [pytest.mark.skipif(shutil.which("ip") is None, reason="needs ip(8) (iproute2; make deps installs it)"),
              pytest.mark.backends("postgres")]


def fleet_policy(bw) -> str:
    return (f'[[rule]]\nname = "fleet-debug"\ngroups = ["{bw.devs}"]\n'
            'commands = ["/usr/bin/sleep *", "/usr/bin/true **"]\nmax_duration = "1h"\n')


def replica_config(bw, listen: str, crt, key, min_approvals: int = 1) -> str:
    """The lab broker's configuration on another address, with TLS, and a workflow whose
    grants may name the fleet's hosts (on-call: auto-approved)."""
    text = bw.config.read_text().replace(bw.url.split("//")[1], listen)
    return text + (f'\n[[workflow]]\nrules = ["fleet-*"]\nrequesters = [{toml_value(bw.devs)}]\n'
                   f'approvers = [{toml_value(bw.dba)}]\nmin_approvals = {min_approvals}\nmax_ttl = "1h"\n'
                   f'hosts = ["jitlab-net-*"]\nauto_approve = {{ groups = [{toml_value(bw.oncall)}] }}\n'
                   f'\n[tls]\ncert = {toml_value(str(crt))}\nkey = {toml_value(str(key))}\n')


def start_replicas(bw, net: NetHosts, count: int, min_approvals: int = 1) -> tuple[list[str], list[subprocess.Popen]]:
    """`count` TLS replicas of the lab's broker (its store and key) on the first host's gateway,
    each on a port of its own; their URLs and processes."""
    ca, crt, key = tls_files(net.dir, [net.broker_address])
    urls: list[str] = []
    procs: list[subprocess.Popen] = []
    try:
        for i in range(count):
            listen = f"{net.broker_address}:{free_port()}"
            config = net.dir / f"replica-{i}.toml"
            config.write_text(replica_config(bw, listen, crt, key, min_approvals))
            urls.append(f"https://{listen}")
            procs.append(serve(config, urls[-1], net.dir / f"replica-{i}.log", ca=ca))
    except BaseException:
        for p in procs:
            stop_process(p)
        raise
    return urls, procs


def enroll_and_watch(bw, net: NetHosts, brokers: list[str]) -> None:
    """Every host enrolled and configured for its replica, `brokers[i]` for host i (a client URL
    list whose first entry does not answer, the test CA, the fleet rule), and `jitctl
    revocations watch` running on each, its first list written."""
    lab = bw.lab
    ca = net.dir / "ca.pem"
    dead = f"https://{net.broker_address}:{free_port()}"
    for h, url in zip(net.hosts, brokers, strict=True):
        bw.broker("--config", str(bw.config), "host", "add", h.name, h.public.read_text().strip())
        h.write_conf("broker-ca.pem", ca.read_text())
        h.write_conf("client.toml", f"broker = {toml_value([dead, url])}\nca = \"/etc/jitrun/broker-ca.pem\"\n"
                                    f"jitrun = {toml_value(str(lab.jitrun))}\n")
        h.write_conf("policy.toml", bw.policy + fleet_policy(bw))
    for h in net.hosts:
        h.watch = h.start(ROOT, [str(bw.jitctl_bin), "revocations", "watch"])
    for h in net.hosts:
        try:
            wait_until(lambda h=h: (h.state / "revocations").exists(), f"{h.name}'s first list", timeout=90)
        except AssertionError as e:
            logs = "".join(f"{p.name}:\n{p.read_text(errors='replace')}" for p in sorted(net.dir.glob("replica-*.log")))
            raise AssertionError(f"{e}; its jitctl revocations watch said:\n{h.watch.output()}\n{logs}") from None


def fleet(bw, net: NetHosts) -> tuple[str, subprocess.Popen]:
    """One TLS replica of the lab's broker on the first host's gateway, every host enrolled,
    configured for it and watching (`enroll_and_watch`). Returns the replica's URL and process."""
    (url,), (replica,) = start_replicas(bw, net, 1)
    try:
        enroll_and_watch(bw, net, [url] * len(net.hosts))
    except BaseException:
        stop_process(replica)
        raise
    return url, replica


def run_everywhere_then_revoke(bw, net: NetHosts, user, gid: str) -> None:
    """The grant's command runs on every host as `user`; revoked on the lab's broker (a replica
    no host talks to: only the watches bring the revocation to the hosts), it ends on each, and
    each host's list and watch say so."""
    lab = bw.lab
    grant = lab.grant_dir(user) / gid
    assert decode_token(grant.read_text())[0]["hosts"] == ["jitlab-net-*"]
    # Grant files are read as the user: readable by her wherever she runs.
    mark = lab.audit.mark()
    runs = [h.start(user, [str(lab.jitrun), "--grant", str(grant), "--", "/usr/bin/sleep", "600"])
            for h in net.hosts]

    def started() -> set[str]:
        lab.audit.sync()
        return {e.get("host.name") for e in lab.audit.since(mark, "elevate.start")}

    wait_until(lambda: started() == {h.name for h in net.hosts}, "the command to start on every host")
    bw.ok(user, "revoke", gid, "--reason", "fleet-wide revocation")
    for h, r in zip(net.hosts, runs):
        assert r.wait(timeout=90) is not None, f"the command on {h.name} did not end: {r.output()}"
    lab.audit.sync()
    ends = {e.get("host.name"): e for e in lab.audit.since(mark, "elevate.end")}
    for h in net.hosts:
        e = ends.get(h.name)
        assert e is not None and e.get("jitrun.end_reason") == "revoked", (h.name, ends)
        assert e.get("jitrun.grant.id") == gid
        on_list = decode_token((h.state / "revocations").read_text())[0]["revoked"]
        assert gid in [x["jti"] for x in on_list]
        assert h.watch.proc.poll() is None and f"newly revoked: {gid}" in h.watch.output(), h.watch.output()


def last_json(out: str) -> dict:
    return json.loads(out[: out.rindex("}") + 1])


def test_three_replicas_three_hosts_request_approve_sync_run_revoke(bw):
    lab, a = bw.lab, bw.alice  # alice: devs, not on call: the fleet rule needs two approvals
    net = NetHosts(lab, 3)
    procs: list[subprocess.Popen] = []
    try:
        urls, procs = start_replicas(bw, net, 3, min_approvals=2)
        enroll_and_watch(bw, net, urls)  # host i talks to replica i (after a dead URL)
        for h, url in zip(net.hosts, urls):
            assert f"({url})" in h.watch.output(), h.watch.output()
        first, second, third = net.hosts
        jitctl = str(bw.jitctl_bin)

        # Requested on replica A, from the first host.
        p = first.run(a, [jitctl, "request", "fleet-debug", "--reason", "fleet test", "--host", "jitlab-net-*",
                          "--json"])
        assert p.returncode == 0 and f"{urls[0]} answered" in p.stderr, p
        req = last_json(p.stdout)
        assert req["state"] == "pending", req
        # Approved by bob on replica B and carol on replica C, each from a host of their own.
        for h, approver, url in ((second, bw.bob, urls[1]), (third, bw.carol, urls[2])):
            p = h.run(approver, [jitctl, "approve", req["id"]])
            assert p.returncode == 0 and f"{url} answered" in p.stderr, p
        # Synced through the first host's URL list.
        p = first.run(a, [jitctl, "sync"])
        assert p.returncode == 0 and f"{urls[0]} answered" in p.stderr, p
        p = first.run(a, [jitctl, "show", req["id"], "--json"])
        assert p.returncode == 0, p
        req = last_json(p.stdout)
        assert req["state"] == "approved" and req["grant_id"], req
        assert [(x["user"], x["host"]) for x in req["approvals"]] == [(bw.bob.name, second.name),
                                                                     (bw.carol.name, third.name)], req
        assert (lab.grant_dir(a) / req["grant_id"]).exists()
        run_everywhere_then_revoke(bw, net, a, req["grant_id"])
    finally:
        net.close()
        for proc in procs:
            stop_process(proc)


def test_revocation_ends_the_command_on_every_watching_host(bw):
    lab, d = bw.lab, bw.dave  # dave: devs and on call
    net = NetHosts(lab, 2)
    replica = None
    try:
        url, replica = fleet(bw, net)
        for h in net.hosts:
            assert f"({url})" in h.watch.output(), h.watch.output()

        # One grant for both hosts, asked for from the first (on call: approved at once).
        p = net.hosts[0].run(d, [str(bw.jitctl_bin), "request", "fleet-debug", "--reason", "fleet test",
                                 "--host", "jitlab-net-*", "--json"])
        assert p.returncode == 0, p
        assert f"{url} answered" in p.stderr, p.stderr  # the first URL did not
        req = last_json(p.stdout)
        assert req["state"] == "approved" and req["grant_id"], req
        run_everywhere_then_revoke(bw, net, d, req["grant_id"])
    finally:
        net.close()
        if replica:
            stop_process(replica)
