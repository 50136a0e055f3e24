#!/usr/bin/env python3
"""`make demo`: jitrun in five minutes, on this very machine, as a throwaway user.

It builds jitrun, creates a temporary user, gives jitrun a private configuration (a signing key,
one policy rule, an audit socket), and then walks through what jitrun does: a command that gets
exactly one Linux capability for the lifetime of a signed grant, the audit events it writes, a
refusal, and a grant that expires while its command is still running.

Everything happens in throwaway places (a temporary user, a private mount namespace per run, a
temporary directory) and is removed at the end: the host is left as it was found.
Needs root. Runs unattended (CI=true, no standard input).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "harness"))

import jitlab  # noqa: E402

WIDTH = 92


def say(text: str = "") -> None:
    """Narration: plain sentences, wrapped."""
    for para in textwrap.dedent(text).strip("\n").split("\n\n"):
        print(textwrap.fill(" ".join(para.split()), WIDTH))
        print()
    sys.stdout.flush()


def step(n: int, title: str) -> None:
    print("=" * WIDTH)
    print(f"Step {n}: {title}")
    print("=" * WIDTH)
    print()
    sys.stdout.flush()


def show(label: str, text: str, indent: str = "    ") -> None:
    print(f"{label}")
    body = text.rstrip("\n") or "(nothing)"
    print(textwrap.indent(body, indent))
    print()
    sys.stdout.flush()


def show_cmd(user: jitlab.User, argv: list[str], via_jitrun: bool = True) -> None:
    prompt = f"{user.name}$ " + ("jitrun " if via_jitrun else "") + " ".join(argv)
    print(prompt)
    sys.stdout.flush()


def cap_lines(status_text: str) -> str:
    keep = [l for l in status_text.splitlines() if l.startswith(("Uid:", "Cap", "NoNewPrivs"))]
    return "\n".join(keep)


def decode_caps(hexmask: str) -> str:
    if shutil.which("capsh"):
        out = subprocess.run(["capsh", f"--decode=0x{hexmask}"], capture_output=True, text=True).stdout.strip()
        if out:
            return out
    names = jitlab.cap_names(int(hexmask, 16))
    return f"0x{hexmask}=" + (",".join(n.lower() for n in names) or "(none)")


def event_json(rec: jitlab.AuditRecord) -> str:
    if rec.json is not None:
        return json.dumps(rec.json, indent=2, ensure_ascii=False)
    return rec.raw.decode("utf-8", "backslashreplace")


def check(cond: bool, what: str) -> None:
    if not cond:
        print(f"\n*** demo: unexpected result: {what}", file=sys.stderr)
        raise SystemExit(1)


def main() -> int:
    if os.geteuid() != 0:
        print("The demo needs root: it creates a throwaway user and installs a setuid copy of jitrun.",
              file=sys.stderr)
        return 1

    step(0, "build")
    say("First we build jitrun (the setuid helper) and jitctl (the unprivileged client) with cargo.")
    subprocess.run(["cargo", "build", "--workspace", "--quiet"], cwd=REPO, check=True, stdin=subprocess.DEVNULL)
    print("built target/debug/jitrun and target/debug/jitctl\n")

    with jitlab.Lab(host="demo-host") as lab:
        step(1, "a throwaway user and a private jitrun installation")
        alice = lab.add_user()
        raw_socket = lab.compile_helper("raw-socket")
        say(f"""
            We created the user "{alice.name}" (uid {alice.uid}). It is an ordinary account with no
            special rights; it will be deleted at the end.

            jitrun is a setuid-root program, so we installed a root-owned copy with mode 4755 at
            {lab.jitrun}. Every time it runs here, it runs in a private mount namespace where
            our test configuration is bind-mounted over /etc/jitrun and a scratch state directory
            over /var/lib/jitrun. The real /etc/jitrun of this machine is never touched.

            For comparison we also compiled a tiny program, {raw_socket.name}, that tries to open a
            raw network socket, which the kernel only allows with the capability CAP_NET_RAW.
            """)

        step(2, "the broker's signing key, and the policy")
        pub = Path(lab.public_key).read_text().strip()
        say("""
            Grants are signed by a broker. Here we play the broker ourselves: `jitctl keygen` made an
            Ed25519 key pair. The host trusts only the public half, which we put in
            /etc/jitrun/keys.d/:
            """)
        show("  /etc/jitrun/keys.d/test.paserk:", pub)
        policy = f"""\
            [[rule]]
            name = "net-debug"
            users = ["{alice.name}"]
            hosts = ["demo-*"]
            commands = ["/usr/bin/cat /proc/self/status", "{raw_socket}", "/usr/bin/sleep *"]
            capabilities = ["CAP_NET_RAW"]
            max_duration = "1h"
            """
        policy = textwrap.dedent(policy)
        lab.set_policy(policy)
        say("""
            The policy (/etc/jitrun/policy.toml) has one rule. It names who (our user), where (hosts
            named demo-*), what (three exact commands) and how (with CAP_NET_RAW only). Like every
            rule by default, it needs a signed grant: nobody holds this right permanently.
            """)
        show("  /etc/jitrun/policy.toml:", policy)

        step(3, "without a grant, nothing")
        show_cmd(alice, [str(raw_socket)], via_jitrun=False)
        res = lab.run_without_jitrun(alice, [str(raw_socket)])
        show("", res.out)
        show_cmd(alice, ["/usr/bin/cat", "/proc/self/status"])
        res = lab.run_as_user(alice, ["/usr/bin/cat", "/proc/self/status"])
        show("", res.err + f"(exit status {res.returncode})")
        check(res.returncode == 1, "jitrun without a grant should refuse")
        say("""
            On its own the user cannot open a raw socket. And jitrun refuses too, saying why and what
            to do: the rule exists, but it needs a grant.
            """)

        step(4, "a grant: five minutes of CAP_NET_RAW")
        token = lab.mint(alice, "net-debug", ttl="5m", reason="demo: debugging the network", ticket="DEMO-1")
        say(f"""
            Normally a person asks with `jitctl request net-debug`, an approver says yes, and the broker
            signs a grant. Here we sign one directly with `jitctl grant mint`: a PASETO v4.public token
            for user {alice.name}, rule net-debug, host demo-host, valid for five minutes.
            `jitctl grant show` decodes it:
            """)
        shown = lab.jitctl("grant", "show", "--public", lab.public_key, token)
        show(f"{alice.name}$ jitctl grant show --public keys.d/test.paserk TOKEN", shown.stdout.decode())
        store = lab.store_grant(alice, token, name="net-debug.grant")
        say(f"""
            We put the token in the user's grant store, {store.parent}/, where jitrun finds it
            without being told (`jitrun --grant FILE` works too).
            """)

        step(5, "the command runs with exactly one capability")
        show_cmd(alice, ["/usr/bin/cat", "/proc/self/status"])
        res = lab.run_as_user(alice, ["/usr/bin/cat", "/proc/self/status"])
        check(res.returncode == 0, f"the granted command should run: {res}")
        st = jitlab.parse_proc_status(res.out)
        show("  (the capability lines of its /proc/self/status)", cap_lines(res.out))
        show("  capsh --decode of CapEff:", decode_caps(st["CapEff"]))
        say(f"""
            The command ran as the user (uid {alice.uid}, not root), with one capability, CAP_NET_RAW,
            in its effective, permitted and ambient sets, and a bounding set reduced to it: it cannot
            gain more, not even by running a setuid-root program (NoNewPrivs is 1).
            """)
        show_cmd(alice, [str(raw_socket)])
        res = lab.run_as_user(alice, [str(raw_socket)])
        show("", res.out)
        check(res.returncode == 0, f"raw socket under jitrun: {res}")

        step(6, "what the security team sees")
        say("""
            Every elevation is logged to syslog, as one JSON object per event (after the `@cee:`
            cookie, the format rsyslog and most SIEMs parse). Here we catch the datagrams on our own
            socket instead of /dev/log. The last run produced:
            """)
        for ev in res.events:
            show(f"  {ev.action}  (syslog priority <{ev.pri}>: facility authpriv, severity {ev.severity})",
                 event_json(ev))

        step(7, "a refusal")
        show_cmd(alice, ["/usr/bin/id"])
        res = lab.run_as_user(alice, ["/usr/bin/id"])
        show("", res.err + f"(exit status {res.returncode})")
        check(res.returncode == 1, "a command outside the rule should be refused")
        say("""
            /usr/bin/id is not one of the rule's commands, so the grant does not cover it. jitrun says so
            on one line, exits with status 1, and logs the refusal with a machine-readable code:
            """)
        for ev in res.events:
            show(f"  {ev.action}", event_json(ev))

        step(8, "what may I run?")
        show_cmd(alice, ["-l"])
        res = lab.run_as_user(alice, None, options=["-l"])
        show("", res.out + res.err)

        step(9, "a grant runs out while its command is still running")
        lab.clear_grants(alice)
        short = lab.mint(alice, "net-debug", ttl="3s")
        lab.store_grant(alice, short, name="short.grant")
        say("""
            Now a grant that lasts three seconds, and a command that would take ten minutes. When the
            grant expires jitrun sends SIGTERM to the command's whole process tree (its cgroup), then
            SIGKILL after a grace period, and exits with 128 + the signal number.
            """)
        show_cmd(alice, ["/usr/bin/sleep", "600"])
        t0 = time.monotonic()
        res = lab.run_as_user(alice, ["/usr/bin/sleep", "600"], timeout=120)
        took = time.monotonic() - t0
        show("", res.err + f"(exit status {res.returncode}, after {took:.1f} s instead of 600 s)")
        check(res.returncode in (143, 137), f"expired command: {res}")
        for ev in res.events:
            if ev.action == "elevate.end":
                show("  elevate.end", event_json(ev))
        say("""
            The end event says why the command ended: jitrun.end_reason is "expired".
            """)

        step(10, "cleaning up")
        leftovers = [lab.install_dir, lab.tmp, alice.home]
    gone = not jitlab._user_exists(alice.name) and not any(p.exists() for p in leftovers)
    check(gone, f"something was left behind: user {alice.name} or one of {leftovers}")
    say(f"""
        The throwaway user {alice.name} and its home directory, the setuid copy of jitrun, the
        configuration, the key pair and the audit socket are gone; the mount namespaces vanished
        with their processes. The host is as we found it.

        That's jitrun: no standing privilege; one command, with just enough capability, for just
        long enough; and every step on the record.
        """)
    return 0


if __name__ == "__main__":
    sys.exit(main())
