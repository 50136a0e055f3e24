#!/usr/bin/env python3
"""Generate realistic jitrun policies of N rules for `make bench` (policy scale).

The rules look like what a fleet ships: teams and services, users and groups, host-name globs
(exact names, ``*``, ``?``, ``[..]``), command patterns (exact arguments, ``*``-globs within one
argument, a final ``**``, the array form for arguments with spaces), every ``run_as`` mode,
capabilities (sometimes ``ALL`` for break-glass rules), grant-required and some standing
(``grant = "none"``) rules, durations, approvals, ``env_keep``. The output is deterministic
for a given seed.

Some filler rules name the benchmark user (or a group of theirs) and allow the benchmark host,
so a decision cannot reject them on "who"/"where" alone; none of them allows the benchmarked
command. The MATCHING rule comes LAST (in the last file, in load order).

Layout: ``policy.toml`` plus drop-ins ``policy.d/NN-<team>.toml`` of at most ``per_file`` rules
each, as policy packages would ship them.

    scripts/bench_policy.py 10000 OUTDIR --user alice --host web-1
    jitctl policy check OUTDIR/policy.toml OUTDIR/policy.d
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "harness"))
from jitlab import toml_value  # noqa: E402  (the harness's TOML value writer)

TEAMS = ["net", "db", "web", "ops", "sec", "app", "ci", "data", "mail", "edge", "storage", "k8s"]
SERVICES = ["nginx", "postgresql", "redis", "haproxy", "kafka", "zookeeper", "rabbitmq", "memcached",
            "prometheus", "grafana", "consul", "vault", "etcd", "kubelet", "containerd", "sshd",
            "postfix", "dovecot", "bind9", "chrony", "elasticsearch", "minio", "ceph-osd", "jenkins"]
FIRST = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
         "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "yolanda"]
SERVICE_USERS = ["postgres", "www-data", "nobody", "redis", "kafka", "prometheus", "backup", "daemon"]
NET_CAPS = ["CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_NET_BIND_SERVICE"]
OTHER_CAPS = ["CAP_SYS_PTRACE", "CAP_DAC_READ_SEARCH", "CAP_KILL", "CAP_SYS_NICE", "CAP_CHOWN",
              "CAP_FOWNER", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_AUDIT_READ", "CAP_SYSLOG"]
DURATIONS = ["15m", "30m", "1h", "2h", "4h"]


def _host_globs(rng: random.Random, team: str, i: int, bench_host: str) -> list[str] | None:
    r = rng.random()
    if r < 0.25:
        return None  # default ["*"]
    pool = [f"{team}-*", f"{team}-[0-9][0-9]", f"{team}-??.prod.example.com", f"{team}-{i}.example.com",
            f"*.{team}.example.net", f"{team}-[a-f]*", "bastion-?", f"{team}-canary-*"]
    hosts = rng.sample(pool, rng.randint(1, 3))
    if r > 0.9:
        hosts.append(bench_host[:3] + "*")  # also allows the benchmark host
    return hosts


def _commands(rng: random.Random, svc: str, i: int) -> list[Any]:
    templates = [
        f"/usr/bin/systemctl restart {svc}.service",
        f"/usr/bin/systemctl reload {svc}*.service",
        "/usr/bin/systemctl status **",
        f"/usr/bin/journalctl -u {svc} --since * **",
        "/usr/sbin/ip **",
        "/usr/sbin/ip link set [a-z]* up",
        "/usr/bin/tcpdump -i * **",
        f"/usr/bin/cat /var/log/{svc}/*.log",
        f"/usr/bin/tail -n [0-9]* /var/log/{svc}/*",
        "/usr/sbin/nft list **",
        "/usr/bin/kill -HUP *",
        f"/usr/local/bin/{svc}-ctl reload",
        f"/usr/bin/du -sh /srv/{svc}/*",
        f"/usr/bin/rsync -a /srv/{svc}/ backup-?:/srv/{svc}/",
        f"/usr/sbin/ss -tlnp",
        ["/usr/bin/printf", f"%s rotated for {svc} {i}\n", "*"],
        ["/usr/local/sbin/maintenance", f"--reason=window {i}", "**"],
    ]
    return rng.sample(templates, rng.randint(1, 4))


def filler_rule(rng: random.Random, i: int, bench_user: str, bench_group: str | None, bench_host: str) -> dict:
    team = TEAMS[i % len(TEAMS)]
    svc = SERVICES[rng.randrange(len(SERVICES))]
    rule: dict[str, Any] = {"name": f"{team}-{svc}-{i:05d}"}
    users = [f"{rng.choice(FIRST)}{rng.randint(1, 999)}" for _ in range(rng.randint(0, 4))]
    groups = [f"{team}ops", f"{team}-oncall", f"{svc}-admins", f"g{rng.randint(1, 300)}"]
    groups = rng.sample(groups, rng.randint(0, 2))
    if rng.random() < 0.05:  # the benchmark user is named by some rules, for other commands
        if bench_group and rng.random() < 0.5:
            groups.append(bench_group)
        else:
            users.append(bench_user)
    if not users and not groups:
        users = [f"{rng.choice(FIRST)}{rng.randint(1, 999)}"]
    if users:
        rule["users"] = users
    if groups:
        rule["groups"] = groups
    hosts = _host_globs(rng, team, i, bench_host)
    if hosts is not None:
        rule["hosts"] = hosts
    rule["commands"] = _commands(rng, svc, i)
    r = rng.random()
    if r < 0.45:
        run_as = "invoker"
    elif r < 0.8:
        run_as = "root"
    else:
        run_as = rng.choice(SERVICE_USERS)
    if run_as != "invoker" or rng.random() < 0.5:
        rule["run_as"] = run_as
    c = rng.random()
    if run_as == "root" and c < 0.02:
        rule["capabilities"] = ["ALL"]  # break-glass style
    elif c < 0.6:
        pool = NET_CAPS + OTHER_CAPS
        rule["capabilities"] = [x if rng.random() < 0.7 else x[4:].lower() for x in rng.sample(pool, rng.randint(1, 3))]
    if rng.random() < 0.08:
        rule["grant"] = "none"  # standing access, migrated from sudoers
    else:
        if rng.random() < 0.7:
            rule["max_duration"] = rng.choice(DURATIONS)
        if rng.random() < 0.4:
            rule["min_approvals"] = rng.randint(1, 2)
    if rng.random() < 0.2:
        rule["env_keep"] = rng.sample(["TERM", "LANG", "LC_ALL", "TZ", "LC_TIME", "COLUMNS"], rng.randint(1, 3))
    if run_as != "invoker" and rng.random() < 0.03:
        rule["no_new_privs"] = False
    return rule


def render(rules: list[dict], header: str = "") -> str:
    out = [header] if header else []
    for r in rules:
        out.append("[[rule]]")
        for k, v in r.items():
            if k == "commands":
                out.append("commands = [")
                out += [f"  {toml_value(c)}," for c in v]
                out.append("]")
            else:
                out.append(f"{k} = {toml_value(v)}")
        out.append("")
    return "\n".join(out)


def generate(n: int, matching: dict, bench_user: str, bench_host: str, bench_group: str | None = None,
             seed: int = 8, per_file: int = 1000) -> dict[str, str]:
    """{relative path: TOML text}: ``policy.toml`` and ``policy.d/*.toml`` holding ``n`` rules in
    all, the last of which (in load order) is ``matching``."""
    if n < 1:
        raise ValueError("n must be >= 1")
    rng = random.Random(f"{seed}:{n}")
    rules = [filler_rule(rng, i, bench_user, bench_group, bench_host) for i in range(n - 1)] + [matching]
    files: dict[str, str] = {}
    head = f"# generated by scripts/bench_policy.py: {n} rules, seed {seed}; the matching rule is last\n"
    if n <= per_file:
        files["policy.toml"] = render(rules, head)
        return files
    files["policy.toml"] = head + "# the rules are in policy.d/\n"
    chunks = [rules[i:i + per_file] for i in range(0, n, per_file)]
    for k, chunk in enumerate(chunks):
        team = TEAMS[k % len(TEAMS)]
        files[f"policy.d/{k + 1:02d}-{team}.toml"] = render(chunk, f"# drop-in {k + 1}/{len(chunks)}\n")
    return files


def write(files: dict[str, str], outdir: Path) -> None:
    for rel, text in files.items():
        p = outdir / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("n", type=int)
    ap.add_argument("outdir", type=Path)
    ap.add_argument("--user", default="alice")
    ap.add_argument("--group")
    ap.add_argument("--host", default="web-1")
    ap.add_argument("--seed", type=int, default=8)
    ap.add_argument("--per-file", type=int, default=1000)
    a = ap.parse_args()
    matching = {"name": "bench-grant", "users": [a.user], "hosts": [a.host], "commands": ["/usr/bin/true"],
                "run_as": "root", "capabilities": []}
    write(generate(a.n, matching, a.user, a.host, a.group, a.seed, a.per_file), a.outdir)


if __name__ == "__main__":
    main()
