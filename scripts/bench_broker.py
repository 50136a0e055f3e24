#!/usr/bin/env python3
"""Benchmark (not a test): grants issued per second by a real jitbroker, end to end.

Each request is `POST /v1/requests` by an on-call user whose workflow auto-approves, so the
broker authenticates the attestation (signature, freshness, replay table), writes the request,
signs the grant, records grant.issue in the hash-chained audit table and answers with the
approved request. Loopback only.

Capacity (the first table): the load generator is `wrk` (Debian's package) with
scripts/bench_broker.lua replaying pre-signed attestations (each request is new to the broker:
its own jti and body), so the client's signing is not in the measurement, for BENCH_SECONDS
(default 5) per concurrency level (1, 16, 64 connections), on three set-ups: SQLite, PostgreSQL
with one replica, PostgreSQL with two replicas (one wrk per replica, half the connections
each; grants/s added, p99 the worse of the two). wrk runs on CPU 0, the broker(s) and
PostgreSQL on CPU 1 (taskset), so that client and server do not steal each other's cycles;
BENCH_PIN=0 pins nothing. Stores live under target/ (a disk-backed file system: /tmp may be a
tmpfs, where fsync costs nothing): grant-issuing commits wait for the disk as in production.
PostgreSQL runs with its defaults (synchronous_commit on, fsync on) in a throwaway cluster
(tests/harness/pgcluster.py).

Where the time goes: CPU time per grant of the broker process, of its store thread
(jitbroker-pg: the PostgreSQL driver), of PostgreSQL's backends and of wrk, from /proc, per
run; what is left of the wall time per grant is waiting (the disk, the audit chain's lock).

The revocation sync load: `GET /v1/revocations` attested by 200 distinct enrolled hosts, at 16
connections: its capacity, and what 10,000 hosts syncing once a minute (167 requests/s) is as
a fraction of it.

Then the attack report (--attack-requests 0 skips it): the same requests at concurrency 1 and
16, once on a quiet broker and once while 2,000 idle keep-alive and 1,100 slowloris
connections (tests/broker/attackers.py; loopback, bounded) hold the server, with the p99
ratio. The broker runs with its default http settings.

Usage: make bench-broker   (builds the release jitbroker, installs wrk, then runs this)
       JITBROKER=target/release/jitbroker python3 scripts/bench_broker.py [--levels 1,16,64]
       [--setups sqlite,postgres,postgres-2]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "broker"))
sys.path.insert(0, str(REPO / "tests" / "harness"))
from attackers import Attack, raise_nofile  # noqa: E402
from brokerlab import Broker, HostKey, Person, PostgresStore, SqliteStore, wait_for  # noqa: E402
from pgcluster import PgCluster  # noqa: E402

LUA = REPO / "scripts" / "bench_broker.lua"
PIN = os.environ.get("BENCH_PIN", "1") != "0"
TICK = os.sysconf("SC_CLK_TCK")
SYNC_HOSTS = 200
FLEET, PER_MINUTE = 10_000, 60

IDLE, SLOW = 2000, 1100

WORKFLOW = {"rules": ["bench-*"], "requesters": ["oncall"], "approvers": ["leads"], "min_approvals": 1,
            "max_ttl": "1h", "auto_approve": {"groups": ["oncall"]}}


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(p / 100 * (len(s) - 1))))
    return s[k]


def run_level(b: Broker, people, concurrency: int, total: int) -> dict:
    # Pre-sign one attestation per request (bodies differ, so every jti and hash is unique).
    jobs: list[list[tuple[bytes, str]]] = [[] for _ in range(concurrency)]
    for i in range(total):
        who = people[i % len(people)]
        body = json.dumps({"rule": "bench-grant", "reason": f"bench {concurrency}/{i}", "ttl": "10m"}).encode()
        token = who.host.attest(user=who.name, uid=who.uid, groups=who.groups, method="POST",
                                path="/v1/requests", body=body, lifetime=300)
        jobs[i % concurrency].append((body, token))
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start_gate = threading.Barrier(concurrency + 1)

    def worker(mine):
        conn = http.client.HTTPConnection("127.0.0.1", b.port, timeout=60)
        local, errs = [], []
        start_gate.wait()
        for body, token in mine:
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/v1/requests", body=body,
                             headers={"Authorization": f"JitAttest {token}", "Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                local.append(time.perf_counter() - t0)
                if resp.status != 201:
                    errs.append(f"{resp.status} {data[:120]!r}")
                else:
                    r = json.loads(data)
                    if r["state"] != "approved" or not r["grant_id"]:
                        errs.append(f"not issued: {r['state']}")
            except (OSError, http.client.HTTPException) as e:
                errs.append(repr(e))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", b.port, timeout=60)
        conn.close()
        with lock:
            latencies.extend(local)
            errors.extend(errs)

    threads = [threading.Thread(target=worker, args=(jobs[i],)) for i in range(concurrency)]
    for t in threads:
        t.start()
    start_gate.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    ok = total - len(errors)
    return {"concurrency": concurrency, "requests": total, "errors": len(errors), "first_error": errors[:1],
            "seconds": elapsed, "grants_per_s": ok / elapsed,
            "p50_ms": percentile(latencies, 50) * 1000, "p99_ms": percentile(latencies, 99) * 1000,
            "mean_ms": statistics.fmean(latencies) * 1000}


# ---- capacity with wrk

def sign(people, n: int, tag: str, path: str = "/v1/requests") -> list[str]:
    """n request lines for bench_broker.lua (POST grants, or GET `path` when it is not
    /v1/requests), each with its own attestation."""
    lines = []
    for i in range(n):
        who = people[i % len(people)]
        if path == "/v1/requests":
            body = json.dumps({"rule": "bench-grant", "reason": f"bench {tag}/{i}", "ttl": "10m"})
            method = "POST"
        else:
            body, method = "", "GET"
        token = who.host.attest(user=who.name, uid=who.uid, groups=who.groups, method=method, path=path,
                                body=body.encode(), lifetime=300)
        lines.append(f"{method}\t{path}\t{token}\t{body}")
    return lines


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (its exited threads included)."""
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / TICK
    except (OSError, IndexError):
        return 0.0


def thread_cpu(pid: int, name: str) -> float:
    total = 0.0
    for t in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (t / "stat").read_text()
        except OSError:
            continue
        if text.split("(", 1)[1].rsplit(")", 1)[0] == name:
            f = text.rsplit(")", 1)[1].split()
            total += (int(f[11]) + int(f[12])) / TICK
    return total


def postgres_pids(cluster: PgCluster | None) -> list[int]:
    """The postmaster and its children (backends, WAL writer, checkpointer, ...)."""
    if cluster is None:
        return []
    master = cluster.postmaster()
    out = [master]
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]) == master:
                out.append(int(proc.name))
        except (OSError, IndexError, ValueError):
            pass
    return out


def cpu_snapshot(brokers: list[Broker], cluster: PgCluster | None) -> dict[str, float]:
    return {
        "broker": sum(cpu_seconds(b.proc.pid) for b in brokers),
        "driver": sum(thread_cpu(b.proc.pid, "jitbroker-pg") for b in brokers),
        "postgres": sum(cpu_seconds(p) for p in postgres_pids(cluster)),
    }


def wrk(port: int, connections: int, seconds: int, lines: list[str], workdir: Path) -> tuple[subprocess.Popen, Path]:
    threads = 1 if connections < 8 else 2
    reqs = workdir / f"requests-{port}-{connections}.tsv"
    reqs.write_text("\n".join(lines) + "\n")
    cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--timeout", "10s",
           "-s", str(LUA), f"http://127.0.0.1:{port}", "--", str(reqs), str(threads)]
    if PIN:
        cmd = ["taskset", "-c", "0", *cmd]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), reqs


def wrk_result(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=600)
    line = next((x for x in out.splitlines() if x.startswith("{")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {err}{out}")
    return json.loads(line)


def capacity_level(brokers: list[Broker], people, cluster, connections: int, seconds: int, workdir: Path,
                   path: str = "/v1/requests", rate_cap: int = 6000) -> dict:
    """One wrk per broker (connections split), for `seconds`; the combined result."""
    per = max(1, connections // len(brokers))
    n = rate_cap * seconds // len(brokers)
    signed = [sign(people, n, f"{b.port}-{connections}-{time.time_ns()}", path) for b in brokers]
    before = cpu_snapshot(brokers, cluster)
    wrk_cpu0 = os.times()
    t0 = time.perf_counter()
    runs = [wrk(b.port, per, seconds, lines, workdir) for b, lines in zip(brokers, signed)]
    results = [wrk_result(p) for p, _ in runs]
    wall = time.perf_counter() - t0
    wrk_cpu = (os.times().children_user + os.times().children_system) - (wrk_cpu0.children_user + wrk_cpu0.children_system)
    after = cpu_snapshot(brokers, cluster)
    for _, f in runs:
        f.unlink()
    ok = sum(r["requests"] - r["non_2xx"] - r["socket_errors"] for r in results)
    dur = max(r["duration_us"] for r in results) / 1e6
    per_op = max(ok, 1)
    return {
        "connections": connections, "replicas": len(brokers), "ok": ok,
        "errors": sum(r["non_2xx"] + r["socket_errors"] for r in results),
        "rate": ok / dur, "p50_ms": max(r["p50_us"] for r in results) / 1000,
        "p99_ms": max(r["p99_us"] for r in results) / 1000,
        "ran_out": sum(r["threads_out_of_requests"] for r in results),
        "cpu_us": {k: (after[k] - before[k]) / per_op * 1e6 for k in after} | {"wrk": wrk_cpu / per_op * 1e6},
        "seconds": wall,
    }


def pin_to_cpu1(pids: list[int]) -> None:
    if PIN:
        for pid in pids:
            subprocess.run(["taskset", "-a", "-p", "-c", "1", str(pid)], capture_output=True)


def setup_brokers(kind: str, replicas: int, root: Path):
    """(brokers, cluster or None) started: a SQLite store, or a PostgreSQL cluster with
    `replicas` brokers on one database."""
    cluster = None
    if kind == "postgres":
        cluster = PgCluster(root / "pg").start()
        pin_to_cpu1([cluster.postmaster()])
        store = PostgresStore(cluster)
    else:
        store = SqliteStore(root / "b0" / "broker.db")
    first = Broker(root / "b0", workflows=[WORKFLOW], store=store, replica="b0")
    brokers = [first] + [Broker(root / f"b{i}", workflows=[WORKFLOW], store=store, signing_key=first.key,
                                replica=f"b{i}") for i in range(1, replicas)]
    prefix = ["taskset", "-c", "1"] if PIN else None
    for b in brokers:
        b.start(prefix=prefix)
    return brokers, cluster


def capacity(setups: list[str], levels: list[int], seconds: int) -> tuple[list[dict], list[dict]]:
    results, syncs = [], []
    for setup in setups:
        kind, _, n = setup.partition("-")
        replicas = int(n or 1)
        with tempfile.TemporaryDirectory(prefix="jitbroker-bench-", dir=REPO / "target") as d:
            root = Path(d)
            os.chmod(root, 0o755)
            brokers, cluster = setup_brokers(kind, replicas, root)
            try:
                b0 = brokers[0]
                people = [b0.person(f"bench{i}", 20000 + i, ["oncall"], host=f"bench-host-{i % 4}") for i in range(8)]
                for b in brokers[1:]:
                    b.hosts = b0.hosts
                capacity_level(brokers, people, cluster, 4, 2, root, rate_cap=2000)  # warm up
                for c in levels:
                    r = capacity_level(brokers, people, cluster, c, seconds, root)
                    r["setup"] = setup
                    results.append(r)
                    print(f"  {setup:<11} c={c:<3} {r['rate']:>7.0f} grants/s p50 {r['p50_ms']:.2f} ms "
                          f"p99 {r['p99_ms']:.2f} ms errors {r['errors']}", flush=True)
                if replicas == 1:
                    hosts = [Person(f"host{i}", 30000 + i, ["hosts"], enroll_quietly(b0, f"sync-{i}"))
                             for i in range(SYNC_HOSTS)]
                    r = capacity_level(brokers, hosts, cluster, 16, seconds, root, path="/v1/revocations",
                                       rate_cap=8000)
                    r["setup"] = setup
                    syncs.append(r)
                    print(f"  {setup:<11} revocation syncs: {r['rate']:.0f}/s p99 {r['p99_ms']:.2f} ms", flush=True)
                with b0.db() as c:
                    r["grants_in_store"] = c.execute("SELECT COUNT(*) FROM grants").fetchone()[0]
                chain = b0.cli("audit", "verify", check=False)
                if chain.returncode != 0:
                    raise RuntimeError(f"audit chain after {setup}: {chain.stdout}")
            finally:
                for b in brokers:
                    b.close()
                if cluster:
                    cluster.remove()
    return results, syncs


def enroll_quietly(b: Broker, name: str) -> HostKey:
    key = HostKey(name)
    b.cli("host", "add", name, key.public_paserk)
    return key


def under_attack(b: Broker, people, levels: list[int], total: int) -> list[tuple[dict, dict]]:
    """(quiet, attacked) results per level."""
    out = []
    for c in levels:
        quiet = run_level(b, people, c, total)
        attack = Attack(b.port, idle=IDLE, slow=SLOW).start()
        try:
            wait_for(lambda: all(x.connected and (x.kind != "idle" or x.answered) for x in attack.conns), 120,
                     "the attacking connections to be established")
            attacked = run_level(b, people, c, total)
            held = attack.open_count()
        finally:
            attack.close()
        attacked["held"] = held
        out.append((quiet, attacked))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--levels", default="1,16,64")
    ap.add_argument("--setups", default="sqlite,postgres,postgres-2")
    ap.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_SECONDS", "5")))
    ap.add_argument("--attack-levels", default="1,16")
    ap.add_argument("--attack-requests", type=int, default=int(os.environ.get("BENCH_ATTACK_REQUESTS", "1000")))
    args = ap.parse_args()
    binary = os.environ.get("JITBROKER") or str(REPO / "target" / "release" / "jitbroker")
    os.environ["JITBROKER"] = binary
    import brokerlab
    brokerlab.JITBROKER = binary
    if not os.access(binary, os.X_OK):
        print(f"{binary} not found: run `cargo build --release -p jit-broker` (make bench-broker does)", file=sys.stderr)
        return 1
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install wrk (make bench-broker does)", file=sys.stderr)
        return 1
    levels = [int(x) for x in args.levels.split(",")]
    attack_levels = [int(x) for x in args.attack_levels.split(",")] if args.attack_requests else []
    if attack_levels:
        raise_nofile(IDLE + SLOW + 1024)
    (REPO / "target").mkdir(exist_ok=True)
    print(f"jitbroker {binary}; wrk on CPU 0, brokers and PostgreSQL on CPU 1" if PIN else "nothing pinned", flush=True)
    results, syncs = capacity(args.setups.split(","), levels, args.seconds)

    attacked = []
    if attack_levels:
        with tempfile.TemporaryDirectory(prefix="jitbroker-bench-", dir=REPO / "target") as d:
            b = Broker(Path(d), workflows=[WORKFLOW]).start()
            try:
                people = [b.person(f"bench{i}", 20000 + i, ["oncall"], host=f"bench-host-{i % 4}") for i in range(8)]
                run_level(b, people, 4, 200)
                attacked = under_attack(b, people, attack_levels, args.attack_requests)
            finally:
                b.close()

    print(f"\ngrants issued end to end (POST /v1/requests, auto-approved), wrk, {args.seconds}s per level, "
          f"loopback, {os.cpu_count()} CPUs")
    print(f"{'store':<11} {'replicas':>8} {'conns':>5} {'grants/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}   "
          f"CPU µs per grant: broker (driver) / PostgreSQL / wrk")
    for r in results:
        cpu = r["cpu_us"]
        note = "  (pre-signed requests ran out)" if r["ran_out"] else ""
        print(f"{r['setup'].split('-')[0]:<11} {r['replicas']:>8} {r['connections']:>5} {r['rate']:>9.0f} "
              f"{r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['errors']:>6}   "
              f"{cpu['broker']:.0f} ({cpu['driver']:.0f}) / {cpu['postgres']:.0f} / {cpu['wrk']:.0f}{note}")
    if syncs:
        need = FLEET / PER_MINUTE
        print(f"\nrevocation syncs (GET /v1/revocations, {SYNC_HOSTS} hosts' attestations, 16 connections); "
              f"{FLEET:,} hosts once a minute = {need:.0f}/s")
        for r in syncs:
            print(f"{r['setup']:<11} {r['rate']:>7.0f}/s  p99 {r['p99_ms']:.2f} ms  -> {need / max(r['rate'], 1e-9):.1%} of capacity")
    if attacked:
        print(f"\nunder attack (Python clients): {IDLE} idle keep-alive + {SLOW} slowloris connections held while "
              f"{args.attack_requests} requests run per level (default http settings)")
        print(f"{'concurrency':>11} {'quiet p50':>9} {'quiet p99':>9} {'attack p50':>10} {'attack p99':>10} "
              f"{'p99 ratio':>9} {'held':>5} {'errors':>6}")
        for quiet, att in attacked:
            print(f"{quiet['concurrency']:>11} {quiet['p50_ms']:>9.2f} {quiet['p99_ms']:>9.2f} {att['p50_ms']:>10.2f} "
                  f"{att['p99_ms']:>10.2f} {att['p99_ms'] / quiet['p99_ms']:>9.2f} {att['held']:>5} "
                  f"{quiet['errors'] + att['errors']:>6}")
    failed = any(r["errors"] for r in results + syncs) or any(q["errors"] or a["errors"] for q, a in attacked)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
