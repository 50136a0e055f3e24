#!/usr/bin/env python3
"""Benchmark (not a test): grants issued per second by a real jitbroker, end to end.

Each request is `POST /v1/requests` by an on-call user whose workflow auto-approves, so the
broker authenticates the attestation (signature, freshness, replay table), writes the request,
signs the grant, records grant.issue in the hash-chained audit table and answers with the
approved request. Loopback only; a fresh SQLite store in a temporary directory; a bounded number
of requests per concurrency level (BENCH_REQUESTS, default 2000).

Attestations are signed (pyseto) before each timed phase, so the client's own signing is not
in the measurement; each worker thread keeps one HTTP/1.1 connection open.

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
from brokerlab import Broker  # noqa: E402

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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--levels", default="1,16,64")
    ap.add_argument("--requests", type=int, default=int(os.environ.get("BENCH_REQUESTS", "2000")))
    args = ap.parse_args()
    binary = os.environ.get("JITBROKER") or str(REPO / "target" / "release" / "jitbroker")
    os.environ["JITBROKER"] = binary
    import brokerlab
    brokerlab.JITBROKER = binary
    if not os.access(binary, os.X_OK):
        print(f"{binary} not found: run `cargo build --release -p jit-broker` (make bench-broker does)", file=sys.stderr)
        return 1
    levels = [int(x) for x in args.levels.split(",")]
    with tempfile.TemporaryDirectory(prefix="jitbroker-bench-") as d:
        b = Broker(Path(d), workflows=[WORKFLOW]).start()
        try:
            people = [b.person(f"bench{i}", 20000 + i, ["oncall"], host=f"bench-host-{i % 4}") for i in range(8)]
            # Warm up (connections, page cache, prepared statements).
            run_level(b, people, 4, 200)
            results = [run_level(b, people, c, args.requests) for c in levels]
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
    return 1 if any(r["errors"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
