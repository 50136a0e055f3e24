"""`jitctl policy import-sudoers` on real sudoers files (Debian's default /etc/sudoers and the
examples file of the sudo package), and decisions compared with sudo itself: a sudoers file for
throwaway users is bound over /etc/sudoers in a private mount namespace, `sudo -l -U USER [-u
TARGET] [-h HOST] CMD` says allow or deny for several commands, those answers become [[test]]
cases of the converted policy, and `jitctl policy test` must agree with every one. Finally the
real setuid jitrun runs one converted rule."""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from jitlab import Lab, toml_value  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_policy_cli import jitctl  # noqa: E402

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (reads /etc/sudoers, creates users, runs sudo -l -U)")
SUDO = shutil.which("sudo")
needs_sudo = pytest.mark.skipif(SUDO is None and not os.environ.get("CI"), reason="sudo is not installed (make deps)")


def convert(path: Path, tmp: Path) -> tuple[str, str, Path]:
    out = tmp / "converted.toml"
    p = jitctl("policy", "import-sudoers", path, "-o", out, check=True)
    assert p.stdout == ""
    return out.read_text(), p.stderr, out


def not_converted(stderr: str, name: Path) -> list[tuple[int, str]]:
    found = re.findall(rf"^{re.escape(str(name))}:(\d+): not converted: (.*)$", stderr, re.M)
    return [(int(n), what) for n, what in found]


def pristine_sudoers() -> bool:
    """Is /etc/sudoers the file the Debian package shipped (its conffile hash)?"""
    p = subprocess.run(["dpkg-query", "-W", "-f=${Conffiles}", "sudo"], capture_output=True, text=True)
    for line in p.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "/etc/sudoers":
            return hashlib.md5(Path("/etc/sudoers").read_bytes()).hexdigest() == parts[1]
    return False


@root_only
@needs_sudo
def test_debian_default_sudoers(tmp_path):
    src = Path("/etc/sudoers")
    text, err, out = convert(src, tmp_path)
    # The converted file loads and lints like any policy.
    jitctl("policy", "check", out, check=True)
    items = not_converted(err, src)
    assert re.search(r"^import-sudoers: \d+ rule\(s\) written, \d+ item\(s\) not converted$", err, re.M), err
    # Everything listed on stderr is also in the trailing comment.
    for n, what in items:
        assert f"#   {src}:{n}: {what}" in text
    if not pristine_sudoers():
        pytest.skip("/etc/sudoers is not Debian's default here; the generic checks passed")
    lines = src.read_text().splitlines()
    no = {l.strip(): i + 1 for i, l in enumerate(lines)}
    # Debian's default: only `root` and `%sudo` with command ALL, which has no equivalent.
    assert "[[rule]]" not in text
    whats = {w.split(":")[0] for _, w in items}
    assert (no["root\tALL=(ALL:ALL) ALL"], "ALL: command ALL (any command) has no equivalent: jitrun rules list absolute program paths (a pattern for \"/**\" is refused); list the commands people need, or write a break-glass rule (grant = \"required\", min_approvals = 2) for the rare full-root session") in items
    assert any(n == no["%sudo\tALL=(ALL:ALL) ALL"] and w.startswith("ALL: command ALL") for n, w in items)
    assert (no["@includedir /etc/sudoers.d"], "@includedir /etc/sudoers.d: an include directory is not followed: convert /etc/sudoers.d with import-sudoers as well (into /etc/jitrun/policy.d/)") in items
    assert {"Defaults env_reset", "Defaults mail_badpass", "Defaults use_pty"} <= whats, whats
    assert any(w.startswith('Defaults secure_path="/usr/local/sbin') and "set secure_path" in w for _, w in items)


def examples_file(tmp: Path) -> Path:
    """sudo's own examples file: /usr/share/doc/sudo/examples/sudoers (plain or gzipped); when the
    image drops /usr/share/doc (dpkg path-exclude), from the sudo package itself."""
    for p in (Path("/usr/share/doc/sudo/examples/sudoers"), Path("/usr/share/doc/sudo/examples/sudoers.gz")):
        if p.is_file():
            data = gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
            break
    else:
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            pytest.skip("sudo's examples file is not installed and cannot be fetched")
        d = tmp / "deb"
        d.mkdir()
        subprocess.run(["apt-get", "download", "-q", "sudo"], cwd=d, check=True, capture_output=True)
        deb = next(d.glob("sudo_*.deb"))
        subprocess.run(["dpkg-deb", "-x", deb, d / "x"], check=True)
        base = d / "x/usr/share/doc/sudo/examples"
        f = base / "sudoers"
        data = f.read_bytes() if f.is_file() else gzip.decompress((base / "sudoers.gz").read_bytes())
    out = tmp / "sudoers.example"
    out.write_bytes(data)
    return out


@needs_sudo
def test_sudo_examples_file(tmp_path):
    src = examples_file(tmp_path)
    lines = src.read_text().splitlines()

    def line_of(prefix: str) -> int:
        found = [i + 1 for i, l in enumerate(lines) if l.startswith(prefix)]
        assert found, prefix
        return found[0]

    # As shipped, its first Defaults line sets runcwd=~ for everyone: sudo runs every command in
    # the target's home, which jitrun cannot do, so nothing converts, each with that reason.
    text, err, out = convert(src, tmp_path)
    assert "[[rule]]" not in text
    items = not_converted(err, src)
    runcwd = line_of("Defaults\t\tsyslog=auth,runcwd=~")
    assert any(n == line_of("operator") and f"line {runcwd} (Defaults runcwd=~) may apply to it" in w for n, w in items), err

    # Without that setting, the rest converts.
    src2 = tmp_path / "sudoers.example2"
    src2.write_text(src.read_text().replace("syslog=auth,runcwd=~", "syslog=auth"))
    assert subprocess.run(["visudo", "-c", "-f", src2], capture_output=True).returncode == 0
    text, err, out = convert(src2, tmp_path)
    p = jitctl("policy", "check", out, check=True)
    assert "warning[standing-access]" in p.stdout
    rules = {m.group(1): m.group(0) for m in re.finditer(r"\[\[rule\]\]\nname = \"sudoers\.example2-(\d+)\"\n(?:.*\n)*?authenticate = \w+\n", text)}
    op = rules[str(line_of('operator'))]
    # DUMPS, KILL, SHUTDOWN, HALT, REBOOT, PRINTING expanded; the digest entry, sudoedit and the
    # directory are left out (and listed).
    for c in ('["/usr/sbin/dump", "**"]', '["/bin/mt", "**"]', '["/usr/bin/top", "**"]', '["/usr/sbin/reboot", "**"]', '["/usr/bin/lprm", "**"]'):
        assert c in op, op
    assert "start_backups" not in op and "printcap" not in op
    assert 'users = ["operator"]' in op and 'run_as = "root"' in op and 'capabilities = ["ALL"]' in op
    assert "authenticate = true" in op and 'grant = "none"' in op
    assert '["/bin/su", "operator"]' in rules[str(line_of('joe'))]
    matt = rules[str(line_of('matt'))]
    assert 'hosts = ["valkyrie"]' in matt and '["/usr/bin/kill", "**"]' in matt
    web = rules[str(line_of('WEBADMIN'))]
    assert 'users = ["will", "wendy", "wim"]' in web and '["/usr/bin/su", "www"]' in web and 'hosts = ["www"]' in web
    # Rules come in reverse order of their lines (sudo's last match is jitrun's first).
    order = [int(n) for n in re.findall(r'^name = "sudoers\.example2-(\d+)"', text, re.M)]
    assert order == sorted(order, reverse=True), order
    # Each rule says where it came from.
    for name in rules:
        n = int(name)
        assert f"# from {src2}:{n}: {lines[n - 1].split(chr(92))[0].strip().split()[0]}" in text
    items = not_converted(err, src2)
    whys = " | ".join(f"{n}:{w}" for n, w in items)
    expected = [
        (line_of("operator"), "sudoedit /etc/printcap: sudoedit has no equivalent"),
        (line_of("operator"), "/usr/oper/bin/: a directory"),
        (line_of("operator"), "/home/operator/bin/start_backups: digests have no equivalent"),
        (line_of("pete"), "regular expressions (in the arguments) are not supported"),
        (line_of("pete"), "a negated command only takes away"),
        (line_of("john"), "a negated command only takes away"),
        (line_of("jill"), "a negated command only takes away"),
        (line_of("jen"), "the negated host !primary"),
        (line_of("jim"), "no host name is left"),
        (line_of("+secretaries"), "user +secretaries is not converted"),
        (line_of("root"), "command ALL (any command) has no equivalent"),
        (line_of("ALL\t\tCDROM"), "user ALL (everyone) has no equivalent"),
        (line_of("Defaults!PAGERS"), "Defaults!PAGERS noexec"),
        (line_of("Defaults:millert"), "Defaults:millert !authenticate"),
        (line_of("lisa"), "no host name is left"),
    ]
    for n, frag in expected:
        assert any(m == n and frag in w for m, w in items), f"{n}: {frag!r} not in {whys}"
    assert f"# Not converted ({len(items)}):" in text


def sudo_l(sudoers: Path, user: str, argv: list[str], target: str, host: str | None) -> bool:
    """sudo's own verdict, with `sudoers` bound over /etc/sudoers in a private mount namespace."""
    cmd = ["sudo", "-n", "-l", "-U", user, "-u", target]
    if host:
        cmd += ["-h", host]
    p = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
         'mount --bind "$1" /etc/sudoers && shift && exec "$@"', "sh", str(sudoers), *cmd, *argv],
        capture_output=True, text=True)
    assert p.returncode in (0, 1), p.stderr
    if p.returncode == 0:
        assert p.stdout.split()[0] == argv[0], p.stdout
    return p.returncode == 0


@root_only
@needs_sudo
def test_decisions_agree_with_sudo(tmp_path):
    with Lab() as lab:
        ops = lab.add_group()
        u1, u2 = lab.add_user(), lab.add_user()
        u3 = lab.add_user(groups=[ops])
        svc = lab.add_user()
        sudoers = tmp_path / "sudoers"
        sudoers.write_text(f"""\
# a typical team sudoers file
Defaults env_reset
Defaults env_keep += "TZ"
User_Alias NETTEAM = {u1.name}
Runas_Alias SVC = {svc.name}
Host_Alias WEB = web1, web2
Cmnd_Alias DISK = /usr/bin/df -h *, /usr/bin/du -s *

NETTEAM ALL = NOPASSWD: DISK, /usr/bin/id ""
%{ops} WEB = NOPASSWD: /usr/bin/uname
{u2.name} ALL = (SVC) NOPASSWD: /usr/bin/whoami, /usr/bin/ls /tmp
{u2.name} ALL = NOPASSWD: /usr/bin/touch /tmp/ok
{u3.name} ALL = /usr/bin/uptime
""")
        os.chown(sudoers, 0, 0)
        os.chmod(sudoers, 0o440)
        assert subprocess.run(["visudo", "-c", "-f", sudoers], capture_output=True).returncode == 0
        policy, err, out = convert(sudoers, tmp_path)
        items = not_converted(err, sudoers)
        assert [(n, w.split(":")[0]) for n, w in items] == [(2, "Defaults env_reset")], err
        assert 'env_keep = ["TZ"]' in policy
        # u3's rule needs a password in sudo: the converted rule asks for authentication.
        assert re.search(rf'users = \["{u3.name}"\]\n(?:.*\n)*?authenticate = true', policy), policy

        cases = [
            (u1, ["/usr/bin/df", "-h", "/"], "root", None),
            (u1, ["/usr/bin/df", "-h"], "root", None),
            (u1, ["/usr/bin/df", "-i", "/"], "root", None),
            (u1, ["/usr/bin/du", "-s", "/tmp"], "root", None),
            (u1, ["/usr/bin/du", "-a", "/tmp"], "root", None),
            (u1, ["/usr/bin/id"], "root", None),
            (u1, ["/usr/bin/id", "-u"], "root", None),
            (u1, ["/usr/bin/uname"], "root", None),
            (u3, ["/usr/bin/uname", "-a"], "root", "web1"),
            (u3, ["/usr/bin/uname", "-a"], "root", "db1"),
            (u2, ["/usr/bin/whoami"], svc.name, None),
            (u2, ["/usr/bin/whoami"], "root", None),
            (u2, ["/usr/bin/ls", "/tmp"], svc.name, None),
            (u2, ["/usr/bin/ls", "/etc"], svc.name, None),
            (u2, ["/usr/bin/touch", "/tmp/ok"], "root", None),
            (u2, ["/usr/bin/touch", "/tmp/no"], "root", None),
            (u2, ["/usr/bin/touch", "/tmp/ok"], svc.name, None),
            # sudo asks u3 for a password; the converted rule has authenticate = true, which the
            # policy allows (jitrun then asks PAM before running it)
            (u3, ["/usr/bin/uptime"], "root", None),
        ]
        tests = []
        verdicts = []
        for user, argv, target, host in cases:
            allowed = sudo_l(sudoers, user.name, argv, target, host)
            verdicts.append(allowed)
            groups = [g.gr_name for g in __import__("grp").getgrall() if user.name in g.gr_mem]
            tests.append("\n".join([
                "[[test]]",
                f"name = {toml_value(f'sudo -l -U {user.name} -u {target} ' + (f'-h {host} ' if host else '') + ' '.join(argv) + (' -> allow' if allowed else ' -> deny'))}",
                f"user = {toml_value(user.name)}",
                f"groups = {toml_value(groups)}",
                f"host = {toml_value(host or 'jitlab-host')}",
                f"argv = {toml_value(argv)}",
                f"run_as = {toml_value(target)}",  # sudo's -u (root when not given)
                f"expect = {toml_value('allow' if allowed else 'deny')}",
            ]) + "\n")
        # The comparison only means something if sudo said both yes and no.
        assert verdicts.count(True) >= 6 and verdicts.count(False) >= 6, verdicts
        out.write_text(policy + "\n" + "\n".join(tests))
        p = jitctl("policy", "test", out)
        assert p.returncode == 0, p.stdout + p.stderr
        assert f"{len(cases)} passed, 0 failed" in p.stdout
        assert verdicts[-1], "sudo -l allows u3's uptime (with a password)"

        # The real setuid jitrun runs a converted rule (standing access, run as the service user).
        lab.set_policy(policy)
        r = lab.run_jitrun(u2, ["-u", svc.name, "/usr/bin/whoami"])
        assert r.returncode == 0, r
        assert r.out.strip() == svc.name
        r = lab.run_jitrun(u2, ["/usr/bin/ls", "/etc"])
        assert r.returncode == 1, r
