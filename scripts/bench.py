#!/usr/bin/env python3
"""`make bench`: jitrun against sudo, sudo-rs and doas, as an ordinary user, on this machine.

What it does (needs root; never part of `make test`):

1. Installs what it needs, once: Debian's sudo, opendoas, hyperfine and GNU time (apt-get;
   `apt-get update` only when something is missing), and sudo-rs with
   `cargo install --locked sudo-rs --root /var/cache/jitrun-bench/sudo-rs` (skipped when built).
2. Sets up a jitlab (tests/harness/jitlab.py): a throwaway user, a root 4755 copy of
   target/release/jitrun (and of sudo-rs) in a throwaway directory, jitrun's configuration and
   state bound over /etc/jitrun and /var/lib/jitrun in a private mount namespace, the lab's audit
   listener as jitrun's syslog socket. In the same namespace a private /etc/sudoers (and an
   empty /etc/sudoers.d), /etc/doas.conf and /dev/log (the same listener, so the peers pay for
   their syslog lines as jitrun does for its audit events) are bound over the host's: the
   host's own files are never touched. Every tool lets the user run /bin/true as root with no
   password: jitrun through a grant-required rule with a grant file (`bench-grant`) and a
   standing rule (`bench-standing`, `--rule`).
3. Runs ONE hyperfine (-N, warmup) as that user over the floor (/bin/true), jitrun with the grant,
   jitrun with the standing rule, doas -n, sudo-rs -n and sudo -n; then a second hyperfine phase
   for `jitrun --grant FILE -- /bin/true` under generated policies of 10, 1 000 and 10 000 rules
   (scripts/bench_policy.py; the matching rule last): each policy needs its own /etc/jitrun, so
   one hyperfine invocation per policy, in rounds (10, 1 000, 10 000, 10, ...) whose samples are
   pooled, so that a machine whose load drifts does not skew the comparison (after each policy
   change it waits for the files to settle and runs jitrun once, so that the measured runs use
   the compiled policy snapshot; the first run after a change is measured apart); peak RSS of each
   case with /usr/bin/time -f %M (max of several runs); the first run after a policy change, once
   with the snapshot left to jitrun and once compiled ahead of time with `jitctl policy
   compile`; then the A/B table of issue 17: builds of jitrun (CARGO_TARGET_DIR target/bench-ab,
   rustc flags for the jitrun crate only: `--cfg jitrun_ab=...`, a link argument) that each put
   back one step taken out of the fast path, measured against this build run by run in turn
   (AB_RUNNER), back to back and 50 ms apart; then the in-process micro-benchmarks
   (`cargo bench -p jit-policy -p jit-grant -p jit-session`) if they exist.
4. Session recording (issue 18), in the same namespace: `jitrun -- cat` of a 100 MiB text file
   into /dev/null with and without recording (the recorded run relays the output through a
   pipe, writes the asciicast file and sends every line as a session.io datagram: to a reader
   that discards them, which is jitrun's own cost, and to a private rsyslogd running
   docs/audit.md's configuration, which is what a host pays), against `script -q -c` (a pty
   copy, no log) and sudo with `log_output` (its I/O log, with sudo's defaults) on the same
   file; then the fixed cost of a recorded `jitrun -- /bin/true` beside an unrecorded one.
5. Writes docs/benchmarks.md and prints it. Removes the user, the 4755 copies and everything
   else it made, except the caches in /var/cache/jitrun-bench (the 100 MiB file included).

Environment: BENCH_RUNS (runs per command in the main run; default 1000), BENCH_WARMUP (default
50), BENCH_SCALE_ROUNDS (default 3), BENCH_SCALE_RUNS (most runs per policy and round; default
200; hyperfine runs fewer, at least 10, when 3 s are up), BENCH_RSS_RUNS (default 5), BENCH_MICRO=0
skips the micro-benchmarks, BENCH_MICRO_TIMEOUT (seconds, default 480), BENCH_PEER_SYSLOG=0 leaves
/dev/log as it is (then the peers' syslog lines go wherever the host sends them, or nowhere),
BENCH_OUT (default docs/benchmarks.md), BENCH_REC_RUNS (timed runs of each 100 MiB command;
default 5), BENCH_REC_TRUE_RUNS (runs of the recorded and unrecorded /bin/true; default 300),
BENCH_ONLY=recording (only step 4: its section of the existing report is replaced, the rest kept;
no sudo-rs, doas or micro-benchmarks needed).
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import re
import shutil
import stat
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "harness"))
sys.path.insert(0, str(REPO / "scripts"))

import bench_policy  # noqa: E402
import jitlab  # noqa: E402

CACHE = Path("/var/cache/jitrun-bench")
SUDO_RS_ROOT = CACHE / "sudo-rs"
SUDO_RS_BUILD = CACHE / "sudo-rs-build"
PLACEHOLDERS = CACHE / "created-mountpoints"  # files we created on the host as bind targets
LOCK = CACHE / "bench.lock"

RUNS = int(os.environ.get("BENCH_RUNS", "1000"))
SCALE_RUNS = int(os.environ.get("BENCH_SCALE_RUNS", "200"))
SCALE_ROUNDS = int(os.environ.get("BENCH_SCALE_ROUNDS", "3"))
WARMUP = int(os.environ.get("BENCH_WARMUP", "50"))
SCALE_WARMUP = min(WARMUP, 10)
RSS_RUNS = int(os.environ.get("BENCH_RSS_RUNS", "5"))
MICRO = os.environ.get("BENCH_MICRO", "1") != "0"
AB = os.environ.get("BENCH_AB", "1") != "0"
# rounds of the A/B runner (every build once per round), back to back and AB_GAP apart
AB_RUNS = int(os.environ.get("BENCH_AB_RUNS", "300"))
AB_SPACED_RUNS = int(os.environ.get("BENCH_AB_SPACED_RUNS", "100"))
# Seconds between two runs of the "apart" A/B measurement: long enough for the kernel's RCU
# machinery behind cgroup moves to go idle, as between two commands a person types.
AB_GAP = 0.05
PEER_SYSLOG = os.environ.get("BENCH_PEER_SYSLOG", "1") != "0"
MICRO_TIMEOUT = int(os.environ.get("BENCH_MICRO_TIMEOUT", "480"))
OUT = Path(os.environ.get("BENCH_OUT", REPO / "docs" / "benchmarks.md"))
REC_RUNS = int(os.environ.get("BENCH_REC_RUNS", "5"))
REC_TRUE_RUNS = int(os.environ.get("BENCH_REC_TRUE_RUNS", "300"))
ONLY = os.environ.get("BENCH_ONLY", "")
RECORDING_HEADING = "## Session recording"
BIG_FILE = CACHE / "data" / "bench-100M.txt"
BIG_SIZE = 100 * 1024 * 1024
SCALE_SIZES = (10, 1_000, 10_000)
# jitrun writes its compiled policy snapshot only once the policy files are this old
# (crates/jitrun/src/policy_cache.rs SETTLE); the benchmark waits a little longer.
POLICY_SETTLE_S = 2.3
SNAPSHOT = "policy.snapshot"
PROFILE_HEADING = "## Where the time goes"

# Debian package -> a file it installs (to tell whether it is there)
APT_RUNTIME = {"sudo": "/usr/bin/sudo", "opendoas": "/usr/bin/doas", "hyperfine": "/usr/bin/hyperfine",
               "time": "/usr/bin/time"}
APT_SUDO_RS_BUILD = {"libpam0g-dev": None, "gcc": "/usr/bin/gcc", "libc6-dev": None}

# targets of issue 18
T_REC_OVERHEAD = 0.10

# targets of issue 8
T_FLOOR_RATIO = 2.0
T_PEER_SPEEDUP = 4.0
T_SCALE_ADDED_MS = 2.0
T_RSS_KIB = 5 * 1024
# targets of issue 17
T17_FLOOR_RATIO = 4.0
T17_PEER_SPEEDUP = 1.5
T17_PEER_STRETCH = 2.0
T17_FIRST_RUN_MS = 20.0

# Issue 17's steps that a build can put back, for the A/B table: (name, what the build puts
# back, rustc arguments for the jitrun crate alone, the rule it is measured with: "root" is the
# main table's bench-grant, "invoker" bench-invoker). The benchmark's own builds only, in their
# own target directory: `--cfg jitrun_ab` is never set by the Makefile, the packages or the
# tests, and none of this is a runtime switch of the setuid binary.
AB_STEPS = [
    ("pam", "libpam linked: the dynamic loader maps libpam, libaudit and libcap-ng at every exec",
     ["-C", "link-arg=-Wl,--no-as-needed", "-C", "link-arg=-l:libpam.so.0", "-C", "link-arg=-Wl,--as-needed"],
     "root"),
    ("nss", "run_as = \"invoker\": her passwd entry read a second time for the target (the groups were "
            "already the kernel's)", ["--cfg", 'jitrun_ab="invoker_lookup"'], "invoker"),
    ("watchdog", "the supervisor waits for its watchdog to exit, then moves itself out of its cgroup to "
                 "remove it", ["--cfg", 'jitrun_ab="wait_watchdog"'], "root"),
    ("cgroup", "the process the shell started moves itself into the run's cgroup (an RCU grace period) "
               "instead of starting the supervisor there (two forks)", ["--cfg", 'jitrun_ab="move_into_cgroup"'],
     "root"),
]
# Runs a command once as the user and prints its wall time and peak RSS (wait4), without the
# interpreter's own start-up: the first run after a policy change happens only once.
ONCE = ("import os, sys, time\n"
        "t = time.perf_counter()\n"
        "pid = os.posix_spawn(sys.argv[1], sys.argv[1:], {})\n"
        "_, st = os.waitpid(pid, 0)\n"
        "print('jitbench-once', time.perf_counter() - t, os.waitstatus_to_exitcode(st))\n")


class BenchError(RuntimeError):
    pass


def log(msg: str) -> None:
    print(f"bench: {msg}", flush=True)


def run(cmd, check=True, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    kw.setdefault("stdin", subprocess.DEVNULL)
    kw.setdefault("text", True)
    p = subprocess.run([os.fspath(c) for c in cmd], **kw)
    if check and p.returncode != 0:
        raise BenchError(f"failed ({p.returncode}): {' '.join(map(str, cmd))}\n{p.stdout or ''}{p.stderr or ''}")
    return p


# --------------------------------------------------------------------------------------------
# installing


def dpkg_installed(pkg: str) -> bool:
    p = run(["dpkg-query", "-W", "-f=${Status}", pkg], check=False)
    return p.returncode == 0 and "install ok installed" in p.stdout


def apt_ensure(pkgs: dict[str, str | None]) -> None:
    missing = [p for p, f in pkgs.items() if not dpkg_installed(p) or (f and not Path(f).exists())]
    if not missing:
        return
    log(f"installing Debian packages: {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "update", "-qq"], env=env, stdout=None, stderr=None)
    run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env, stdout=None, stderr=None)


def cargo_bin() -> str:
    for c in (os.environ.get("CARGO"), shutil.which("cargo"), str(Path.home() / ".cargo" / "bin" / "cargo")):
        if c and (shutil.which(c) or Path(c).is_file()):
            return c
    raise BenchError("cargo not found (needed to build sudo-rs and the micro-benchmarks)")


def ensure_sudo_rs() -> Path:
    binary = SUDO_RS_ROOT / "bin" / "sudo"
    if binary.is_file():
        return binary
    apt_ensure(APT_SUDO_RS_BUILD)
    log(f"building sudo-rs into {SUDO_RS_ROOT} (once; a few minutes)")
    env = dict(os.environ, CARGO_TARGET_DIR=str(SUDO_RS_BUILD))
    run([cargo_bin(), "install", "--locked", "sudo-rs", "--root", SUDO_RS_ROOT], env=env, stdout=None, stderr=None)
    if not binary.is_file():
        raise BenchError(f"cargo install sudo-rs did not produce {binary}")
    shutil.rmtree(SUDO_RS_BUILD, ignore_errors=True)  # the installed binary is the cache
    return binary


# --------------------------------------------------------------------------------------------
# bind targets that do not exist on the host (e.g. /etc/doas.conf, /dev/log)


def _placeholders() -> list[str]:
    try:
        return [x for x in PLACEHOLDERS.read_text().splitlines() if x]
    except OSError:
        return []


def remove_placeholders() -> None:
    for p in _placeholders():
        path = Path(p)
        try:
            st = path.lstat()
            if stat.S_ISREG(st.st_mode) and st.st_size == 0 and st.st_uid == 0:
                path.unlink()
        except FileNotFoundError:
            pass
        except OSError as e:
            log(f"warning: could not remove placeholder {p}: {e}")
    try:
        PLACEHOLDERS.unlink()
    except FileNotFoundError:
        pass


def bind_target(path: Path) -> Path:
    """``path`` as a bind-mount target: created as an empty root-only file when missing (and
    listed for removal at the end)."""
    if path.exists() or path.is_symlink():
        return path
    with open(PLACEHOLDERS, "a") as f:
        f.write(f"{path}\n")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    os.close(fd)
    return path


# --------------------------------------------------------------------------------------------
# the machine and the tools


def machine() -> dict[str, str]:
    info = {}
    cpuinfo = Path("/proc/cpuinfo").read_text()
    m = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    info["cpu"] = m.group(1).strip() if m else platform.processor() or "unknown"
    info["cores"] = str(os.cpu_count())
    m = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
    info["memory"] = f"{int(m.group(1)) / 1024 / 1024:.1f} GiB" if m else "unknown"
    info["kernel"] = platform.release()
    try:
        osr = Path("/etc/os-release").read_text()
        m = re.search(r'^PRETTY_NAME="?([^"\n]+)', osr, re.M)
        info["os"] = m.group(1) if m else "unknown"
    except OSError:
        info["os"] = "unknown"
    return info


def first_line(cmd) -> str:
    p = run(cmd, check=False)
    out = (p.stdout or p.stderr or "").strip().splitlines()
    return out[0].strip() if out else "unknown"


def dpkg_version(pkg: str) -> str:
    p = run(["dpkg-query", "-W", "-f=${Version}", pkg], check=False)
    return p.stdout.strip() or "unknown"


# --------------------------------------------------------------------------------------------
# running as the user in the namespace


class Bench:
    def __init__(self, lab: jitlab.Lab, user: jitlab.User, binds: list[tuple[Path, Path]]):
        self.lab, self.user, self.binds = lab, user, binds

    def cmd(self, argv) -> list:
        return self.lab.ns_command(self.user, [os.fspath(a) for a in argv], binds=self.binds)

    def run(self, argv, timeout: float = 60, capture: bool = True) -> subprocess.CompletedProcess:
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
        return subprocess.run([os.fspath(c) for c in self.cmd(argv)], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE if capture else None,
                              stderr=subprocess.PIPE if capture else None,
                              env=env, cwd=self.user.home, timeout=timeout, text=True)

    def hyperfine(self, cases: list[tuple[str, str]], runs: int | tuple[int, int], tag: str,
                  warmup: int = WARMUP) -> dict[str, dict]:
        """One hyperfine over ``cases`` [(name, command line)]; name -> hyperfine result.
        ``runs``: exactly that many, or (min, max) runs (hyperfine aims at 3 s in between)."""
        out = self.user.home / f"hyperfine-{tag}.json"
        if isinstance(runs, tuple):
            count = ["--min-runs", str(runs[0]), "--max-runs", str(runs[1])]
        else:
            count = ["--runs", str(runs)]
        argv = ["/usr/bin/hyperfine", "-N", "--warmup", str(warmup), *count, "--style", "basic",
                "--export-json", str(out)]
        for name, line in cases:
            argv += ["--command-name", name, line]
        log(f"hyperfine ({tag}): {len(cases)} command(s), {' '.join(count)}")
        p = self.run(argv, timeout=3600, capture=False)
        if p.returncode != 0:
            raise BenchError(f"hyperfine ({tag}) failed with status {p.returncode}")
        data = json.loads(out.read_text())
        res = {}
        for (name, _), r in zip(cases, data["results"]):
            res[name] = r
        return res

    def peak_rss(self, argv: list[str], n: int) -> int:
        """Max over ``n`` runs of /usr/bin/time's %M (KiB) for ``argv`` run as the user."""
        best = 0
        for _ in range(n):
            p = self.run(["/usr/bin/time", "-f", "jitbench-maxrss=%M", "--", *argv])
            m = re.findall(r"jitbench-maxrss=(\d+)", p.stderr or "")
            if p.returncode != 0 or not m:
                raise BenchError(f"/usr/bin/time {' '.join(argv)}: status {p.returncode}\n{p.stderr}")
            best = max(best, int(m[-1]))
        return best


    def warm_cache(self, argv: list[str]) -> None:
        """After a policy change: let the files settle, run once so that jitrun writes its
        compiled policy snapshot, and check that it did (the measured runs are then warm)."""
        time.sleep(POLICY_SETTLE_S)
        snap = self.lab.state / SNAPSHOT
        snap.unlink(missing_ok=True)
        p = self.run(argv)
        if p.returncode != 0 or not snap.is_file():
            raise BenchError(f"`{' '.join(argv)}` did not write {SNAPSHOT} (status {p.returncode})\n{p.stderr}")

    def once(self, argv: list[str]) -> float:
        """Wall seconds of one run of ``argv`` as the user (it must exit 0)."""
        p = self.run(["/usr/bin/python3", "-c", ONCE, *argv])
        m = re.findall(r"jitbench-once ([\d.e-]+) (-?\d+)", p.stdout or "")
        if p.returncode != 0 or not m or m[-1][1] != "0":
            raise BenchError(f"{' '.join(argv)} (timed once): status {p.returncode}\n{p.stdout}\n{p.stderr}")
        return float(m[-1][0])

    def rss_once(self, argv: list[str]) -> int:
        """Peak RSS (KiB) of one run of ``argv`` as the user, from /usr/bin/time (a process
        started from the interpreter would count the interpreter's pages: exec keeps the
        high-water mark)."""
        p = self.run(["/usr/bin/time", "-f", "jitbench-maxrss=%M", "--", *argv])
        m = re.findall(r"jitbench-maxrss=(\d+)", p.stderr or "")
        if p.returncode != 0 or not m:
            raise BenchError(f"/usr/bin/time {' '.join(argv)}: status {p.returncode}\n{p.stderr}")
        return int(m[-1])

    def cold(self, argv: list[str], n: int) -> tuple[float, int]:
        """(mean wall seconds, max peak RSS KiB) of ``n`` runs each without a policy snapshot:
        the first run after a policy change left to jitrun (every file parsed, then the
        snapshot written, the files being old enough)."""
        snap = self.lab.state / SNAPSHOT
        times, best = [], 0
        for _ in range(n):
            snap.unlink(missing_ok=True)
            times.append(self.once(argv))
            snap.unlink()
            best = max(best, self.rss_once(argv))
        if not snap.is_file():
            raise BenchError(f"`{' '.join(argv)}` did not write {SNAPSHOT}")
        return statistics.fmean(times), best

    def compiled(self, argv: list[str], policy: tuple[str, dict[str, str]], n: int) -> tuple[float, int]:
        """(mean wall seconds, max peak RSS KiB) of the first run after a policy change made with
        the project's tools, ``n`` times: the files written again (new inodes and times), then
        `jitctl policy compile` as root (it waits until they are 2 s old), then one run, which
        must use the compiled snapshot (a stale one it would write again)."""
        snap = self.lab.state / SNAPSHOT
        times, best = [], 0
        for i in range(2 * n):  # n changes timed, n more for the peak RSS
            for attempt in range(3):
                self.lab.set_policy(*policy)
                c = self.lab.jitctl_as_root("policy", "compile")
                # Another jitlab on this machine that ends removes the empty /etc/jitrun it made
                # as a mount point, which detaches the bind mount in this namespace: start over.
                if c.returncode == 0 or "/etc/jitrun does not exist" not in c.stderr:
                    break
                log(f"jitctl policy compile found no /etc/jitrun (attempt {attempt + 1}): again")
            if c.returncode != 0:
                raise BenchError(f"jitctl policy compile failed ({c.returncode}):\n{c.stdout}{c.stderr}")
            before = snap.stat()
            if i < n:
                times.append(self.once(argv))
            else:
                best = max(best, self.rss_once(argv))
            after = snap.stat()
            if (after.st_ino, after.st_mtime_ns) != (before.st_ino, before.st_mtime_ns):
                raise BenchError(f"`{' '.join(argv)}` rewrote the snapshot jitctl compiled: it did not match")
        return statistics.fmean(times), best


def pooled(results: list[dict]) -> dict:
    """hyperfine-style statistics over the pooled samples of several results."""
    times = [t for r in results for t in r["times"]]
    cpu = sum((r["user"] + r["system"]) * len(r["times"]) for r in results) / len(times)
    return {"mean": statistics.fmean(times), "stddev": statistics.stdev(times) if len(times) > 1 else 0.0,
            "median": statistics.median(times), "min": min(times), "max": max(times), "runs": len(times),
            "user": cpu, "system": 0.0}


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def verify(bench: Bench, name: str, argv: list[str]) -> None:
    mark = bench.lab.audit.mark()
    p = bench.run(argv)
    if p.returncode != 0:
        raise BenchError(f"{name}: `{' '.join(argv)}` as {bench.user.name} exited {p.returncode}, not 0 "
                         f"(the benchmark needs it to succeed)\nstdout: {p.stdout}\nstderr: {p.stderr}")
    if name.startswith("jitrun"):
        bench.lab.audit.sync()
        actions = [r.action for r in bench.lab.audit.since(mark)]
        if "elevate.start" not in actions:
            raise BenchError(f"{name}: no elevate.start audit event reached the listener (got {actions})")


# --------------------------------------------------------------------------------------------
# session recording (issue 18)

# A datagram reader that throws everything away: jitrun's own cost of session.io.
DISCARD = ("import socket, sys\n"
           "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
           "s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)\n"
           "s.bind(sys.argv[1])\n"
           "while True:\n"
           "    s.recv(1 << 17)\n")


class Discard:
    def __init__(self, path: Path):
        self.path = path
        self.proc = subprocess.Popen([sys.executable, "-c", DISCARD, str(path)])
        deadline = time.monotonic() + 20
        while not path.exists():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise BenchError("the discarding datagram reader did not start")
            time.sleep(0.02)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.path.unlink(missing_ok=True)


def big_file() -> Path:
    """100 MiB of text (lines of 99 printable characters), root's, readable by all: made once."""
    if BIG_FILE.is_file() and BIG_FILE.stat().st_size == BIG_SIZE:
        return BIG_FILE
    BIG_FILE.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    os.chmod(BIG_FILE.parent, 0o755)
    line = bytes(33 + (i % 94) for i in range(99)) + b"\n"
    tmp = BIG_FILE.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        block = line * (1024 * 1024 // len(line) + 1)
        left = BIG_SIZE
        while left:
            n = min(left, len(block))
            f.write(block[:n])
            left -= n
    os.chmod(tmp, 0o644)
    os.replace(tmp, BIG_FILE)
    return BIG_FILE


def recording_rules(user: str, big: Path) -> list[dict]:
    cat = f"/usr/bin/cat {big}"
    return [
        {"name": "bench-cat", "users": [user], "commands": [cat], "run_as": "root", "capabilities": [],
         "grant": "none", "record": False},
        {"name": "bench-cat-rec", "users": [user], "commands": [cat], "run_as": "root", "capabilities": [],
         "grant": "none", "record": True},
        {"name": "bench-standing", "users": [user], "commands": ["/usr/bin/true"], "run_as": "root",
         "capabilities": [], "grant": "none"},
        {"name": "bench-true-rec", "users": [user], "commands": ["/usr/bin/true"], "run_as": "root",
         "capabilities": [], "grant": "none", "record": True},
    ]


def clear_recordings(lab: jitlab.Lab, *dirs: Path) -> None:
    for f in lab.sessions.glob("*.cast"):
        f.unlink()
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


def check_output_size(bench: Bench, name: str, line: str, size: int = BIG_SIZE) -> None:
    """The command writes the whole file (counted, not kept): `size` bytes."""
    argv = bench.cmd(["/bin/sh", "-c", line + " | /usr/bin/wc -c"])
    p = subprocess.run([os.fspath(a) for a in argv], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}, cwd=bench.user.home,
                       timeout=600)
    if p.returncode != 0 or p.stdout.strip() != str(size):
        raise BenchError(f"{name}: `{line}` wrote {p.stdout.strip() or '?'} bytes, not {size} "
                         f"(status {p.returncode})\n{p.stderr}")


def recording_phase(lab: jitlab.Lab, user: jitlab.User, base_binds: list) -> dict:
    """Step 4 of the module documentation. Returns what render_recording needs."""
    big = big_file()
    jitrun = lab.jitrun
    priv = lab.tmp / "recording-peers"
    priv.mkdir(mode=0o755)
    sudo_io = priv / "sudo-io"
    sudoers = priv / "sudoers"
    sudoers.write_text(f"# jitrun bench, session recording (private, bind-mounted)\nDefaults !lecture\n"
                       f"Defaults!/usr/bin/cat log_output, iolog_dir={sudo_io}\n"
                       f"{user.name} ALL=(root) NOPASSWD: /usr/bin/cat {big}\n")
    os.chmod(sudoers, 0o440)
    binds = [b for b in base_binds if str(b[1]) not in ("/etc/sudoers", "/etc/sudoers-rs")]
    binds.append((sudoers, bind_target(Path("/etc/sudoers"))))
    bench = Bench(lab, user, binds)
    rules = recording_rules(user.name, big)
    lab.set_policy(bench_policy.render(rules, "# make bench: session recording\n"), dropins={})
    sink = Discard(lab.tmp / "audit" / "discard.sock")
    rs = None
    try:
        lab.write_settings(socket=str(sink.path))
        cat = f"/usr/bin/cat {big}"
        lines = {
            "cat": cat,
            "jitrun": f"{jitrun} --rule bench-cat -- {cat}",
            "jitrun-rec": f"{jitrun} --rule bench-cat-rec -- {cat}",
            "script": f"/usr/bin/script -q -c '{cat}' /dev/null",
            "sudo-log": f"/usr/bin/sudo -n {cat}",
        }
        for name, line in lines.items():
            # script's pty turns each \n into \r\n (the file's lines are 100 bytes)
            check_output_size(bench, name, line, BIG_SIZE + BIG_SIZE // 100 if name == "script" else BIG_SIZE)
        if not list(lab.sessions.glob("*.cast")) or not any(sudo_io.rglob("*")):
            raise BenchError("the recorded runs left no recording (jitrun) or no I/O log (sudo)")
        rec = next(iter(lab.sessions.glob("*.cast")))
        rec_ratio = rec.stat().st_size / BIG_SIZE
        clear_recordings(lab, sudo_io)
        log(f"session recording: every command writes {BIG_SIZE:,} bytes")
        out = {"lines": {k: v.replace(str(lab.install_dir) + "/", "") for k, v in lines.items()},
               "rec_ratio": rec_ratio, "load_start": loadavg()}
        out["throughput"] = bench.hyperfine(list(lines.items()), REC_RUNS, "recording", warmup=1)
        clear_recordings(lab, sudo_io)
        # the same recorded run with a real rsyslogd taking the session.io events
        rsyslog_dir = lab.tmp / "recording-rsyslog"
        rsyslog_dir.mkdir(mode=0o700)
        rs = jitlab_rsyslog().Rsyslog(rsyslog_dir, snippet=REPO / "packaging" / "siem" / "rsyslog" /
                                      "60-jitrun-cee.conf").start()
        lab.write_settings(socket=str(rs.socket))
        check_output_size(bench, "jitrun-rec (rsyslogd)", lines["jitrun-rec"])
        out["rsyslog"] = bench.hyperfine([("jitrun-rec-rsyslog", lines["jitrun-rec"])], REC_RUNS,
                                         "recording-rsyslog", warmup=1)["jitrun-rec-rsyslog"]
        rs.stop()
        clear_recordings(lab)
        # the fixed cost of recording
        lab.write_settings(socket=str(sink.path))
        true_lines = {"jitrun-true": f"{jitrun} --rule bench-standing -- /bin/true",
                      "jitrun-true-rec": f"{jitrun} --rule bench-true-rec -- /bin/true"}
        for name, line in true_lines.items():
            before = set(lab.sessions.glob("*.cast"))
            p = bench.run(line.split())
            made = set(lab.sessions.glob("*.cast")) - before
            if p.returncode != 0 or len(made) != (1 if name.endswith("-rec") else 0):
                raise BenchError(f"{name}: `{line}` exited {p.returncode} and left {len(made)} recordings\n"
                                 f"{p.stderr}")
        out["lines"].update({k: v.replace(str(lab.install_dir) + "/", "") for k, v in true_lines.items()})
        out["fixed"] = bench.hyperfine(list(true_lines.items()), REC_TRUE_RUNS, "recording-fixed", warmup=10)
        clear_recordings(lab)
        out["load_end"] = loadavg()
        return out
    finally:
        sink.close()
        if rs is not None:
            rs.close()
        lab.write_settings()


def jitlab_rsyslog():
    """tests/harness/rsyslog.py (imported when needed: only this step runs rsyslogd)."""
    import rsyslog  # noqa: E402
    return rsyslog


def render_recording(rec: dict, date: str, machine_line: str) -> str:
    t = rec["throughput"]
    base = t["jitrun"]["mean"]
    mib = BIG_SIZE / (1024 * 1024)
    rows = [("cat", "no tool: the floor"), ("jitrun", "not recorded"),
            ("jitrun-rec", "recorded; session.io datagrams to a reader that discards them"),
            ("script", "a pty copy, no log"), ("sudo-log", "sudo with `log_output` (its defaults: compressed I/O log)")]
    L = [RECORDING_HEADING, ""]
    L.append(f"`make bench` step 4 (scripts/bench.py), {date}; {machine_line}. The machine is shared with "
             f"other work: load average {rec['load_start']} at the start of this step, {rec['load_end']} at its "
             "end. Absolute times move with that load; the ratios come from one hyperfine run.")
    L.append("")
    L.append(f"Each command writes the same {mib:.0f} MiB text file (lines of 99 printable characters) to "
             f"/dev/null, as a throwaway user, hyperfine `-N`, 1 warmup and {REC_RUNS} timed runs. Output "
             "that is not a terminal goes through pipes: the recorded jitrun reads it, writes the asciicast "
             "file (root's, synced at the end) and sends the same lines as `session.io` datagrams (as many whole "
             "lines as fit in 8096 bytes each). "
             f"A recording of this file is {rec['rec_ratio']:.3f}× its size.")
    L.append("")
    L.append("| command | what | mean ± σ (s) | MiB/s | user+sys (s) | × jitrun not recorded |")
    L.append("|---|---|---:|---:|---:|---:|")

    def row(name: str, what: str, r: dict) -> str:
        return (f"| `{rec['lines'].get(name, rec['lines']['jitrun-rec'])}` | {what} | {r['mean']:.3f} ± "
                f"{r['stddev'] or 0:.3f} | {mib / r['mean']:.0f} | {r['user'] + r['system']:.3f} | "
                f"{r['mean'] / base:.2f} |")
    for name, what in rows:
        L.append(row(name, what, t[name]))
    L.append(row("jitrun-rec-rsyslog", "recorded; session.io through a private rsyslogd running "
                 "packaging/siem/rsyslog/60-jitrun-cee.conf (its own hyperfine run)", rec["rsyslog"]))
    L.append("")
    f = rec["fixed"]
    plain, recd = f["jitrun-true"], f["jitrun-true-rec"]
    L.append(f"The fixed cost of recording, one hyperfine run, {REC_TRUE_RUNS} runs each (the recorded run "
             "creates its file, writes the header and the exit, syncs it, and sends three `session.io` "
             "datagrams):")
    L.append("")
    L.append("| command | mean ± σ (ms) | median (ms) | user+sys (ms) |")
    L.append("|---|---:|---:|---:|")
    for name, r in (("jitrun-true", plain), ("jitrun-true-rec", recd)):
        L.append(f"| `{rec['lines'][name]}` | {ms(r['mean'])} ± {ms(r['stddev'] or 0)} | {ms(r['median'])} | "
                 f"{ms(r['user'] + r['system'])} |")
    L.append("")
    overhead = t["jitrun-rec"]["mean"] / base - 1
    sudo = t["sudo-log"]["mean"]
    L.append("| target (issue 18) | measured | met |")
    L.append("|---|---|---|")
    L.append(f"| recording costs ≤ {T_REC_OVERHEAD:.0%} of the throughput of the same run unrecorded | "
             f"{overhead:+.0%} time ({mib / t['jitrun-rec']['mean']:.0f} vs {mib / base:.0f} MiB/s) | "
             f"{'yes' if overhead <= T_REC_OVERHEAD else '**no**'} |")
    L.append(f"| faster than sudo with `log_output` | {t['jitrun-rec']['mean']:.3f} s vs {sudo:.3f} s | "
             f"{'yes' if t['jitrun-rec']['mean'] < sudo else '**no**'} |")
    L.append(f"| fixed cost of a recorded `/bin/true` | {ms(recd['mean'] - plain['mean'])} ms more "
             f"({ms(recd['mean'])} vs {ms(plain['mean'])} ms) | (no target) |")
    L.append("")
    L.append("Reading the first target: unrecorded, the output never passes through jitrun (cat writes to "
             "/dev/null itself), so it compares reading, escaping (twice: the asciicast line, then that line "
             "inside the JSON of its datagram), hashing, writing and sending every byte with touching none. "
             "`script` (a relay through a pty, nothing logged) and sudo's `log_output` (a compressed local log, "
             "nothing sent off the host) give the scale of a relay and of a log. jitrun does it all on the "
             "supervisor's one thread (no threads in the setuid binary).")
    L.append("")
    if t["jitrun-rec"]["mean"] >= sudo:
        L.append("Reading the second target: sudo's `log_output` puts the output through zlib into a local file "
                 "and sends nothing anywhere. A recorded jitrun, for every byte, also computes SHA-256 (each "
                 "`session.io` chunk and `elevate.end` carry it), escapes it into an asciicast JSON line, escapes "
                 "that line again inside the JSON of its `session.io` event, and sends it a second time, off the "
                 "host's disk, in datagrams of at most 8096 bytes (rsyslog's default `maxMessageSize`) through a "
                 "unix socket that queues 10 of them (`net.unix.max_dgram_qlen`), waiting for the reader whenever "
                 "the queue is full; and it syncs the file at the end. Each of those steps is what docs/SECURITY.md "
                 "(I34) and docs/audit.md promise (a hashed local file and a whole copy through syslog), all on the "
                 "supervisor's one thread; \"Where the time goes\" below shows how a recorded run's time divides "
                 "among them.")
        L.append("")
    return "\n".join(L) + "\n"


def splice_recording(report: str, section: str) -> str:
    """Put `section` in place of the report's recording section (or before the micro-benchmarks)."""
    start = report.find("\n" + RECORDING_HEADING)
    if start >= 0:
        rest = report[start + 1:]
        end = rest.find("\n## ", len(RECORDING_HEADING))
        tail = "" if end < 0 else rest[end + 1:]
        return report[:start + 1] + section + ("\n" + tail if tail else "")
    anchor = report.find("\n## In-process micro-benchmarks")
    if anchor < 0:
        return report.rstrip("\n") + "\n\n" + section
    return report[:anchor + 1] + section + "\n" + report[anchor + 1:]


# --------------------------------------------------------------------------------------------
# A/B: issue 17's steps put back one at a time


def ab_variants() -> dict[str, list[str]]:
    """Build name -> rustc arguments: each step put back alone, then all of them at once."""
    variants = {name: args for name, _, args, _ in AB_STEPS}
    variants["all"] = [a for _, _, args, _ in AB_STEPS for a in args]
    return variants


def build_ab(target_root: Path) -> dict[str, Path]:
    """The A/B builds of jitrun (release, in their own target directory; the flags reach the
    jitrun crate alone, so its dependencies are built once). Name -> binary."""
    target = target_root / "bench-ab"
    out = target / "variants"
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, CARGO_TARGET_DIR=str(target))
    bins = {}
    for name, args in ab_variants().items():
        log(f"A/B build `{name}`: cargo rustc --release -p jitrun -- {' '.join(args)}")
        run([cargo_bin(), "rustc", "--release", "--locked", "-p", "jitrun", "--bin", "jitrun", "--", *args],
            cwd=REPO, env=env, stdout=None, stderr=None)
        dest = out / f"jitrun-{name}"
        shutil.copy2(target / "release" / "jitrun", dest)
        bins[name] = dest
    # The builds must differ in what they claim to: libpam is loaded at exec by "pam" and "all".
    for name, path in bins.items():
        linked = "libpam.so.0" in run(["ldd", path]).stdout
        if linked != (name in ("pam", "all")):
            raise BenchError(f"A/B build {name}: libpam {'is' if linked else 'is not'} linked ({path})")
    return bins


# Runs as the user: every case once per round, in turn, for ROUNDS rounds (GAP seconds before
# each run when GAP > 0), so that the load of a shared machine, which drifts over seconds,
# falls on every build alike (hyperfine runs each command's runs in one block). Per run: wall
# seconds, CPU seconds (user + system of the run and its children, from wait4), minor page
# faults and context switches. Prints one JSON object: name -> list of [wall, cpu, minflt, csw].
AB_RUNNER = """
import json, os, sys, time
rounds, gap, warm = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
cases = json.loads(sys.argv[4])
null = os.open("/dev/null", os.O_RDWR)
io = [(os.POSIX_SPAWN_DUP2, null, fd) for fd in (0, 1, 2)]
out = {name: [] for name, _ in cases}
for k in range(warm + rounds):
    for name, argv in cases:
        if gap:
            time.sleep(gap)
        t = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, {}, file_actions=io)
        _, st, ru = os.wait4(pid, 0)
        wall = time.perf_counter() - t
        if os.waitstatus_to_exitcode(st) != 0:
            sys.exit(f"{name}: exit status {os.waitstatus_to_exitcode(st)}")
        if k >= warm:
            out[name].append([wall, ru.ru_utime + ru.ru_stime, ru.ru_minflt, ru.ru_nvcsw + ru.ru_nivcsw])
print(json.dumps(out))
"""


def ab_stats(samples: list[list[float]]) -> dict:
    wall = [x[0] for x in samples]
    return {"mean": statistics.fmean(wall), "stddev": statistics.stdev(wall), "median": statistics.median(wall),
            "cpu": statistics.fmean(x[1] for x in samples), "minflt": statistics.fmean(x[2] for x in samples),
            "csw": statistics.fmean(x[3] for x in samples), "runs": len(samples)}


def ab_measure(bench: Bench, cases: list[tuple[str, str]]) -> tuple[dict, dict]:
    """``cases`` interleaved run by run (AB_RUNNER): back to back, and AB_GAP seconds apart."""
    argvs = json.dumps([[name, line.split()] for name, line in cases])
    found = []
    for rounds, gap, warm in ((AB_RUNS, 0.0, 20), (AB_SPACED_RUNS, AB_GAP, 3)):
        log(f"A/B: {len(cases)} builds interleaved, {rounds} rounds, {gap * 1000:.0f} ms apart")
        p = bench.run(["/usr/bin/python3", "-c", AB_RUNNER, str(rounds), str(gap), str(warm), argvs], timeout=7200)
        if p.returncode != 0:
            raise BenchError(f"A/B runner failed ({p.returncode}): {p.stderr}")
        found.append({name: ab_stats(s) for name, s in json.loads(p.stdout).items()})
    return found[0], found[1]


# --------------------------------------------------------------------------------------------
# micro-benchmarks


def micro_benchmarks() -> tuple[str, str]:
    """(status, text) of `cargo bench -p jit-policy -p jit-grant -p jit-session`, or why it did not run."""
    pkgs = [c for c in ("jit-policy", "jit-grant", "jit-session") if (REPO / "crates" / c / "benches").is_dir()]
    if not MICRO:
        return "skipped (BENCH_MICRO=0)", ""
    if not pkgs:
        return "absent (no crates/jit-policy/benches, crates/jit-grant/benches or crates/jit-session/benches)", ""
    cmd = [cargo_bin(), "bench"] + [a for p in pkgs for a in ("-p", p)]
    log(f"micro-benchmarks: {' '.join(cmd[1:])} (timeout {MICRO_TIMEOUT}s)")
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=MICRO_TIMEOUT)
    except subprocess.TimeoutExpired:
        return f"timed out after {MICRO_TIMEOUT}s", ""
    took = time.monotonic() - t0
    out = p.stdout
    lines: list[str] = []
    # divan prints a tree table per bench binary (a header with "fastest │ slowest ..." and
    # rows until a blank line); criterion prints "name  time: [..]" lines
    in_table = False
    for l in out.splitlines():
        if "fastest" in l and "│" in l:
            in_table = True
        if in_table:
            if not l.strip():
                in_table = False
                lines.append("")
                continue
            lines.append(l.rstrip())
    if not lines:
        lines = [l.rstrip() for l in out.splitlines() if "time:" in l or "thrpt:" in l]
    bins = re.findall(r"Running (?:unittests )?\S*benches/(\S+?\.rs)", p.stderr)
    status = f"`cargo {' '.join(cmd[1:])}`: exit {p.returncode} in {took:.0f}s (divan; times per call)"
    if bins:
        status += f"; bench targets: {', '.join(bins)}"
    if p.returncode != 0:
        tail = "\n".join(p.stderr.strip().splitlines()[-15:])
        return status + " (failed)", ("\n".join(lines) + "\n" + tail).strip()
    return status, "\n".join(lines).strip()


# --------------------------------------------------------------------------------------------
# the report


def ms(x: float) -> str:
    return f"{x * 1000:.2f}"


def render_ab(ctx: dict) -> list[str]:
    """The A/B table: each build of issue 17's steps against this one."""
    back, apart = ctx["ab"]
    what = {name: text for name, text, _, _ in AB_STEPS}
    what["all"] = "all of the above: the fast path as it was before issue 17"
    what["this build"] = "none: this build"
    L = ["## A/B: issue 17's steps, one at a time", "",
         "`jitrun --grant FILE -- /bin/true` (the main table's policy and grant; `, invoker`: `--grant FILE2`, "
         "run_as invoker) by builds of this commit that each put one step back (`cargo rustc --release -p jitrun -- ARGS` in target/bench-ab: "
         "`--cfg jitrun_ab=\"…\"` or a link argument for the jitrun crate alone; these builds exist only here, "
         "there is no runtime switch). Not hyperfine: a small runner (scripts/bench.py `AB_RUNNER`, as the "
         "user) starts every build once per round, in turn, so that the load of a shared machine, which "
         f"drifts over seconds, falls on all builds alike: {AB_RUNS} rounds back to back, and {AB_SPACED_RUNS} "
         f"rounds with {AB_GAP * 1000:.0f} ms of sleep before each run (a person types one command at a time; a "
         "cgroup move waits for an RCU grace period, which runs close together share). Wall time per run "
         "(median and mean), CPU = user+sys of the run and its children (from `wait4`), minor page faults and "
         "context switches per run; Δ is the build's minus this build's: what the step costs.", "",
         "| build | puts back | back to back: median (mean) ms | CPU (ms) | faults | switches | Δ median (ms) "
         f"| Δ CPU (ms) | {AB_GAP * 1000:.0f} ms apart: median (mean) ms | Δ median (ms) |",
         "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name in back:
        b, a = back[name], apart[name]
        ref = "this build, invoker" if name.endswith(", invoker") else "this build"
        cur_b, cur_a = back[ref], apart[ref]
        L.append(f"| `{name}` | {what.get(name.removesuffix(', invoker'), name)} | {ms(b['median'])} ({ms(b['mean'])}) "
                 f"| {ms(b['cpu'])} | {b['minflt']:.0f} | {b['csw']:.1f} | "
                 f"{(b['median'] - cur_b['median']) * 1000:+.2f} | {(b['cpu'] - cur_b['cpu']) * 1000:+.2f} | "
                 f"{ms(a['median'])} ({ms(a['mean'])}) | {(a['median'] - cur_a['median']) * 1000:+.2f} |")
    L.append("")
    L.append("The first run after a policy change, the step that `jitctl policy compile` takes out of the setuid "
             "binary, is in the policy-scale table below (left to jitrun, or compiled by jitctl).")
    return L


def render_report(ctx: dict) -> str:
    main, scale, rss, scale_rss = ctx["main"], ctx["scale"], ctx["rss"], ctx["scale_rss"]
    floor = main["floor"]["mean"]
    jg = main["jitrun-grant"]["mean"]
    L = []
    L.append("# Benchmarks")
    L.append("")
    L.append("Generated by `make bench` (scripts/bench.py); do not edit by hand: run it again. Absolute times "
             "depend on the machine and its load: compare the ratios, which come from one hyperfine run.")
    L.append("")
    L.append(f"- date: {ctx['date']}")
    m = ctx["machine"]
    L.append(f"- machine: {m['cpu']}, {m['cores']} cores (as the kernel reports them), {m['memory']} memory; "
             f"kernel {m['kernel']}; {m['os']}")
    L.append(f"- load average (1, 5, 15 min) at the start: {ctx['load_start']}; at the end of the end-to-end runs: "
             f"{ctx['load_end']} (anything else running on the machine adds noise)")
    if max(float(x) for x in (ctx["load_start"] + " " + ctx["load_end"]).split() if x[0].isdigit()) > 1.0:
        L.append("- **the machine was shared** while this ran (other builds and tests: see the load average): "
                 "absolute times, wall-clock ones most, are inflated and vary from run to run; compare the "
                 "ratios within one table, and user+sys (CPU) times, which other load disturbs less")
    L.append("- tools: " + "; ".join(ctx["versions"].values()))
    L.append(f"- method: every command runs as a throwaway unprivileged user (`setpriv --reuid … --init-groups`) "
             f"in one private mount namespace; hyperfine `-N` (no shell), {WARMUP} warmup runs, "
             f"{RUNS} runs per command. Each tool lets the user run `/bin/true` as root "
             f"without a password. jitrun's audit events go to a unix datagram listener (the lab's) with "
             f"`fail_closed = true`; " + (
                 "/dev/log is bound to the same listener, so sudo, sudo-rs and doas pay for their syslog lines "
                 f"(PAM's included) too" if PEER_SYSLOG else
                 "/dev/log is left as the host has it (BENCH_PEER_SYSLOG=0)") + f" ({ctx['audit_note']}).")
    L.append("")
    L.append("## jitrun against sudo, sudo-rs and doas (one hyperfine run)")
    L.append("")
    L.append("| command | mean ± σ (ms) | median (ms) | min (ms) | user+sys (ms) | × floor | × jitrun (grant) |")
    L.append("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in main.items():
        L.append(f"| `{ctx['lines'][name]}` | {ms(r['mean'])} ± {ms(r['stddev'] or 0)} | {ms(r['median'])} | "
                 f"{ms(r['min'])} | {ms(r['user'] + r['system'])} | {r['mean'] / floor:.2f} | {r['mean'] / jg:.2f} |")
    L.append("")
    L.append("Ratios are of the means (wall clock). user+sys is the CPU time hyperfine measured for the command and "
             "its children: less sensitive to other load on the machine than wall-clock time.")
    L.append("")
    L.append("`jitrun-grant` = `jitrun --grant FILE -- /bin/true` (rule `bench-grant`: grant required, run_as root, "
             "no capabilities, command `/usr/bin/true`); `jitrun-standing` = `jitrun --rule bench-standing -- /bin/true` "
             "(`grant = \"none\"`); `jitrun-invoker` = `jitrun --grant FILE2 -- /bin/true` (rule `bench-invoker`: "
             "run_as invoker with CAP_NET_RAW: no user or group lookup for the target).")
    if ctx.get("ab"):
        L.append("")
        L += render_ab(ctx)
    L.append("")
    L.append("## Policy scale: `jitrun --grant FILE -- /bin/true` end to end")
    L.append("")
    L.append("Policies from `scripts/bench_policy.py` (realistic mixes of users, groups, host globs, argv patterns "
             "with globs and `**`, run_as modes, capabilities, standing rules; drop-ins of at most 1 000 rules; the "
             f"matching rule last). Each policy needs its own /etc/jitrun, so this is one hyperfine invocation "
             f"per policy ({SCALE_WARMUP} warmup runs, 10 to {SCALE_RUNS} runs), in {SCALE_ROUNDS} rounds "
             f"(10, 1 000, 10 000 rules, then again), with the samples of the rounds pooled.")
    L.append("")
    L.append("jitrun keeps a compiled policy snapshot (/var/lib/jitrun/policy.snapshot, see docs/policy.md): "
             "after each policy change the benchmark waits until the files have settled and runs jitrun once, "
             "so the measured runs decode only the rule the grant names. The last four columns are the "
             "first run after a policy change (wall time of that one run, mean of "
             f"{RSS_RUNS} changes; the peak RSS of {RSS_RUNS} more, from /usr/bin/time): left to jitrun (no snapshot: every file parsed, then the snapshot written), "
             "and made with the project's tools (the files written again, then `jitctl policy compile` as root, "
             "which waits until they are 2 s old; the run must use that snapshot, not rewrite it).")
    L.append("")
    L.append("| rules | files | runs | mean ± σ (ms) | median (ms) | user+sys (ms) | added vs 10 rules (ms) | peak RSS (KiB) "
             "| first run after a change, left to jitrun (ms) | its peak RSS (KiB) "
             "| first run after a change, compiled by jitctl (ms) | its peak RSS (KiB) |")
    L.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    base = scale[SCALE_SIZES[0]]["mean"]
    for n in SCALE_SIZES:
        r = scale[n]
        cold_s, cold_kib = ctx["scale_cold"][n]
        comp_s, comp_kib = ctx["scale_compiled"][n]
        L.append(f"| {n:,} | {ctx['scale_files'][n]} | {r['runs']} | {ms(r['mean'])} ± {ms(r['stddev'] or 0)} | {ms(r['median'])} | {ms(r['user'])} | "
                 f"{(r['mean'] - base) * 1000:+.2f} | {scale_rss[n]:,} | {ms(cold_s)} | {cold_kib:,} "
                 f"| {ms(comp_s)} | {comp_kib:,} |")
    L.append("")
    L.append("## Peak RSS")
    L.append("")
    L.append(f"`/usr/bin/time -f %M` (maximum resident set size of the command and the children it waited for), "
             f"the maximum of {RSS_RUNS} runs each.")
    L.append("")
    L.append("| command | peak RSS (KiB) | MiB |")
    L.append("|---|---:|---:|")
    for name, kib in rss.items():
        L.append(f"| `{ctx['lines'][name]}` | {kib:,} | {kib / 1024:.1f} |")
    for n in SCALE_SIZES:
        L.append(f"| `jitrun --grant FILE -- /bin/true`, {n:,} rules | {scale_rss[n]:,} | {scale_rss[n] / 1024:.1f} |")
    for n in SCALE_SIZES:
        kib = ctx["scale_cold"][n][1]
        L.append(f"| the same, {n:,} rules, first run after a policy change (left to jitrun) | {kib:,} | {kib / 1024:.1f} |")
    for n in SCALE_SIZES:
        kib = ctx["scale_compiled"][n][1]
        L.append(f"| the same, {n:,} rules, first run after a policy change compiled by jitctl | {kib:,} | "
                 f"{kib / 1024:.1f} |")
    L.append("")
    L.append("The RSS target below is checked on the runs with a current snapshot (every run but the first "
             "after a policy change left to jitrun).")
    L.append("")
    L.append("## Targets (issue 8)")
    L.append("")
    L.append("| target | measured | met |")
    L.append("|---|---|---|")
    for t, meas, ok in ctx["targets"]:
        L.append(f"| {t} | {meas} | {'yes' if ok else '**no**'} |")
    L.append("")
    L.append("## Targets (issue 17)")
    L.append("")
    L.append("| target | measured | met |")
    L.append("|---|---|---|")
    for t, meas, ok in ctx["targets17"]:
        L.append(f"| {t} | {meas} | {'yes' if ok else '**no**'} |")
    L.append("")
    L.append("## In-process micro-benchmarks")
    L.append("")
    L.append(ctx["micro_status"])
    if ctx["micro_text"]:
        L.append("")
        L.append("```")
        L.append(ctx["micro_text"])
        L.append("```")
    L.append("")
    if ctx.get("profile"):
        L.append(ctx["profile"].rstrip("\n"))
        L.append("")
    return "\n".join(L)


def kept_profile_section() -> str:
    """The hand-written section "Where the time goes" of the current report (a profile of one
    run, by phase), carried over into the new report unchanged."""
    try:
        text = OUT.read_text()
    except OSError:
        return ""
    start = text.find("\n" + PROFILE_HEADING)
    if start < 0:
        return ""
    rest = text[start + 1:]
    end = rest.find("\n## ", len(PROFILE_HEADING))
    return rest if end < 0 else rest[:end + 1]


def targets(main: dict, scale: dict, rss: dict, scale_rss: dict) -> list[tuple[str, str, bool]]:
    added = (scale[SCALE_SIZES[-1]]["mean"] - scale[SCALE_SIZES[0]]["mean"]) * 1000
    jit_rss = {k: v for k, v in rss.items() if k.startswith("jitrun")}
    jit_rss.update({f"{n} rules": v for n, v in scale_rss.items()})
    worst = max(jit_rss, key=jit_rss.get)
    return [
        *floor_and_peer_targets(main, T_FLOOR_RATIO, T_PEER_SPEEDUP),
        (f"10 000-rule decision adds ≤ {T_SCALE_ADDED_MS:g} ms (vs 10 rules)", f"{added:+.2f} ms",
         added <= T_SCALE_ADDED_MS),
        (f"peak RSS of jitrun < 5 MiB ({T_RSS_KIB} KiB), every jitrun case", f"{jit_rss[worst]:,} KiB ({worst})",
         jit_rss[worst] < T_RSS_KIB),
    ]


def floor_and_peer_targets(main: dict, floor_ratio: float, peer_speedup: float) -> list[tuple[str, str, bool]]:
    """jitrun with a grant against the floor, and against the fastest of doas, sudo-rs, sudo."""
    floor, jg = main["floor"]["mean"], main["jitrun-grant"]["mean"]
    peers = {k: main[k]["mean"] for k in ("doas", "sudo-rs", "sudo")}
    fastest = min(peers, key=peers.get)
    speedup = peers[fastest] / jg
    return [
        (f"jitrun with a grant ≤ {floor_ratio:g}× the floor",
         f"{jg / floor:.2f}× ({ms(jg)} ms vs {ms(floor)} ms)", jg / floor <= floor_ratio),
        (f"≥ {peer_speedup:g}× faster than the fastest of doas, sudo-rs, sudo",
         f"{speedup:.2f}× ({fastest}: {ms(peers[fastest])} ms)", speedup >= peer_speedup),
    ]


def targets17(ctx: dict) -> list[tuple[str, str, bool]]:
    """Issue 17's targets: against the floor and the peers, and the first run after a change."""
    main = ctx["main"]
    big = SCALE_SIZES[-1]
    first_ms = ctx["scale_compiled"][big][0] * 1000
    first_kib = ctx["scale_compiled"][big][1]
    _, stretch, stretch_met = floor_and_peer_targets(main, T17_FLOOR_RATIO, T17_PEER_STRETCH)[1]
    return [
        *floor_and_peer_targets(main, T17_FLOOR_RATIO, T17_PEER_SPEEDUP),
        (f"stretch: ≥ {T17_PEER_STRETCH:g}× faster than the fastest peer", stretch, stretch_met),
        (f"first run after a {big:,}-rule change made with the project's tools ≤ {T17_FIRST_RUN_MS:g} ms",
         f"{first_ms:.1f} ms (`jitctl policy compile`, then one run; peak RSS {first_kib:,} KiB)",
         first_ms <= T17_FIRST_RUN_MS),
        (f"peak RSS of jitrun < 5 MiB ({T_RSS_KIB} KiB)", "see issue 8's row above",
         all(v < T_RSS_KIB for k, v in ctx["rss"].items() if k.startswith("jitrun"))),
    ]


# --------------------------------------------------------------------------------------------


def machine_line(m: dict) -> str:
    return (f"{m['cpu']}, {m['cores']} cores, {m['memory']} memory; kernel {m['kernel']}; {m['os']}")


def main_recording_only(jitrun_bin: Path, jitctl_bin: Path) -> int:
    """BENCH_ONLY=recording: step 4 alone; its section of the existing report is replaced."""
    apt_ensure({k: APT_RUNTIME[k] for k in ("sudo", "hyperfine", "time")})
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lab = jitlab.Lab(jitrun=jitrun_bin, jitctl=jitctl_bin)
    try:
        lab.setup()
        user = lab.add_user()
        log(f"throwaway user {user.name} (uid {user.uid}); setuid copy in {lab.install_dir}")
        binds = [(lab.audit.path, bind_target(Path("/dev/log")))] if PEER_SYSLOG else []
        rec = recording_phase(lab, user, binds)
    finally:
        lab.close()
        remove_placeholders()
    section = render_recording(rec, date, machine_line(machine()))
    old = OUT.read_text() if OUT.is_file() else "# Benchmarks\n"
    OUT.write_text(splice_recording(old, section))
    print()
    print(section)
    log(f"replaced the session recording section of {OUT.relative_to(REPO) if OUT.is_relative_to(REPO) else OUT}")
    return 0


def main() -> int:
    if os.geteuid() != 0:
        print("make bench needs root (it installs packages, creates a throwaway user and setuid copies)",
              file=sys.stderr)
        return 1
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "release"
    jitrun_bin, jitctl_bin = target / "jitrun", target / "jitctl"
    for b in (jitrun_bin, jitctl_bin):
        if not b.is_file():
            raise BenchError(f"{b} is missing: run `make release` (make bench does)")

    CACHE.mkdir(parents=True, exist_ok=True)
    lockf = open(LOCK, "w")
    try:
        fcntl.flock(lockf, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise BenchError(f"another make bench holds {LOCK}")
    remove_placeholders()  # from a run that was killed
    if ONLY == "recording":
        return main_recording_only(jitrun_bin, jitctl_bin)
    if ONLY:
        raise BenchError(f"BENCH_ONLY={ONLY!r}: only \"recording\" is known")

    apt_ensure(APT_RUNTIME)
    sudo_rs_src = ensure_sudo_rs()
    for tool in ("unshare", "setpriv", "hyperfine"):
        if not shutil.which(tool):
            raise BenchError(f"{tool} not found")

    versions = {
        "jitrun": first_line([jitrun_bin, "--version"]),
        "sudo": f"sudo {dpkg_version('sudo')}",
        "sudo-rs": first_line([sudo_rs_src, "--version"]),
        "opendoas": f"opendoas {dpkg_version('opendoas')}",
        "hyperfine": first_line(["/usr/bin/hyperfine", "--version"]),
        "GNU time": f"GNU time {dpkg_version('time')}",
    }

    ctx: dict = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
                 "versions": versions, "load_start": loadavg()}
    ab_built = build_ab(target.parent) if AB else {}
    lab = jitlab.Lab(jitrun=jitrun_bin, jitctl=jitctl_bin)
    try:
        lab.setup()
        user = lab.add_user()
        log(f"throwaway user {user.name} (uid {user.uid}); setuid copies in {lab.install_dir}")
        sudo_rs = lab.install_file("sudo-rs", sudo_rs_src.read_bytes(), 0o4755)
        jitrun = lab.jitrun

        # private files for the peers, bound over the host's in the namespace
        priv = lab.tmp / "peers"
        priv.mkdir(mode=0o755)
        sudoers = priv / "sudoers"
        sudoers.write_text(f"# jitrun bench (private, bind-mounted)\nDefaults !lecture\n"
                           f"{user.name} ALL=(root) NOPASSWD: /bin/true, /usr/bin/true\n")
        os.chmod(sudoers, 0o440)
        sudoers_d = priv / "sudoers.d"
        sudoers_d.mkdir(mode=0o755)
        doas_conf = priv / "doas.conf"
        doas_conf.write_text(f"permit nopass {user.name} as root cmd /bin/true\n"
                             f"permit nopass {user.name} as root cmd /usr/bin/true\n")
        os.chmod(doas_conf, 0o644)
        binds = [(sudoers, bind_target(Path("/etc/sudoers")))]
        if Path("/etc/sudoers-rs").exists():  # sudo-rs prefers it when present
            binds.append((sudoers, Path("/etc/sudoers-rs")))
        if Path("/etc/sudoers.d").is_dir():
            binds.append((sudoers_d, Path("/etc/sudoers.d")))
        binds.append((doas_conf, bind_target(Path("/etc/doas.conf"))))
        if PEER_SYSLOG:
            binds.append((lab.audit.path, bind_target(Path("/dev/log"))))
        bench = Bench(lab, user, binds)

        # jitrun: a grant-required rule with a grant file, and a standing rule
        rule_grant = {"name": "bench-grant", "users": [user.name], "commands": ["/usr/bin/true"],
                      "run_as": "root", "capabilities": [], "max_duration": "4h"}
        rule_standing = {"name": "bench-standing", "users": [user.name], "commands": ["/usr/bin/true"],
                         "run_as": "root", "capabilities": [], "grant": "none"}
        rule_invoker = {"name": "bench-invoker", "users": [user.name], "commands": ["/usr/bin/true"],
                        "run_as": "invoker", "capabilities": ["CAP_NET_RAW"], "max_duration": "4h"}
        small_policy = bench_policy.render([rule_grant, rule_standing, rule_invoker], "# make bench\n")
        lab.set_policy(small_policy, dropins={})
        token = lab.mint(user, "bench-grant", ttl="3h")
        grant = lab.user_file(user, "bench.grant", token + "\n")
        grant_invoker = lab.user_file(user, "bench-invoker.grant", lab.mint(user, "bench-invoker", ttl="3h") + "\n")
        ab_bins = {name: lab.install_file(f"jitrun-ab-{name}", path.read_bytes(), 0o4755)
                   for name, path in ab_built.items()}

        lines = {
            "floor": "/bin/true",
            "jitrun-grant": f"{jitrun} --grant {grant} -- /bin/true",
            "jitrun-standing": f"{jitrun} --rule bench-standing -- /bin/true",
            "jitrun-invoker": f"{jitrun} --grant {grant_invoker} -- /bin/true",
            "doas": "/usr/bin/doas -n /bin/true",
            "sudo-rs": f"{sudo_rs} -n /bin/true",
            "sudo": "/usr/bin/sudo -n /bin/true",
        }
        ctx["lines"] = {k: v.replace(str(grant_invoker), "FILE2").replace(str(grant), "FILE")
                        .replace(str(lab.install_dir) + "/", "") for k, v in lines.items()}
        bench.warm_cache(lines["jitrun-grant"].split())
        for name, line in lines.items():
            verify(bench, name, line.split())
        log("every command exits 0 as " + user.name)

        mark = lab.audit.mark()
        ctx["main"] = bench.hyperfine(list(lines.items()), RUNS, "main")
        lab.audit.sync()
        recs = lab.audit.since(mark)
        n_jit = sum(1 for r in recs if r.action == "elevate.start")
        n_other = sum(1 for r in recs if r.framing == "unparsed")
        ctx["audit_note"] = (f"the listener received {n_jit:,} jitrun elevate.start events and {n_other:,} "
                             f"syslog lines from the peers during the main run")

        log("peak RSS")
        ctx["rss"] = {name: bench.peak_rss(line.split(), RSS_RUNS) for name, line in lines.items()}

        # A/B: the same grant run by each build (the small policy, as in the main table)
        if ab_bins:
            grants = {"root": grant, "invoker": grant_invoker}
            rule_of = {name: rule for name, _, _, rule in AB_STEPS}
            ab_cases = [("this build", lines["jitrun-grant"]), ("this build, invoker", lines["jitrun-invoker"])]
            for name, path in ab_bins.items():
                for rule in ([rule_of[name]] if name in rule_of else ["root", "invoker"]):
                    label = name if rule == "root" else f"{name}, invoker"
                    ab_cases.append((label, f"{path} --grant {grants[rule]} -- /bin/true"))
            for name, line in ab_cases[2:]:
                verify(bench, f"jitrun A/B build {name}", line.split())
            log(f"A/B: {len(ab_cases)} builds, back to back and {AB_GAP * 1000:.0f} ms apart")
            ctx["ab"] = ab_measure(bench, ab_cases)

        # policy scale
        line = lines["jitrun-grant"]
        policies = {}
        ctx["scale_rss"], ctx["scale_files"], ctx["scale_cold"], ctx["scale_compiled"] = {}, {}, {}, {}
        for n in SCALE_SIZES:
            files = bench_policy.generate(n, rule_grant, user.name, lab.host, bench_group=user.group)
            policies[n] = (files["policy.toml"],
                           {Path(k).name: v for k, v in files.items() if k.startswith("policy.d/")})
            ctx["scale_files"][n] = len(files)
            lab.set_policy(*policies[n])
            chk = run([jitctl_bin, "policy", "check", lab.conf / "policy.toml", lab.conf / "policy.d"], check=False)
            if chk.returncode != 0:
                raise BenchError(f"generated {n}-rule policy does not load:\n{chk.stdout}{chk.stderr}")
            bench.warm_cache(line.split())
            verify(bench, f"jitrun ({n} rules)", line.split())
            ctx["scale_rss"][n] = bench.peak_rss(line.split(), RSS_RUNS)
            ctx["scale_cold"][n] = bench.cold(line.split(), RSS_RUNS)
            ctx["scale_compiled"][n] = bench.compiled(line.split(), policies[n], RSS_RUNS)
        samples: dict[int, list[dict]] = {n: [] for n in SCALE_SIZES}
        for k in range(SCALE_ROUNDS):
            for n in SCALE_SIZES:
                lab.set_policy(*policies[n])
                bench.warm_cache(line.split())
                name = f"jitrun-grant-{n}-rules"
                samples[n].append(bench.hyperfine([(name, line)], (10, SCALE_RUNS), f"scale-{n}-round-{k + 1}",
                                                  warmup=SCALE_WARMUP)[name])
        ctx["scale"] = {n: pooled(samples[n]) for n in SCALE_SIZES}
        ctx["load_end"] = loadavg()
        log("session recording")
        ctx["recording"] = recording_phase(lab, user, binds)
    finally:
        lab.close()
        remove_placeholders()

    ctx["targets"] = targets(ctx["main"], ctx["scale"], ctx["rss"], ctx["scale_rss"])
    ctx["targets17"] = targets17(ctx)
    # after the end-to-end runs, so that compiling them does not disturb those
    ctx["micro_status"], ctx["micro_text"] = micro_benchmarks()

    ctx["profile"] = kept_profile_section()
    report = splice_recording(render_report(ctx), render_recording(ctx["recording"], ctx["date"],
                                                                   machine_line(ctx["machine"])))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(report)
    print()
    print(report)
    log(f"wrote {OUT.relative_to(REPO) if OUT.is_relative_to(REPO) else OUT}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (BenchError, jitlab.JitlabError) as e:
        print(f"bench: error: {e}", file=sys.stderr)
        sys.exit(1)
