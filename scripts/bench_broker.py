#!/usr/bin/env python3
"""Benchmark (not a test): grants issued per second by a real jitbroker, end to end.

Each request is `POST /v1/requests` by an on-call user whose workflow auto-approves, so the
broker authenticates the attestation (signature, freshness, replay table), writes the request,
signs the grant, records grant.issue in the hash-chained audit table and answers with the
approved request. Loopback only; a fresh SQLite store in a temporary directory; a bounded number
of requests per concurrency level (BENCH_REQUESTS, default 2000).

Attestations are signed (pyseto) before each timed phase, so the client's own signing is not
in the measurement; each worker thread keeps one HTTP/1.1 connection open. The store lives
under target/ (a disk-backed file system: /tmp may be a tmpfs, where fsync costs nothing),
so grant-issuing commits pay for their fsync (synchronous=FULL) as in production.

Then the attack report (--attack-requests 0 skips it): the same requests at concurrency 1 and
16, once on a quiet broker and once while 2,000 idle keep-alive and 1,100 slowloris
connections (tests/broker/attackers.py; loopback, bounded) hold the server, with the p99
ratio. The broker runs with its default http settings.

Usage: make bench-broker   (builds the release jitbroker, then runs this)
       JITBROKER=target/release/jitbroker python3 scripts/bench_broker.py [--levels 1,16,64]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "broker"))
from attackers import Attack, raise_nofile  # noqa: E402
from brokerlab import Broker, wait_for  # noqa: E402

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
    ap.add_argument("--requests", type=int, default=int(os.environ.get("BENCH_REQUESTS", "2000")))
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
    levels = [int(x) for x in args.levels.split(",")]
    attack_levels = [int(x) for x in args.attack_levels.split(",")] if args.attack_requests else []
    if attack_levels:
        raise_nofile(IDLE + SLOW + 1024)
    (REPO / "target").mkdir(exist_ok=True)
    attacked = []
    with tempfile.TemporaryDirectory(prefix="jitbroker-bench-", dir=REPO / "target") as d:
        b = Broker(Path(d), workflows=[WORKFLOW]).start()
        try:
            people = [b.person(f"bench{i}", 20000 + i, ["oncall"], host=f"bench-host-{i % 4}") for i in range(8)]
            # Warm up (connections, page cache, prepared statements).
            run_level(b, people, 4, 200)
            results = [run_level(b, people, c, args.requests) for c in levels]
            attacked = under_attack(b, people, attack_levels, args.attack_requests)
            with b.db() as c:
                grants = c.execute("SELECT COUNT(*) FROM grants").fetchone()[0]
            chain = b.cli("audit", "verify", check=False).stdout.strip()
        finally:
            b.close()
    print(f"jitbroker {binary}: grants issued end to end (POST /v1/requests, auto-approved), "
          f"{args.requests} requests per level, loopback, SQLite WAL, {os.cpu_count()} CPUs")
    print(f"{'concurrency':>11} {'grants/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'errors':>6}")
    for r in results:
        print(f"{r['concurrency']:>11} {r['grants_per_s']:>9.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
              f"{r['mean_ms']:>8.2f} {r['errors']:>6}" + (f"  first error: {r['first_error'][0]}" if r['errors'] else ""))
    print(f"store: {grants} grants; {chain}")
    if attacked:
        print(f"\nunder attack: {IDLE} idle keep-alive + {SLOW} slowloris connections held while "
              f"{args.attack_requests} requests run per level (default http settings)")
        print(f"{'concurrency':>11} {'quiet p50':>9} {'quiet p99':>9} {'attack p50':>10} {'attack p99':>10} "
              f"{'p99 ratio':>9} {'held':>5} {'errors':>6}")
        for quiet, att in attacked:
            print(f"{quiet['concurrency']:>11} {quiet['p50_ms']:>9.2f} {quiet['p99_ms']:>9.2f} {att['p50_ms']:>10.2f} "
                  f"{att['p99_ms']:>10.2f} {att['p99_ms'] / quiet['p99_ms']:>9.2f} {att['held']:>5} "
                  f"{quiet['errors'] + att['errors']:>6}")
    failed = any(r["errors"] for r in results) or any(q["errors"] or a["errors"] for q, a in attacked)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
