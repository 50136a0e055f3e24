"""tmuxlab: a real terminal for the end-to-end tests, as a person has one.

A private tmux server (its own socket, no configuration file) runs as a throwaway user inside
the lab's mount namespace (so the setuid jitrun in it reads the lab's /etc/jitrun, and writes
its recordings to the lab's /var/log/jitrun), with one window of a known size running an
interactive bash with job control. The test types into it (``send-keys``), reads the screen
(``capture-pane``), resizes it (``resize-window``) and reads the shell's terminal settings
(``stty -a`` into a file), exactly as a person at that terminal would::

    with Tmux(lab, alice) as t:
        t.run(f"{lab.jitrun} -- /usr/bin/id -u")
        t.wait_for("0")
        t.type("C-c", literal=False)

The server and everything it started are killed when the block ends.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path

from jitlab import Lab, User, _run, descendants, kill_processes, pid_alive

# The shell in the pane: no start-up files, a prompt the tests look for, job control on.
PROMPT = "tmux-ready$"
SHELL = ["/usr/bin/env", f"PS1={PROMPT} ", "HISTFILE=/dev/null", "TERM=screen",
         "/bin/bash", "--noprofile", "--norc", "-i"]


class TmuxError(RuntimeError):
    pass


def have_tmux() -> bool:
    return shutil.which("tmux") is not None


class Tmux:
    def __init__(self, lab: Lab, user: User, cols: int = 100, rows: int = 30,
                 binds: tuple = ()):
        self.lab, self.user, self.cols, self.rows, self.binds = lab, user, cols, rows, binds
        self.dir = user.home / f".jitlab-tmux-{secrets.token_hex(4)}"
        self.socket = self.dir / "sock"
        self.server_pid: int | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> "Tmux":
        self.lab._user_dirs(self.user, self.dir)
        cmd = self.lab.ns_command(self.user, [
            "/usr/bin/tmux", "-S", str(self.socket), "-f", "/dev/null", "new-session", "-d",
            "-x", str(self.cols), "-y", str(self.rows), "-n", "jitlab", *SHELL,
        ], binds=self.binds)
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "TERM": "xterm"}
        p = subprocess.run(cmd, env=env, capture_output=True, timeout=60, cwd=self.user.home)
        if p.returncode != 0:
            raise TmuxError(f"tmux did not start: {p.stderr.decode(errors='replace')}")
        # No status line: the window is the whole terminal, and the pane keeps its size.
        self.tmux("set-option", "-g", "status", "off")
        self.tmux("set-option", "-g", "window-size", "manual")
        self.tmux("resize-window", "-t", "jitlab", "-x", str(self.cols), "-y", str(self.rows))
        self.server_pid = int(self.tmux("display-message", "-p", "#{pid}").strip())
        self.wait_for(PROMPT)
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.server_pid:
            tree = [self.server_pid, *descendants(self.server_pid)]
            self.tmux("kill-server", check=False)
            kill_processes(extra=[p for p in tree if pid_alive(p)])
            self.server_pid = None
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- driving ------------------------------------------------------------------------------

    def tmux(self, *args: str, check: bool = True) -> str:
        """A tmux client command against this server (as root: tmux lets root in)."""
        p = _run(["tmux", "-S", str(self.socket), *args], check=check)
        return p.stdout.decode("utf-8", "replace")

    def type(self, keys: str, literal: bool = True) -> None:
        """Type ``keys``: literally, or tmux key names (``C-c``, ``Enter``) with ``literal=False``."""
        if literal:
            self.tmux("send-keys", "-t", "jitlab", "-l", "--", keys)
        else:
            self.tmux("send-keys", "-t", "jitlab", keys)

    def run(self, line: str) -> None:
        """Type a command line and Enter."""
        self.type(line)
        self.type("Enter", literal=False)

    def screen(self) -> str:
        """What the terminal shows now (trailing blanks trimmed)."""
        return self.tmux("capture-pane", "-p", "-J", "-t", "jitlab")

    def history(self) -> str:
        """The whole pane, scrollback included (lines the terminal wrapped joined again)."""
        return self.tmux("capture-pane", "-p", "-J", "-S", "-", "-t", "jitlab")

    def wait_for(self, pattern: str | re.Pattern, timeout: float = 30, whole: bool = True) -> re.Match | bool:
        """Wait until the screen (with ``whole``, the scrollback too) shows ``pattern`` (a
        string, or a compiled regular expression). The timeout only catches a hang."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.history() if whole else self.screen()
            if isinstance(pattern, re.Pattern):
                m = pattern.search(text)
                if m:
                    return m
            elif pattern in text:
                return True
            if time.monotonic() > deadline:
                raise TmuxError(f"timed out waiting for {pattern!r} on the terminal; it shows:\n{text}")
            time.sleep(0.05)

    def count(self, needle: str) -> int:
        return self.history().count(needle)

    def wait_prompt(self, n: int, timeout: float = 60) -> None:
        """Wait until the shell has printed its prompt ``n`` times (it is ready again)."""
        deadline = time.monotonic() + timeout
        while self.count(PROMPT) < n:
            if time.monotonic() > deadline:
                raise TmuxError(f"the shell's prompt #{n} did not come; the terminal shows:\n{self.history()}")
            time.sleep(0.05)

    def command(self, line: str, timeout: float = 60) -> None:
        """Run a command line in the pane's shell and wait until its prompt is back."""
        n = self.count(PROMPT)
        self.run(line)
        self.wait_prompt(n + 1, timeout)

    def resize(self, cols: int, rows: int) -> None:
        self.tmux("resize-window", "-t", "jitlab", "-x", str(cols), "-y", str(rows))

    def pane_tty(self) -> str:
        return self.tmux("display-message", "-p", "-t", "jitlab", "#{pane_tty}").strip()

    def shell_pid(self) -> int:
        return int(self.tmux("display-message", "-p", "-t", "jitlab", "#{pane_pid}").strip())

    def stty(self, name: str) -> str:
        """The pane's terminal settings as its shell sees them (``stty -a``), through a file."""
        out = self.dir / f"stty-{name}"
        self.command(f"stty -a > {out}")
        return out.read_text()
