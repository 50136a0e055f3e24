"""A revoked grant's running command ends on every connected host, without the timer: two
hosts, each in its own network namespace, reach a second broker replica (same PostgreSQL
database and signing key as the lab's broker) over TLS with a test CA, through a client URL
list whose first entry does not answer; each runs `jitctl revocations watch`. One grant, valid
on both hosts, runs a command on each; it is revoked on the *other* replica; both commands end
with `jitrun.end_reason = "revoked"`. No `jitctl revocations sync` runs. How fast is measured
by `make bench-revocation` (scripts/bench_revocation.py), not here."""

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


def replica_config(bw, listen: str, crt, key) -> str:
    """The lab broker's configuration on another address, with TLS, and a workflow whose
    grants may name the fleet's hosts (on-call: auto-approved)."""
    text = bw.config.read_text().replace(bw.url.split("//")[1], listen)
    return text + (f'\n[[workflow]]\nrules = ["fleet-*"]\nrequesters = [{toml_value(bw.devs)}]\n'
                   f'approvers = [{toml_value(bw.dba)}]\nmin_approvals = 1\nmax_ttl = "1h"\n'
                   f'hosts = ["jitlab-net-*"]\nauto_approve = {{ groups = [{toml_value(bw.oncall)}] }}\n'
                   f'\n[tls]\ncert = {toml_value(str(crt))}\nkey = {toml_value(str(key))}\n')


def fleet(bw, net: NetHosts) -> tuple[str, subprocess.Popen]:
    """A TLS replica of the lab's broker on the first host's gateway, every host enrolled and
    configured for it (a client URL list whose first entry does not answer, the test CA, the
    fleet rule), and `jitctl revocations watch` running on each, its first list written.
    Returns the replica's URL and process."""
    lab = bw.lab
    ca, crt, key = tls_files(net.dir, [net.broker_address])
    listen = f"{net.broker_address}:{free_port()}"
    config = net.dir / "replica.toml"
    config.write_text(replica_config(bw, listen, crt, key))
    url = f"https://{listen}"
    dead = f"https://{net.broker_address}:{free_port()}"
    for h in net.hosts:
        bw.broker("--config", str(bw.config), "host", "add", h.name, h.public.read_text().strip())
        h.write_conf("broker-ca.pem", ca.read_text())
        h.write_conf("client.toml", f"broker = {toml_value([dead, url])}\nca = \"/etc/jitrun/broker-ca.pem\"\n"
                                    f"jitrun = {toml_value(str(lab.jitrun))}\n")
        h.write_conf("policy.toml", bw.policy + fleet_policy(bw))
    replica = serve(config, url, net.dir / "replica.log", ca=ca)
    for h in net.hosts:
        h.watch = h.start(ROOT, [str(bw.jitctl_bin), "revocations", "watch"])
    for h in net.hosts:
        try:
            wait_until(lambda h=h: (h.state / "revocations").exists(), f"{h.name}'s first list", timeout=90)
        except AssertionError as e:
            raise AssertionError(f"{e}; its jitctl revocations watch said:\n{h.watch.output()}\n"
                                 f"the replica's log:\n{(net.dir / 'replica.log').read_text()}") from None
    return url, replica


def test_revocation_ends_the_command_on_every_watching_host(bw):
    lab, d = bw.lab, bw.dave  # dave: devs and on call
    net = NetHosts(lab, 2)
    replica = None
    try:
        url, replica = fleet(bw, net)
        for h in net.hosts:
            assert f"({url})" in h.watch.output(), h.watch.output()

        # One grant for both hosts, asked for from the first.
        first = net.hosts[0]
        p = first.run(d, [str(bw.jitctl_bin), "request", "fleet-debug", "--reason", "fleet test",
                          "--host", "jitlab-net-*", "--json"])
        assert p.returncode == 0, p
        assert f"{url} answered" in p.stderr, p.stderr  # the first URL did not
        req = json.loads(p.stdout[: p.stdout.rindex("}") + 1])
        gid = req["grant_id"]
        assert req["state"] == "approved" and gid, req
        grant = lab.grant_dir(d) / gid
        assert decode_token(grant.read_text())[0]["hosts"] == ["jitlab-net-*"]
        # Grant files are read as the user: readable by dave wherever he runs.
        mark = lab.audit.mark()
        runs = [h.start(d, [str(lab.jitrun), "--grant", str(grant), "--", "/usr/bin/sleep", "600"])
                for h in net.hosts]

        def started() -> set[str]:
            lab.audit.sync()
            return {e.get("host.name") for e in lab.audit.since(mark, "elevate.start")}

        wait_until(lambda: started() == {h.name for h in net.hosts}, "the command to start on both hosts")

        # Revoked on the lab's broker, the other replica: only watches bring it to the hosts.
        bw.ok(d, "revoke", gid, "--reason", "fleet-wide revocation")
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
    finally:
        net.close()
        if replica:
            stop_process(replica)
