"""The agent's packages, installed for real: `make deb` output goes onto this machine with
`dpkg -i` (CI runs on a throwaway host) and is purged afterwards, whatever happens.

Checks: the package contents (4755 jitrun, conffiles), the installed files and modes, the man
pages render, the completions parse, jitrun works for an ordinary user (a real elevation
under the installed /etc/jitrun), and policy packages built by `jitctl policy pack`: a good
one activates, bad ones (syntax error, duplicate rule name, unknown key) fail `dpkg -i` with
the reason while policy.d stays byte-for-byte the same, an upgrade to a bad version keeps the
old file, and removing the package removes its rules.

These tests change the real /usr/bin, /etc/jitrun and /etc/jitbroker: they refuse to start
when a jitrun they did not install is present, and purge everything in the fixture teardown.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "harness"))
import jitlab  # noqa: E402
from jitlab import Lab, User  # noqa: E402

DEB_DIR = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debian"
ETC = Path("/etc/jitrun")
DROPINS = ETC / "policy.d"
STATE = Path("/var/lib/jitrun")
SESSIONS = Path("/var/log/jitrun/sessions")
PKG_PREFIX = "jitrun-policy-pkgtest"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="installs packages with dpkg (needs root)")


def run(cmd, check=True, **kw) -> subprocess.CompletedProcess:
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{cmd} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def deb(name: str) -> Path:
    found = sorted(DEB_DIR.glob(f"{name}_*.deb"), key=lambda p: p.stat().st_mtime)
    if not found:
        pytest.fail(f"no {DEB_DIR}/{name}_*.deb: run `make deb` first")
    return found[-1]


def installed(package: str) -> bool:
    p = run(["dpkg-query", "-W", "-f=${Status}", package], check=False)
    return p.returncode == 0 and "installed" in p.stdout and "not-installed" not in p.stdout


def snapshot(d: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted(d.iterdir())} if d.is_dir() else {}


def as_user(user: User, argv, check=False) -> subprocess.CompletedProcess:
    return run(["setpriv", f"--reuid={user.uid}", f"--regid={user.gid}", "--init-groups", "--reset-env", "--",
                *argv], check=check, cwd=user.home)


def our_packages() -> list[str]:
    out = run(["dpkg-query", "-W", "-f=${Package} ${Status}\n"], check=False).stdout
    return [line.split()[0] for line in out.splitlines()
            if line.startswith(PKG_PREFIX) and "not-installed" not in line]


@pytest.fixture(scope="module")
def host():
    """Install jitrun and jitbroker with dpkg; purge them (and the policy packages) at the end."""
    for d in (deb("jitrun"), deb("jitbroker")):
        assert d.is_file()
    for path in (Path("/usr/bin/jitrun"), Path("/usr/bin/jitctl"), Path("/usr/bin/jitbroker")):
        if path.exists():
            pytest.fail(f"{path} already exists (not installed by these tests): not clobbering it; "
                        "run tests/packaging on a throwaway host, or `dpkg --purge jitrun jitbroker` first")
    for pkg in ("jitrun", "jitbroker", *our_packages()):
        if installed(pkg):
            pytest.fail(f"package {pkg} is already installed: not clobbering it")
    for d in (ETC, STATE, Path("/etc/jitbroker"), SESSIONS):
        if d.exists() and any(d.iterdir()):
            pytest.fail(f"{d} exists and is not empty: not clobbering it")
    sessions_existed = {d: d.exists() for d in (SESSIONS, SESSIONS.parent)}
    # The test harness may have made empty mount points here: put them back afterwards.
    existed = {d: d.exists() for d in (ETC, STATE)}
    # Another test (or a broker run by hand) may have left a store in /var/lib/jitbroker: the
    # postinst chowns that directory; put its owner and mode back, and never delete it.
    broker_state = Path("/var/lib/jitbroker")
    broker_state_before = os.stat(broker_state) if broker_state.exists() else None
    user_existed = run(["getent", "passwd", "jitbroker"], check=False).returncode == 0
    group_existed = run(["getent", "group", "jitbroker"], check=False).returncode == 0
    lab = Lab()
    try:
        lab.setup()
        # --path-include: a minimized image (path-exclude=/usr/share/man/* in dpkg.cfg.d)
        # would drop the man pages these tests render.
        p = run(["dpkg", "-i", "--path-include=/usr/share/man/*", deb("jitrun"), deb("jitbroker")], check=False)
        assert p.returncode == 0, f"dpkg -i failed:\n{p.stdout}\n{p.stderr}"
        # jitrun's audit events go to the lab's listener (this host may have no syslog).
        settings = ETC / "jitrun.toml"
        settings.write_text(f'[audit]\nsocket = "{lab.audit.path}"\n')
        yield lab
    finally:
        problems = []
        for pkg in our_packages():
            p = run(["dpkg", "--purge", pkg], check=False)
            if p.returncode != 0:
                problems.append(f"dpkg --purge {pkg}: {p.stdout}{p.stderr}")
        for pkg in ("jitbroker", "jitrun"):
            if installed(pkg) or run(["dpkg", "-s", pkg], check=False).returncode == 0:
                p = run(["dpkg", "--purge", pkg], check=False)
                if p.returncode != 0:
                    problems.append(f"dpkg --purge {pkg}: {p.stdout}{p.stderr}")
        lab.close()
        # What purge keeps on purpose (admin files, the broker's store, its user) goes too:
        # this host was clean before.
        for d in (DROPINS, ETC / "keys.d"):
            if d.is_dir():
                for f in d.iterdir():
                    f.unlink()
        for d in (DROPINS, ETC / "keys.d", ETC):
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()
        if broker_state_before is None:
            shutil.rmtree(broker_state, ignore_errors=True)
        elif broker_state.exists():
            os.chown(broker_state, broker_state_before.st_uid, broker_state_before.st_gid)
            os.chmod(broker_state, stat.S_IMODE(broker_state_before.st_mode))
        shutil.rmtree("/etc/jitbroker", ignore_errors=True)
        if not user_existed and run(["getent", "passwd", "jitbroker"], check=False).returncode == 0:
            run(["userdel", "jitbroker"], check=False)
        if not group_existed and run(["getent", "group", "jitbroker"], check=False).returncode == 0:
            run(["groupdel", "jitbroker"], check=False)
        for d, was in existed.items():
            if was and not d.exists():
                d.mkdir(mode=0o755)
        for path in (Path("/usr/bin/jitrun"), Path("/usr/bin/jitctl"), Path("/usr/bin/jitbroker")):
            if path.exists():
                problems.append(f"{path} still exists after the purge")
        # Purge removes the recordings directory (and /var/log/jitrun) when empty.
        for d, was in sessions_existed.items():
            if not was and d.exists():
                problems.append(f"{d} still exists after the purge")
        assert not problems, "teardown: " + "; ".join(problems)


@pytest.fixture(scope="module")
def user(host: Lab) -> User:
    return host.add_user()


# ---- the package files ---------------------------------------------------------------------

def test_package_contents_show_setuid_jitrun_and_conffiles():
    listing = run(["dpkg-deb", "-c", deb("jitrun")]).stdout
    line = next(l for l in listing.splitlines() if l.endswith("./usr/bin/jitrun"))
    # cargo-deb writes numeric owners: 0/0 is root/root.
    assert re.match(r"-rwsr-xr-x (root/root|0/0) ", line), line
    assert re.search(r"^-rwxr-xr-x (root/root|0/0) .* \./usr/bin/jitctl$", listing, re.M), listing
    for path in ("./etc/pam.d/jitrun", "./etc/jitrun/jitrun.toml", "./usr/lib/tmpfiles.d/jitrun.conf",
                 "./usr/lib/systemd/system/jitrun-revocations-sync.service",
                 "./usr/lib/systemd/system/jitrun-revocations-sync.timer",
                 "./usr/lib/systemd/system/jitrun-revocations-watch.service",
                 "./usr/share/man/man1/jitctl-revocations-watch.1.gz",
                 "./usr/lib/systemd/system/jitrun-sessions-prune.service",
                 "./usr/lib/systemd/system/jitrun-sessions-prune.timer",
                 "./usr/share/man/man1/jitctl-sessions-prune.1.gz",
                 "./usr/share/man/man1/jitrun.1.gz", "./usr/share/man/man5/jitrun.toml.5.gz",
                 "./usr/share/man/man5/jitrun-policy.5.gz", "./usr/share/man/man1/jitctl-policy-pack.1.gz",
                 "./usr/share/doc/jitrun/copyright", "./usr/share/doc/jitrun/admin-guide.md"):
        assert re.search(rf" {re.escape(path)}$", listing, re.M), f"{path} not in the package:\n{listing}"
    info = run(["dpkg-deb", "-I", deb("jitrun")]).stdout
    assert re.search(r"^ +\d+ bytes, +\d+ lines +conffiles", info, re.M), info
    # libpam is loaded with dlopen (not linked, so dpkg-shlibdeps cannot see it): named by hand
    depends = run(["dpkg-deb", "-f", deb("jitrun"), "Depends"]).stdout
    assert re.search(r"(^|, )libpam0g( |,|$)", depends.strip()), depends
    assert re.search(r"(^|, )libc6 ", depends), depends
    conf = subprocess.run(["sh", "-c", f"dpkg-deb --ctrl-tarfile '{deb('jitrun')}' | tar -xO ./conffiles"],
                          capture_output=True, text=True, check=True).stdout.split()
    assert sorted(conf) == ["/etc/jitrun/client.toml", "/etc/jitrun/jitrun.toml", "/etc/pam.d/jitrun"], conf
    broker = run(["dpkg-deb", "-c", deb("jitbroker")]).stdout
    assert re.search(r"^-rwxr-xr-x (root/root|0/0) .* \./usr/bin/jitbroker$", broker, re.M), broker
    assert "./usr/lib/systemd/system/jitbroker.service" in broker
    bconf = subprocess.run(["sh", "-c", f"dpkg-deb --ctrl-tarfile '{deb('jitbroker')}' | tar -xO ./conffiles"],
                           capture_output=True, text=True, check=True).stdout.split()
    assert bconf == ["/etc/jitbroker/broker.toml"], bconf


def test_copyright_lists_every_linked_crate_with_its_licence():
    text = subprocess.run(["sh", "-c", f"dpkg-deb --fsys-tarfile '{deb('jitrun')}' | "
                           "tar -xO ./usr/share/doc/jitrun/copyright"],
                          capture_output=True, text=True, check=True).stdout
    tree = run(["cargo", "tree", "-p", "jitrun", "-p", "jitctl", "-e", "normal", "--prefix", "none", "--offline"],
               cwd=ROOT).stdout
    crates = {line.split()[0] for line in tree.splitlines() if line.strip()} - {"jitrun", "jitctl", "jit-policy",
                                                                                  "jit-grant", "jit-audit",
                                                                                  "jit-session"}
    assert crates, tree
    for c in crates:
        assert re.search(rf"^  {re.escape(c)} \S+ +\S", text, re.M), f"crate {c} missing from the copyright file"
    assert "Permission is hereby granted" in text  # a licence text is included, not only names


# ---- the installed agent -------------------------------------------------------------------

def test_installed_files_and_modes(host):
    st = os.stat("/usr/bin/jitrun")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o4755)
    st = os.stat(STATE)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o700), oct(st.st_mode)
    st = os.stat(SESSIONS)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o700), oct(st.st_mode)
    for d in (ETC, DROPINS, ETC / "keys.d"):
        st = os.stat(d)
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o755), d
    assert not any(DROPINS.iterdir()), "policy.d starts empty"
    assert Path("/etc/pam.d/jitrun").read_text().startswith("#%PAM-1.0\n")
    # jitbroker: its system user, a config only its group reads, its state directory.
    pw = pwd.getpwnam("jitbroker")
    assert pw.pw_shell == "/usr/sbin/nologin" and pw.pw_uid < 1000, pw
    st = os.stat("/etc/jitbroker/broker.toml")
    assert (st.st_uid, grp.getgrgid(st.st_gid).gr_name, stat.S_IMODE(st.st_mode)) == (0, "jitbroker", 0o640)
    assert os.stat("/var/lib/jitbroker").st_uid == pw.pw_uid
    # The units are registered with deb-systemd-helper (so that purge removes the links an
    # admin makes with `systemctl enable`), and nothing is enabled at installation.
    state = Path("/var/lib/systemd/deb-systemd-helper-enabled")
    for unit, target in (("jitbroker.service", "multi-user.target"), ("jitrun-revocations-sync.timer", "timers.target"),
                         ("jitrun-revocations-watch.service", "multi-user.target"),
                         ("jitrun-sessions-prune.timer", "timers.target")):
        assert (state / f"{unit}.dsh-also").is_file(), f"{unit} not registered with deb-systemd-helper"
        assert not Path(f"/etc/systemd/system/{target}.wants/{unit}").exists(), f"{unit} enabled at installation"


def test_completions_are_installed_and_parse(host):
    for f in ("/usr/share/bash-completion/completions/jitrun", "/usr/share/bash-completion/completions/jitctl"):
        assert Path(f).stat().st_size > 0
        run(["bash", "-n", f])
        # Loading it defines the completion function and registers it.
        p = run(["bash", "-c", f"source {f} && complete -p {Path(f).name}"])
        assert Path(f).name in p.stdout
    for f in ("/usr/share/zsh/vendor-completions/_jitrun", "/usr/share/zsh/vendor-completions/_jitctl"):
        assert Path(f).read_text().startswith("#compdef"), f
    for f in ("/usr/share/fish/vendor_completions.d/jitrun.fish", "/usr/share/fish/vendor_completions.d/jitctl.fish"):
        assert "complete -c" in Path(f).read_text(), f
    # Every option of the installed jitrun's --help is offered by its completions.
    help_text = run(["/usr/bin/jitrun", "--help"]).stdout
    bash = Path("/usr/share/bash-completion/completions/jitrun").read_text()
    for opt in ("--grant", "--rule", "--list", "--version", "--help", "-u", "-l"):
        assert opt in help_text and opt in bash, opt


def man(*args: str) -> str:
    env = {**os.environ, "MANPAGER": "cat", "PAGER": "cat", "MANWIDTH": "100", "LANG": "C.UTF-8"}
    p = run(["man", *args], env=env)
    return p.stdout


def test_man_pages_render(host):
    page = man("jitrun")
    assert "SYNOPSIS" in page and "EXIT STATUS" in page, page
    for opt in re.findall(r"^\s+(-[a-z]|--[a-z-]+)", run(["/usr/bin/jitrun", "--help"]).stdout, re.M):
        assert opt in page, f"{opt} of jitrun --help not in man jitrun"
    settings = man("5", "jitrun.toml")
    assert "fail_closed" in settings and "secure_path" in settings, settings
    policy = man("5", "jitrun-policy")
    assert "min_approvals" in policy and "capabilities" in policy, policy
    pack = man("jitctl-policy-pack")
    assert "--priority" in pack and "SYNOPSIS" in pack, pack
    assert "SYNOPSIS" in man("jitctl")
    broker = man("jitbroker")
    assert "SYNOPSIS" in broker and "enroll-token" in man("jitbroker-host"), broker
    assert "--validity" in man("jitbroker-break-glass-seal")
    assert "--wait" in man("jitctl-revocations-watch")


def test_jitrun_works_for_a_user(host, user):
    p = as_user(user, ["/usr/bin/jitrun", "--version"])
    assert p.returncode == 0 and p.stdout.startswith("jitrun "), p
    p = as_user(user, ["/usr/bin/jitrun", "-l"])
    assert p.returncode == 0, p
    assert "net-probe" not in p.stdout


# ---- policy packages -----------------------------------------------------------------------

def policy_dir(tmp: Path, name: str, text: str) -> Path:
    d = tmp / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    (d / "rules.toml").write_text(text)
    return d


def pack(src: Path, out: Path, name: str, version: str, priority: str = "50") -> Path:
    p = run(["/usr/bin/jitctl", "policy", "pack", "--name", name, "--version", version, "--priority", priority,
             "--depends-version", "0.1.0", src, "-o", out])
    debs = list(out.glob(f"jitrun-policy-{name}_{version}_all.deb"))
    assert len(debs) == 1, (p.stdout, list(out.iterdir()))
    return debs[0]


def repack(good: Path, out: Path, version: str, rules_text: str) -> Path:
    """The same package with other policy text: what a package built with another jitctl (or by
    hand) could hold; `jitctl policy pack` itself refuses a policy that does not load."""
    tree = out / f"tree-{version}"
    run(["dpkg-deb", "-R", good, tree])
    [rules] = list(tree.glob("usr/share/jitrun/policy-packages/*/rules.toml"))
    rules.write_text(rules_text)
    control = tree / "DEBIAN" / "control"
    control.write_text(re.sub(r"^Version: .*$", f"Version: {version}", control.read_text(), flags=re.M))
    name = re.search(r"^Package: (.*)$", control.read_text(), re.M).group(1)
    target = out / f"{name}_{version}_all.deb"
    run(["dpkg-deb", "--build", "--root-owner-group", tree, target])
    return target


def rule(name: str, user: User, extra: str = "") -> str:
    return (f'[[rule]]\nname = "{name}"\nusers = ["{user.name}"]\ncommands = ["/usr/bin/cat /proc/self/status"]\n'
            f'capabilities = ["CAP_NET_RAW"]\ngrant = "none"\n{extra}')


GOOD = f"{PKG_PREFIX}-net"
BAD = f"{PKG_PREFIX}-bad"


def test_good_policy_package_activates_and_elevates(host, user, tmp_path):
    name = GOOD.removeprefix("jitrun-policy-")
    good = pack(policy_dir(tmp_path, "good", rule("net-probe", user)), tmp_path, name, "1.0")
    p = run(["dpkg", "-i", good], check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "activated policy package" in p.stdout + p.stderr
    target = DROPINS / f"50-{name}.toml"
    st = os.stat(target)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o644)
    assert 'name = "net-probe"' in target.read_text()
    assert Path(f"/usr/share/jitrun/policy-packages/{name}/rules.toml").is_file()
    # activation compiled the policy snapshot jitrun reads (root's 0600 file, keyed on the new file)
    assert "compiled the policy snapshot jitrun reads" in p.stdout + p.stderr
    snap = STATE / "policy.snapshot"
    st = snap.stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o600), st
    assert str(target).encode() in snap.read_bytes()
    compiled = (st.st_ino, st.st_mtime_ns)
    check = run(["/usr/bin/jitctl", "policy", "check"])
    # loads (the lint may warn: the test rule is standing access)
    assert check.returncode == 0 and "ok: 1 rules" in check.stdout, check.stdout
    listed = as_user(user, ["/usr/bin/jitrun", "-l"])
    assert listed.returncode == 0 and "net-probe" in listed.stdout, listed
    # A real elevation by the installed setuid jitrun: the command runs as the user with
    # CAP_NET_RAW and nothing else, and jitrun logged it.
    mark = host.audit.mark()
    p = as_user(user, ["/usr/bin/jitrun", "cat", "/proc/self/status"])
    assert p.returncode == 0, p
    status = jitlab.parse_proc_status(p.stdout)
    assert int(status["Uid"].split()[0]) == user.uid
    assert jitlab.cap_names(int(status["CapEff"], 16)) == ["CAP_NET_RAW"], status["CapEff"]
    host.audit.sync()
    actions = [e.action for e in host.audit.since(mark)]
    assert "elevate.start" in actions and "elevate.end" in actions, actions
    # the run used the compiled snapshot (a stale one would have been written again)
    assert (snap.stat().st_ino, snap.stat().st_mtime_ns) == compiled


@pytest.mark.parametrize("kind", ["syntax", "duplicate", "unknown_key", "failing_test"])
def test_bad_policy_package_is_refused_and_changes_nothing(host, user, tmp_path, kind):
    assert installed(GOOD), "needs the good package of the previous test"
    name = BAD.removeprefix("jitrun-policy-")
    good = pack(policy_dir(tmp_path, "bad", rule("bad-ok", user)), tmp_path, name, "1.0")
    text, reason = {
        "syntax": ('[[rule]\nname = "bad-x"\n', "TOML syntax"),
        "duplicate": (rule("net-probe", user), 'rule "net-probe" is already defined at'),
        "unknown_key": (rule("bad-x", user, 'comands = ["/usr/bin/id"]\n'), 'unknown key "comands"'),
        # loads fine, but its own [[test]] case fails: the rule allows what the test says it must not
        "failing_test": (rule("bad-x", user) + f'\n[[test]]\nname = "bad-x is closed"\nuser = "{user.name}"\n'
                         f'argv = ["/usr/bin/cat", "/proc/self/status"]\nexpect = "deny"\n', "policy test(s) fail with it"),
    }[kind]
    bad = repack(good, tmp_path, "1.1", text)
    before = snapshot(DROPINS)
    p = run(["dpkg", "-i", bad], check=False)
    out = p.stdout + p.stderr
    assert p.returncode != 0, out
    assert f"policy package {name} not activated" in out and reason in out, out
    # The message points at the line the package author wrote.
    assert f"/usr/share/jitrun/policy-packages/{name}/rules.toml:" in out, out
    assert "previous policy stays active" in out, out
    assert snapshot(DROPINS) == before
    assert run(["/usr/bin/jitctl", "policy", "check"]).returncode == 0
    listed = as_user(user, ["/usr/bin/jitrun", "-l"])
    assert "net-probe" in listed.stdout and "bad-" not in listed.stdout, listed
    run(["dpkg", "--purge", BAD])
    assert snapshot(DROPINS) == before


def test_upgrade_to_a_bad_version_keeps_the_old_rules(host, user, tmp_path):
    name = GOOD.removeprefix("jitrun-policy-")
    target = DROPINS / f"50-{name}.toml"
    before = target.read_bytes()
    v2 = pack(policy_dir(tmp_path, "v2", rule("net-probe", user)), tmp_path, name, "2.0")
    bad = repack(v2, tmp_path, "2.0", rule("net-probe", user, "max_duration = 5\n"))
    p = run(["dpkg", "-i", bad], check=False)
    assert p.returncode != 0 and "max_duration" in p.stdout + p.stderr, p.stdout + p.stderr
    assert target.read_bytes() == before
    assert "net-probe" in as_user(user, ["/usr/bin/jitrun", "-l"]).stdout
    # A fixed version, at another priority: activates, and moves the file.
    v3 = pack(policy_dir(tmp_path, "v3", rule("net-probe", user) + rule("net-probe2", user)), tmp_path, name,
              "3.0", priority="60")
    p = run(["dpkg", "-i", v3], check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    assert not target.exists()
    assert "net-probe2" in (DROPINS / f"60-{name}.toml").read_text()
    assert "net-probe2" in as_user(user, ["/usr/bin/jitrun", "-l"]).stdout


def test_removing_the_package_removes_its_rules(host, user):
    name = GOOD.removeprefix("jitrun-policy-")
    run(["dpkg", "-r", GOOD])
    assert not list(DROPINS.glob(f"*-{name}.toml"))
    listed = as_user(user, ["/usr/bin/jitrun", "-l"])
    assert listed.returncode == 0 and "net-probe" not in listed.stdout, listed
    run(["dpkg", "--purge", GOOD])
